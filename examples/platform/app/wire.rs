//! The ingest body parser: a JSON array of events or NDJSON, into engine events plus a
//! per-event list of what could not be parsed. Never panics, whatever the bytes (a
//! proptest-driven fuzzer in `tests/platform.rs` and the corpus in
//! `tests/corpus/ingest/` hold it to that).
//!
//! Strings are borrowed from the body where they have no escapes, and metric names,
//! dimension keys and values up to 24 bytes are stored inline by the engine's
//! `CompactString`s, so a typical event costs no allocation of its own.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;
use weft::analytics::Event;

/// One event that could not be parsed, by its index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position in the array, or the 0-based index among the non-blank NDJSON lines.
    pub index: usize,
    /// A stable reason code (`invalid_json`, `invalid_event`, or an engine reason).
    pub reason: &'static str,
    /// What is wrong, precisely.
    pub error: String,
}

/// What a body parsed into.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The events that parsed, in request order.
    pub events: Vec<Event>,
    /// The request index of each of `events`.
    pub index: Vec<usize>,
    /// The events that did not parse.
    pub rejected: Vec<Rejection>,
}

impl Parsed {
    /// Events in the request (parsed or not); the parser fuzzer checks indices by it.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.events.len() + self.rejected.len()
    }
}

/// A body that cannot be taken at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON or NDJSON at all (400).
    Malformed(String),
    /// More events than allowed (413).
    TooManyEvents {
        /// The limit.
        max: usize,
    },
}

/// One event on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow)]
    metric: Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<i64>,
    value: f64,
    #[serde(default, borrow)]
    dims: Dims<'a>,
    #[serde(default, borrow)]
    entity: Option<Cow<'a, str>>,
}

/// Most dimensions one event may carry on the wire: more is refused while parsing,
/// before anything is built (the engine's own limit, 8 by default, is lower).
pub const MAX_WIRE_DIMS: usize = 64;

/// `dims`: a JSON object of string values, kept as pairs in order (inline up to 8).
#[derive(Default)]
struct Dims<'a>(SmallVec<[(Cow<'a, str>, Cow<'a, str>); 8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Dims<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Dims<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string dimension values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Dims::default())
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut out = SmallVec::new();
                while let Some((k, v)) = m.next_entry::<BorrowedStr<'a>, BorrowedStr<'a>>()? {
                    if out.len() == MAX_WIRE_DIMS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_WIRE_DIMS} dimensions"
                        )));
                    }
                    out.push((k.0, v.0));
                }
                Ok(Dims(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A string borrowed from the input where it has no escapes (`#[serde(borrow)]` on a
/// `Cow` borrows when it can: serde's `borrow_cow_str`).
#[derive(Deserialize)]
struct BorrowedStr<'a>(#[serde(borrow)] Cow<'a, str>);

impl WireEvent<'_> {
    fn into_event(self, now_ms: i64) -> Event {
        let mut e = Event::new(&*self.metric, self.timestamp.unwrap_or(now_ms), self.value);
        for (k, v) in &self.dims.0 {
            e = e.dim(&**k, &**v);
        }
        if let Some(id) = &self.entity {
            e = e.entity(&**id);
        }
        e
    }
}

/// Parses one event's JSON text.
fn parse_one(text: &[u8], now_ms: i64) -> Result<Event, (&'static str, String)> {
    match serde_json::from_slice::<WireEvent<'_>>(text) {
        Ok(w) => Ok(w.into_event(now_ms)),
        Err(e) if e.is_syntax() || e.is_eof() => Err(("invalid_json", e.to_string())),
        Err(e) => Err(("invalid_event", e.to_string())),
    }
}

/// Parses a body: a JSON array (first non-blank byte `[`) or NDJSON. Timestamps that
/// are missing become `now_ms`.
///
/// # Errors
///
/// [`BodyError::Malformed`] when the body is empty, the array is not valid JSON, or no
/// NDJSON line parses; [`BodyError::TooManyEvents`] over `max_events`.
pub fn parse(body: &[u8], now_ms: i64, max_events: usize) -> Result<Parsed, BodyError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(BodyError::Malformed(
            "empty body: send a JSON array of events or NDJSON (one event object per line)".into(),
        ));
    };
    let parsed = if body[start] == b'[' {
        parse_array(body, now_ms, max_events)?
    } else {
        parse_ndjson(body, now_ms, max_events)?
    };
    // Nothing parsed and the first failure is not JSON at all: a malformed body, not a
    // list of bad events.
    match parsed.rejected.first() {
        Some(first) if parsed.events.is_empty() && first.reason == "invalid_json" => {
            Err(BodyError::Malformed(format!(
                "no event could be parsed; event {}: {}",
                first.index, first.error
            )))
        }
        _ => Ok(parsed),
    }
}

fn parse_array(body: &[u8], now_ms: i64, max_events: usize) -> Result<Parsed, BodyError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        BodyError::Malformed(format!("the body is not a valid JSON array of events: {e}"))
    })?;
    if items.len() > max_events {
        return Err(BodyError::TooManyEvents { max: max_events });
    }
    let mut out = Parsed {
        events: Vec::with_capacity(items.len()),
        index: Vec::with_capacity(items.len()),
        rejected: Vec::new(),
    };
    for (i, raw) in items.into_iter().enumerate() {
        push(&mut out, i, parse_one(raw.get().as_bytes(), now_ms));
    }
    Ok(out)
}

fn parse_ndjson(body: &[u8], now_ms: i64, max_events: usize) -> Result<Parsed, BodyError> {
    // An estimate for the capacity: typical events are 80-200 bytes.
    let guess = (body.len() / 96).clamp(1, max_events);
    let mut out = Parsed {
        events: Vec::with_capacity(guess),
        index: Vec::with_capacity(guess),
        rejected: Vec::new(),
    };
    let mut i = 0;
    for line in body.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if i == max_events {
            return Err(BodyError::TooManyEvents { max: max_events });
        }
        push(&mut out, i, parse_one(line, now_ms));
        i += 1;
    }
    Ok(out)
}

fn push(out: &mut Parsed, index: usize, r: Result<Event, (&'static str, String)>) {
    match r {
        Ok(e) => {
            out.events.push(e);
            out.index.push(index);
        }
        Err((reason, error)) => out.rejected.push(Rejection {
            index,
            reason,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn ndjson_and_arrays_parse_the_same_events() {
        let nd = b"{\"metric\":\"m\",\"timestamp\":5,\"value\":1.5,\"dims\":{\"a\":\"x\",\"b\":\"y\"},\"entity\":\"u1\"}\n\n{\"metric\":\"m\",\"value\":2}\r\n";
        let arr = b" [{\"metric\":\"m\",\"timestamp\":5,\"value\":1.5,\"dims\":{\"a\":\"x\",\"b\":\"y\"},\"entity\":\"u1\"}, {\"metric\":\"m\",\"value\":2}]";
        for body in [&nd[..], &arr[..]] {
            let p = parse(body, NOW, 10).unwrap();
            assert!(p.rejected.is_empty(), "{:?}", p.rejected);
            assert_eq!(p.events.len(), 2);
            assert_eq!(p.index, vec![0, 1]);
            let e = &p.events[0];
            assert_eq!((e.metric(), e.timestamp_ms(), e.value()), ("m", 5, 1.5));
            assert_eq!(e.dim_value("b"), Some("y"));
            assert!(e.entity_hash().is_some());
            assert_eq!(p.events[1].timestamp_ms(), NOW, "missing timestamp = now");
        }
    }

    #[test]
    fn bad_events_are_rejected_by_index_and_the_rest_kept() {
        let body = b"{\"metric\":\"m\",\"value\":1}\n{\"metric\":\"m\",\"value\":\"x\"}\nnot json\n{\"metric\":\"m\",\"value\":3,\"extra\":1}\n{\"metric\":\"m\",\"value\":4}";
        let p = parse(body, NOW, 10).unwrap();
        assert_eq!(p.index, vec![0, 4]);
        let r: Vec<(usize, &str)> = p.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            r,
            vec![
                (1, "invalid_event"),
                (2, "invalid_json"),
                (3, "invalid_event")
            ]
        );
        assert!(
            p.rejected[0].error.contains("invalid type"),
            "{}",
            p.rejected[0].error
        );
        assert!(
            p.rejected[2].error.contains("extra"),
            "{}",
            p.rejected[2].error
        );
    }

    #[test]
    fn malformed_bodies_and_limits() {
        assert!(matches!(
            parse(b"  \n", NOW, 10),
            Err(BodyError::Malformed(_))
        ));
        let e = parse(b"[{\"metric\":\"m\",\"value\":1},", NOW, 10).unwrap_err();
        assert!(
            matches!(&e, BodyError::Malformed(m) if m.contains("line 1")),
            "{e:?}"
        );
        assert!(matches!(
            parse(b"garbage\nmore", NOW, 10),
            Err(BodyError::Malformed(_))
        ));
        let many = "{\"metric\":\"m\",\"value\":1}\n".repeat(11);
        assert_eq!(
            parse(many.as_bytes(), NOW, 10).unwrap_err(),
            BodyError::TooManyEvents { max: 10 }
        );
        let arr = format!("[{}]", ["{\"metric\":\"m\",\"value\":1}"; 11].join(","));
        assert_eq!(
            parse(arr.as_bytes(), NOW, 10).unwrap_err(),
            BodyError::TooManyEvents { max: 10 }
        );
        // A flood of dimensions is refused while parsing (no quadratic insert).
        let dims: Vec<String> = (0..=MAX_WIRE_DIMS)
            .map(|i| format!("\"k{i}\":\"v\""))
            .collect();
        let body = format!(
            "{{\"metric\":\"m\",\"value\":1,\"dims\":{{{}}}}}",
            dims.join(",")
        );
        let p = parse(body.as_bytes(), NOW, 10).unwrap();
        assert!(
            p.rejected[0].error.contains("more than 64 dimensions"),
            "{:?}",
            p.rejected
        );
        // Wrong types everywhere is not "malformed": each event is reported.
        let p = parse(b"{\"metric\":1,\"value\":1}", NOW, 10).unwrap();
        assert_eq!(p.rejected[0].reason, "invalid_event");
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let p = parse(
            br#"{"metric":"a\"b","value":1,"dims":{"k\u00e9":"v\n"}}"#,
            NOW,
            1,
        )
        .unwrap();
        assert_eq!(p.events[0].metric(), "a\"b");
        assert_eq!(p.events[0].dim_value("k\u{e9}"), Some("v\n"));
    }
}
