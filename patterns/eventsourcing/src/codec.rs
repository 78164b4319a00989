//! Serialization of events and snapshots: the [`Codec`] trait, [`JsonCodec`] (the
//! default) and the compact binary [`PostcardCodec`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Turns serde values into bytes and back; a [`Repository`](crate::Repository) encodes
/// events and snapshots with it.
///
/// JSON ([`JsonCodec`]) is readable, self-describing and lets upcasters edit old events
/// as [`serde_json::Value`]s; [`PostcardCodec`] is several times smaller and faster but
/// not self-describing (an added field is a schema change that needs an upcaster).
///
/// ```
/// use weft_eventsourcing::{Codec, JsonCodec, PostcardCodec};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Deposited { amount: u64 }
///
/// let json = JsonCodec.encode(&Deposited { amount: 5 })?;
/// assert_eq!(json, br#"{"amount":5}"#);
/// let compact = PostcardCodec.encode(&Deposited { amount: 5 })?;
/// assert_eq!(compact.len(), 1);
/// assert_eq!(PostcardCodec.decode::<Deposited>(&compact)?, Deposited { amount: 5 });
/// # Ok::<(), weft_eventsourcing::Error>(())
/// ```
pub trait Codec: Send + Sync + std::fmt::Debug + 'static {
    /// Encodes `value`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, Error>;
    /// Decodes a value of type `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error>;
}

/// JSON through `serde_json`: the default codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(value).map_err(|e| Error::codec(std::any::type_name::<T>(), e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::codec(std::any::type_name::<T>(), e))
    }
}

/// The compact binary format of `postcard` (varints, no field names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostcardCodec;

impl Codec for PostcardCodec {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, Error> {
        postcard::to_stdvec(value).map_err(|e| Error::codec(std::any::type_name::<T>(), e))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::codec(std::any::type_name::<T>(), e))
    }
}
