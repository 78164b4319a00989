//! The on-disk format of the file log.
//!
//! A segment file starts with a 16-byte header: the magic `WEFTLOG1` and the global
//! position of its first event (u64 LE); its name is that position in 20 digits. Then
//! come records, one per append (so an append is all or nothing):
//!
//! ```text
//! len u32 LE | crc32(len bytes) u32 LE | crc32(body) u32 LE | body (len bytes)
//! body: first_position u64 | first_version u64 | timestamp_nanos u64 |
//!       stream_len u16 | stream | count u32 | count × event
//! event: event_id u128 | flags u8 (1: correlation, 2: causation) | [u128] | [u128] |
//!        schema_version u32 | type_len u16 | type | payload_len u32 | payload
//! ```
//!
//! The length has a checksum of its own so that a damaged length in the middle of the
//! log is reported as corruption instead of being mistaken for a torn tail.

use std::sync::Arc;

use crate::event::nanos_to_system_time;
use crate::{EventId, Metadata, NewEvent, RecordedEvent};

/// The magic at the start of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"WEFTLOG1";
/// Bytes of the segment header.
pub(crate) const SEGMENT_HEADER: u64 = 16;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 12;
/// The largest record body accepted (one append's events, encoded).
pub(crate) const MAX_BODY: usize = 256 << 20;
/// Offset of `first_position` and `first_version` in the body (patched under the lock).
const POSITIONS_AT: usize = 0;

/// Encodes a record body with zero placeholders for the first position and version.
pub(crate) fn encode_body(stream: &str, timestamp_nanos: u64, events: &[NewEvent]) -> Vec<u8> {
    let size: usize = 8
        + 8
        + 8
        + 2
        + stream.len()
        + 4
        + events
            .iter()
            .map(|e| 16 + 1 + 32 + 4 + 2 + e.event_type.len() + 4 + e.payload.len())
            .sum::<usize>();
    let mut b = Vec::with_capacity(RECORD_HEADER + size);
    b.extend_from_slice(&[0u8; RECORD_HEADER]);
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&timestamp_nanos.to_le_bytes());
    b.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    b.extend_from_slice(stream.as_bytes());
    b.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        b.extend_from_slice(&e.event_id.as_u128().to_le_bytes());
        let flags = u8::from(e.metadata.correlation_id.is_some())
            | (u8::from(e.metadata.causation_id.is_some()) << 1);
        b.push(flags);
        if let Some(id) = e.metadata.correlation_id {
            b.extend_from_slice(&id.as_u128().to_le_bytes());
        }
        if let Some(id) = e.metadata.causation_id {
            b.extend_from_slice(&id.as_u128().to_le_bytes());
        }
        b.extend_from_slice(&e.schema_version.to_le_bytes());
        b.extend_from_slice(&(e.event_type.len() as u16).to_le_bytes());
        b.extend_from_slice(e.event_type.as_bytes());
        b.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.payload);
    }
    b
}

/// Fills in the positions and the record header of a frame made by [`encode_body`].
pub(crate) fn seal(frame: &mut [u8], first_position: u64, first_version: u64) {
    let body_at = RECORD_HEADER + POSITIONS_AT;
    frame[body_at..body_at + 8].copy_from_slice(&first_position.to_le_bytes());
    frame[body_at + 8..body_at + 16].copy_from_slice(&first_version.to_le_bytes());
    let len = (frame.len() - RECORD_HEADER) as u32;
    let len_bytes = len.to_le_bytes();
    let body_crc = crc32fast::hash(&frame[RECORD_HEADER..]);
    frame[0..4].copy_from_slice(&len_bytes);
    frame[4..8].copy_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    frame[8..12].copy_from_slice(&body_crc.to_le_bytes());
}

/// What a record header says, once its length checksum has been verified.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) body_crc: u32,
}

/// Parses a record header; `None` if the length checksum does not match.
pub(crate) fn parse_header(h: &[u8; RECORD_HEADER]) -> Option<Header> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let len_crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let body_crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    (crc32fast::hash(&h[0..4]) == len_crc).then_some(Header { len, body_crc })
}

/// A decoded record: one append.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) first_position: u64,
    pub(crate) first_version: u64,
    pub(crate) stream: Arc<str>,
    pub(crate) events: Vec<RecordedEvent>,
}

/// A cursor over a body that fails instead of panicking on short input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("record body ends early ({n} bytes wanted)"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn u128(&mut self) -> Result<u128, String> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn str(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|_| "a name is not UTF-8".to_owned())
    }
}

/// Decodes a body whose checksum has been verified; `Err` names what is malformed.
pub(crate) fn decode_body(body: &[u8], stream_cache: Option<&Arc<str>>) -> Result<Record, String> {
    let mut r = Reader { buf: body };
    let first_position = r.u64()?;
    let first_version = r.u64()?;
    let timestamp = nanos_to_system_time(r.u64()?);
    let stream_len = r.u16()? as usize;
    let stream_str = r.str(stream_len)?;
    let stream: Arc<str> = match stream_cache {
        Some(s) if &**s == stream_str => Arc::clone(s),
        _ => Arc::from(stream_str),
    };
    let count = r.u32()?;
    if count == 0 || first_version == 0 {
        return Err("record with no events or version 0".into());
    }
    let mut events = Vec::with_capacity(count.min(1 << 16) as usize);
    for i in 0..u64::from(count) {
        let event_id = EventId::from_u128(r.u128()?);
        let [flags] = r.array::<1>()?;
        let correlation_id = if flags & 1 != 0 {
            Some(EventId::from_u128(r.u128()?))
        } else {
            None
        };
        let causation_id = if flags & 2 != 0 {
            Some(EventId::from_u128(r.u128()?))
        } else {
            None
        };
        let schema_version = r.u32()?;
        let type_len = r.u16()? as usize;
        let event_type: Arc<str> = Arc::from(r.str(type_len)?);
        let payload_len = r.u32()? as usize;
        let payload: Arc<[u8]> = Arc::from(r.take(payload_len)?);
        events.push(RecordedEvent {
            event_id,
            stream_id: Arc::clone(&stream),
            version: first_version + i,
            position: first_position + i,
            timestamp,
            event_type,
            schema_version,
            payload,
            metadata: Metadata {
                correlation_id,
                causation_id,
            },
        });
    }
    if !r.buf.is_empty() {
        return Err(format!("{} stray bytes after the events", r.buf.len()));
    }
    Ok(Record {
        first_position,
        first_version,
        stream,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_frame_decodes_to_what_was_encoded() {
        let meta = Metadata::new().correlation_id(EventId::from_u128(9));
        let events = vec![
            NewEvent::new("A", 1, b"xyz".to_vec()).with_metadata(meta),
            NewEvent::new("Bee", 3, vec![]),
        ];
        let mut frame = encode_body("stream-1", 123, &events);
        seal(&mut frame, 40, 7);
        let h: [u8; RECORD_HEADER] = frame[..RECORD_HEADER].try_into().unwrap();
        let h = parse_header(&h).unwrap();
        assert_eq!(h.len as usize, frame.len() - RECORD_HEADER);
        assert_eq!(h.body_crc, crc32fast::hash(&frame[RECORD_HEADER..]));
        let rec = decode_body(&frame[RECORD_HEADER..], None).unwrap();
        assert_eq!((rec.first_position, rec.first_version), (40, 7));
        assert_eq!(&*rec.stream, "stream-1");
        assert_eq!(rec.events.len(), 2);
        assert_eq!(rec.events[0].metadata, meta);
        assert_eq!(&*rec.events[0].payload, b"xyz");
        assert_eq!((rec.events[1].version, rec.events[1].position), (8, 41));
        assert_eq!(rec.events[1].schema_version, 3);
        assert_eq!(rec.events[1].event_id, events[1].event_id);
    }

    #[test]
    fn truncated_bodies_are_errors_not_panics() {
        let mut frame = encode_body("s", 1, &[NewEvent::new("A", 1, b"payload".to_vec())]);
        seal(&mut frame, 0, 1);
        let body = &frame[RECORD_HEADER..];
        for cut in 0..body.len() {
            assert!(decode_body(&body[..cut], None).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_length_fails_its_checksum() {
        let mut frame = encode_body("s", 1, &[NewEvent::new("A", 1, vec![])]);
        seal(&mut frame, 0, 1);
        frame[1] ^= 0x40;
        let h: [u8; RECORD_HEADER] = frame[..RECORD_HEADER].try_into().unwrap();
        assert!(parse_header(&h).is_none());
    }
}
