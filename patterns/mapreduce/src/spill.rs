//! Spilling to disk: the [`Spill`] encoding of keys and values, sorted runs in temporary
//! files, and the stable k-way merge that reads them back.
//!
//! When the in-memory table outgrows its memory budget, the engine sorts it by key and
//! writes it out as a *run* (one temporary file, deleted when the in-memory `Run` handle
//! drops). At the end, the runs are merged back into one ascending stream of
//! `(key, value)` pairs. Everything here is streaming: a run is written and read through a
//! 64 KiB buffer, and the merge holds one pending pair per run.
//!
//! # Value encoding
//!
//! [`Spill`] is a compact, self-delimiting binary encoding (every proper prefix of an
//! encoding fails to decode, so truncation is always detected):
//!
//! | type | encoding |
//! | --- | --- |
//! | `u8`, `i8` | one byte (two's complement for `i8`) |
//! | `u16`, `u32`, `u64`, `usize`, `u128` | unsigned LEB128 varint: 7 bits a byte, low bits first, high bit set on every byte but the last |
//! | `i16`, `i32`, `i64`, `isize`, `i128` | zigzag (`0, -1, 1, -2, ...` to `0, 1, 2, 3, ...`), then LEB128 |
//! | `f32`, `f64` | `to_bits()`, fixed 4 or 8 bytes little-endian (bit-exact: NaN payloads and `-0.0` survive) |
//! | `bool` | one byte, `0` or `1` |
//! | `char` | its scalar value as a LEB128 varint |
//! | `String`, `Box<str>` | LEB128 byte length, then the UTF-8 bytes |
//! | `Vec<T>` | LEB128 element count, then each element |
//! | `Option<T>` | one byte `0` (`None`) or `1` followed by the value (`Some`) |
//! | `()` | nothing |
//! | `(A, B)`, `(A, B, C)` | the fields in order |
//!
//! `usize` and `isize` are encoded as 64-bit values, so files do not depend on the pointer
//! width. Decoding rejects, with [`SpillError::Corrupt`], truncated input, a varint longer
//! than its type allows, a value out of range for its type, an invalid `bool`, `char`,
//! `Option` tag or UTF-8 string. It never panics on bad input.
//!
//! # Run file format
//!
//! ```text
//! run    = magic record*
//! magic  = "WEFTRUN" 0x01            ; 8 bytes; the last byte is the format version
//! record = len:varint body
//! body   = key value                 ; Spill encodings; len is their total byte length
//! ```
//!
//! Records follow each other with nothing in between and no trailer: the in-memory `Run`
//! handle remembers how many records and bytes it wrote, and the reader checks both, so
//! a file cut short, grown, or with a record whose key and value do not fill exactly `len`
//! bytes is reported as corrupt rather than silently yielding fewer pairs. The length
//! prefix lets a reader pull one record at a time into a reused buffer without loading
//! the file, and bounds every allocation by the bytes actually left in the file.
//!
//! File names are `weft-mapreduce-<pid>-<counter>-<random>.run`, opened with
//! `create_new` (retrying on a clash), so concurrent jobs and processes can share one
//! spill directory.
//!
//! # Merge order
//!
//! The merge yields pairs in ascending key order; among equal keys, pairs from an earlier
//! run (by index in the list handed to the merge) come first, and pairs within one run
//! keep their file order. The result is exactly a stable sort of the runs' concatenation,
//! which makes the order of values reaching a reducer (and so floating-point results)
//! independent of timing.

mod codec;
mod merge;
mod run;

pub(crate) use self::merge::merge;
pub(crate) use self::run::{Run, RunReader, spill_dir_default, write_run};

/// Values that can be written to and read back from spill files.
///
/// Implemented for the integer and float types, `bool`, `char`, `String`, `Box<str>`,
/// `()`, and for `Vec<T>`, `Option<T>`, `(A, B)` and `(A, B, C)` of spillable types.
/// Implement it for your own key and value types by encoding their fields in order.
///
/// `decode` must read back exactly what `encode` wrote, consume exactly those bytes, and
/// return [`SpillError::Corrupt`] (never panic) on input that `encode` could not have
/// produced. On error, `input` is left at an unspecified position.
///
/// # Examples
///
/// ```
/// use weft_mapreduce::{Spill, SpillError};
///
/// #[derive(Debug, PartialEq)]
/// struct Visit {
///     page: String,
///     millis: u64,
/// }
///
/// impl Spill for Visit {
///     fn encode(&self, out: &mut Vec<u8>) {
///         self.page.encode(out);
///         self.millis.encode(out);
///     }
///
///     fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
///         Ok(Visit { page: String::decode(input)?, millis: u64::decode(input)? })
///     }
///
///     fn approx_size(&self) -> usize {
///         std::mem::size_of::<Self>() + self.page.capacity()
///     }
/// }
///
/// let visit = Visit { page: "/index".to_owned(), millis: 1500 };
/// let mut bytes = Vec::new();
/// visit.encode(&mut bytes);
///
/// let mut input = &bytes[..];
/// assert_eq!(Visit::decode(&mut input)?, visit);
/// assert!(input.is_empty());
///
/// // A truncated encoding is an error, not a panic.
/// assert!(Visit::decode(&mut &bytes[..3]).is_err());
/// # Ok::<(), SpillError>(())
/// ```
pub trait Spill: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes one value from the front of `input`, advancing it past the bytes read.
    ///
    /// # Errors
    ///
    /// [`SpillError::Corrupt`] when `input` is truncated or does not hold a valid
    /// encoding of `Self`.
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError>;

    /// Approximate bytes this value occupies in memory (stack + heap), for the memory
    /// budget. Default: `size_of::<Self>()`, right for types that own no heap memory.
    fn approx_size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Why reading or writing spill data failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpillError {
    /// Creating, writing or reading a spill file failed.
    #[error(
        "spill file I/O failed: {0}; check that the spill directory exists, is writable and has free space"
    )]
    Io(#[from] std::io::Error),
    /// Spill data was truncated or held bytes that do not decode.
    #[error(
        "spill data is corrupt: {what}; a spill file was changed while in use, or a `Spill` impl's decode does not match its encode"
    )]
    Corrupt {
        /// What was wrong with the bytes.
        what: &'static str,
    },
}

/// Shorthand for a [`SpillError::Corrupt`].
pub(crate) fn corrupt(what: &'static str) -> SpillError {
    SpillError::Corrupt { what }
}
