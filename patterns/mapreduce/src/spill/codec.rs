//! The [`Spill`] impls for std types, and the LEB128 varint helpers they share with the
//! run file framing. The encoding table is in the parent module's docs.

use std::mem::size_of;

use super::{Spill, SpillError, corrupt};

// ---------------------------------------------------------------------------------------
// Varints (unsigned LEB128) and zigzag.
// ---------------------------------------------------------------------------------------

/// The most bytes a `u64` varint takes: ceil(64 / 7).
const MAX_VARINT_U64: usize = 10;
/// The most bytes a `u128` varint takes: ceil(128 / 7).
const MAX_VARINT_U128: usize = 19;

/// Appends `v` as an unsigned LEB128 varint.
pub(super) fn put_u64(out: &mut Vec<u8>, v: u64) {
    put_u128(out, u128::from(v));
}

/// Appends `v` as an unsigned LEB128 varint.
fn put_u128(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Takes the first byte of `input`.
fn take_byte(input: &mut &[u8], what: &'static str) -> Result<u8, SpillError> {
    let (&b, rest) = input.split_first().ok_or(corrupt(what))?;
    *input = rest;
    Ok(b)
}

/// Takes a varint of at most 64 bits from the front of `input`.
pub(super) fn get_u64(input: &mut &[u8]) -> Result<u64, SpillError> {
    // The last of the ten bytes holds only bit 63, so the value fits 64 bits.
    get_varint(input, MAX_VARINT_U64, 1, "varint overflows 64 bits").map(|v| v as u64)
}

/// Takes a varint of at most 128 bits from the front of `input`.
fn get_u128(input: &mut &[u8]) -> Result<u128, SpillError> {
    // The last of the nineteen bytes holds only bits 126 and 127.
    get_varint(input, MAX_VARINT_U128, 3, "varint overflows 128 bits")
}

/// Takes a varint of at most `max_bytes` bytes whose last byte may be at most `last_max`
/// (so that the value fits the target width).
fn get_varint(
    input: &mut &[u8],
    max_bytes: usize,
    last_max: u8,
    overflow: &'static str,
) -> Result<u128, SpillError> {
    let mut value = 0u128;
    for i in 0..max_bytes {
        let b = take_byte(input, "truncated varint")?;
        if i == max_bytes - 1 && b > last_max {
            return Err(corrupt(overflow));
        }
        value |= u128::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    // Unreachable in practice: the check above rejects a continuation bit on the last byte.
    Err(corrupt(overflow))
}

/// Takes a length prefix (a varint that must fit `usize`).
fn get_len(input: &mut &[u8]) -> Result<usize, SpillError> {
    usize::try_from(get_u64(input)?).map_err(|_| corrupt("length does not fit usize"))
}

/// Splits `len` bytes off the front of `input`.
fn take_bytes<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], SpillError> {
    if len > input.len() {
        return Err(corrupt("truncated string"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag128(v: u128) -> i128 {
    ((v >> 1) as i128) ^ -((v & 1) as i128)
}

// ---------------------------------------------------------------------------------------
// Scalars.
// ---------------------------------------------------------------------------------------

impl Spill for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        take_byte(input, "truncated u8")
    }
}

impl Spill for i8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        take_byte(input, "truncated i8").map(|b| b as i8)
    }
}

/// Unsigned types up to 64 bits: a varint, range-checked on the way back.
macro_rules! spill_unsigned {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Spill for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                put_u64(out, *self as u64);
            }
            fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
                <$t>::try_from(get_u64(input)?).map_err(|_| corrupt($what))
            }
        }
    )*};
}

spill_unsigned! {
    u16 => "varint out of range for u16",
    u32 => "varint out of range for u32",
    u64 => "varint out of range for u64",
    usize => "varint out of range for usize",
}

/// Signed types up to 64 bits: zigzag, then a varint, range-checked on the way back.
macro_rules! spill_signed {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Spill for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                put_u64(out, zigzag64(*self as i64));
            }
            fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
                <$t>::try_from(unzigzag64(get_u64(input)?)).map_err(|_| corrupt($what))
            }
        }
    )*};
}

spill_signed! {
    i16 => "varint out of range for i16",
    i32 => "varint out of range for i32",
    i64 => "varint out of range for i64",
    isize => "varint out of range for isize",
}

impl Spill for u128 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u128(out, *self);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        get_u128(input)
    }
}

impl Spill for i128 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u128(out, zigzag128(*self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        get_u128(input).map(unzigzag128)
    }
}

impl Spill for f32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let (bytes, rest) = input.split_first_chunk().ok_or(corrupt("truncated f32"))?;
        *input = rest;
        Ok(f32::from_bits(u32::from_le_bytes(*bytes)))
    }
}

impl Spill for f64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let (bytes, rest) = input.split_first_chunk().ok_or(corrupt("truncated f64"))?;
        *input = rest;
        Ok(f64::from_bits(u64::from_le_bytes(*bytes)))
    }
}

impl Spill for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        match take_byte(input, "truncated bool")? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("bool byte is neither 0 nor 1")),
        }
    }
}

impl Spill for char {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, u64::from(u32::from(*self)));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        u32::try_from(get_u64(input)?)
            .ok()
            .and_then(char::from_u32)
            .ok_or(corrupt("invalid char"))
    }
}

impl Spill for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut &[u8]) -> Result<Self, SpillError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Strings and containers.
// ---------------------------------------------------------------------------------------

/// Takes a length-prefixed UTF-8 string.
fn get_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, SpillError> {
    let len = get_len(input)?;
    std::str::from_utf8(take_bytes(input, len)?).map_err(|_| corrupt("string is not UTF-8"))
}

impl Spill for String {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        get_str(input).map(str::to_owned)
    }
    fn approx_size(&self) -> usize {
        size_of::<String>() + self.capacity()
    }
}

impl Spill for Box<str> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        get_str(input).map(Box::from)
    }
    fn approx_size(&self) -> usize {
        size_of::<Box<str>>() + self.len()
    }
}

impl<T: Spill> Spill for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.len() as u64);
        for item in self {
            item.encode(out);
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        let len = get_len(input)?;
        // A corrupt count must not reserve more than the input could hold (one byte per
        // element at least, for any element type that encodes to something); the vector
        // still grows past that if zero-byte elements really are there.
        let mut items = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            items.push(T::decode(input)?);
        }
        Ok(items)
    }

    /// The vector itself, its unused capacity, and each element's own approximate size.
    fn approx_size(&self) -> usize {
        let spare = (self.capacity() - self.len()) * size_of::<T>();
        let items: usize = self.iter().map(Spill::approx_size).sum();
        size_of::<Vec<T>>() + spare + items
    }
}

impl<T: Spill> Spill for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        match take_byte(input, "truncated Option tag")? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            _ => Err(corrupt("Option tag is neither 0 nor 1")),
        }
    }

    /// The option inline, plus whatever the value owns beyond its inline size.
    fn approx_size(&self) -> usize {
        size_of::<Self>() + self.as_ref().map_or(0, heap_size)
    }
}

/// What `value` owns beyond its inline size, by its own [`Spill::approx_size`] (saturating,
/// so an impl that under-reports cannot underflow).
fn heap_size<T: Spill>(value: &T) -> usize {
    value.approx_size().saturating_sub(size_of::<T>())
}

impl<A: Spill, B: Spill> Spill for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        Ok((A::decode(input)?, B::decode(input)?))
    }
    /// The tuple inline (with padding), plus what each field owns beyond its inline size.
    fn approx_size(&self) -> usize {
        size_of::<Self>() + heap_size(&self.0) + heap_size(&self.1)
    }
}

impl<A: Spill, B: Spill, C: Spill> Spill for (A, B, C) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, SpillError> {
        Ok((A::decode(input)?, B::decode(input)?, C::decode(input)?))
    }
    /// The tuple inline (with padding), plus what each field owns beyond its inline size.
    fn approx_size(&self) -> usize {
        size_of::<Self>() + heap_size(&self.0) + heap_size(&self.1) + heap_size(&self.2)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use proptest::prelude::*;

    use super::*;

    /// Checks that `value` round-trips, that decode consumes exactly its encoding (bytes
    /// after it are left alone), and that every proper prefix fails to decode.
    fn check<T: Spill + Debug>(value: &T, same: impl Fn(&T, &T) -> bool) {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        let len = bytes.len();
        bytes.extend_from_slice(b"\xAB\xCD");

        let mut input = &bytes[..];
        let back = T::decode(&mut input).expect("decoding an encoding succeeds");
        assert!(same(value, &back), "{value:?} came back as {back:?}");
        assert_eq!(
            input, b"\xAB\xCD",
            "decode consumed the wrong number of bytes"
        );

        for cut in 0..len {
            let mut input = &bytes[..cut];
            assert!(
                T::decode(&mut input).is_err(),
                "prefix of {cut}/{len} bytes of {value:?} decoded"
            );
        }
    }

    fn check_eq<T: Spill + Debug + PartialEq>(value: T) {
        check(&value, T::eq);
    }

    /// Decoding arbitrary bytes returns, never panics, and never reads past the input.
    fn no_panic<T: Spill>(bytes: &[u8]) {
        let mut input = bytes;
        if T::decode(&mut input).is_ok() {
            assert!(input.len() <= bytes.len());
        }
    }

    proptest! {
        #[test]
        fn unsigned(a: u8, b: u16, c: u32, d: u64, e: u128, f: usize) {
            check_eq(a);
            check_eq(b);
            check_eq(c);
            check_eq(d);
            check_eq(e);
            check_eq(f);
        }

        #[test]
        fn signed(a: i8, b: i16, c: i32, d: i64, e: i128, f: isize) {
            check_eq(a);
            check_eq(b);
            check_eq(c);
            check_eq(d);
            check_eq(e);
            check_eq(f);
        }

        #[test]
        fn floats_are_bit_exact(a: u32, b: u64) {
            check(&f32::from_bits(a), |x, y| x.to_bits() == y.to_bits());
            check(&f64::from_bits(b), |x, y| x.to_bits() == y.to_bits());
        }

        #[test]
        fn scalars(a: bool, b: char) {
            check_eq(a);
            check_eq(b);
            check_eq(());
        }

        #[test]
        fn strings(s: String) {
            check_eq(s.clone().into_boxed_str());
            check_eq(s);
        }

        #[test]
        fn containers(
            v in prop::collection::vec(any::<(i32, Option<String>)>(), 0..20),
            units in 0usize..300,
            nested: Option<Option<u64>>,
            triple: (bool, Vec<u8>, char),
        ) {
            check_eq(v);
            check_eq(vec![(); units]);
            check_eq(nested);
            check_eq(triple);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            no_panic::<u16>(&bytes);
            no_panic::<u64>(&bytes);
            no_panic::<i128>(&bytes);
            no_panic::<usize>(&bytes);
            no_panic::<f64>(&bytes);
            no_panic::<bool>(&bytes);
            no_panic::<char>(&bytes);
            no_panic::<String>(&bytes);
            no_panic::<Box<str>>(&bytes);
            no_panic::<Vec<(u8, Option<String>)>>(&bytes);
            no_panic::<Vec<()>>(&bytes[..bytes.len().min(2)]);
            no_panic::<(i32, Vec<f32>, Option<bool>)>(&bytes);
        }
    }

    #[test]
    fn varint_boundaries() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ] {
            check_eq(v);
        }
        for v in [0, 1, u128::from(u64::MAX) + 1, u128::MAX - 1, u128::MAX] {
            check_eq(v);
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX, i64::MIN + 1] {
            check_eq(v);
        }
        for v in [i128::MIN, i128::MAX, -1] {
            check_eq(v);
        }
        let mut bytes = Vec::new();
        put_u64(&mut bytes, 300);
        assert_eq!(bytes, [0xAC, 0x02], "LEB128 puts the low 7 bits first");
        assert_eq!(zigzag64(-1), 1);
        assert_eq!(zigzag64(1), 2);
        assert_eq!(zigzag64(i64::MIN), u64::MAX);
    }

    fn corrupt_what<T: Spill + Debug>(bytes: &[u8]) -> &'static str {
        match T::decode(&mut &bytes[..]) {
            Err(SpillError::Corrupt { what }) => what,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn invalid_input_is_corrupt() {
        let overlong = [0xFF; 10];
        assert_eq!(corrupt_what::<u64>(&overlong), "varint overflows 64 bits");
        let tenth_too_big = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        assert_eq!(
            corrupt_what::<u64>(&tenth_too_big),
            "varint overflows 64 bits"
        );
        assert_eq!(
            corrupt_what::<u128>(&[0xFF; 19]),
            "varint overflows 128 bits"
        );
        assert_eq!(
            corrupt_what::<u16>(&[0x80, 0x80, 0x04]),
            "varint out of range for u16"
        );
        assert_eq!(
            corrupt_what::<i16>(&[0x80, 0x80, 0x04]),
            "varint out of range for i16"
        );
        assert_eq!(corrupt_what::<bool>(&[2]), "bool byte is neither 0 nor 1");
        // U+D800 is a surrogate, not a char.
        let mut surrogate = Vec::new();
        put_u64(&mut surrogate, 0xD800);
        assert_eq!(corrupt_what::<char>(&surrogate), "invalid char");
        assert_eq!(
            corrupt_what::<String>(&[2, 0xC3, 0x28]),
            "string is not UTF-8"
        );
        assert_eq!(
            corrupt_what::<Option<u8>>(&[7, 0]),
            "Option tag is neither 0 nor 1"
        );
        // A huge element count with too little input fails without a huge allocation.
        let mut huge = Vec::new();
        put_u64(&mut huge, u64::MAX >> 1);
        assert!(Vec::<u64>::decode(&mut &huge[..]).is_err());
        assert!(String::decode(&mut &huge[..]).is_err());
    }

    #[test]
    fn approx_sizes() {
        assert_eq!(7u32.approx_size(), 4);
        let s = String::with_capacity(100);
        assert_eq!(s.approx_size(), size_of::<String>() + 100);
        let b: Box<str> = "hello".into();
        assert_eq!(b.approx_size(), size_of::<Box<str>>() + 5);
        let v = vec![String::from("ab"), String::from("cde")];
        assert_eq!(
            v.approx_size(),
            size_of::<Vec<String>>() + v[0].approx_size() + v[1].approx_size()
        );
        let mut spare: Vec<u64> = Vec::with_capacity(10);
        spare.push(1);
        assert_eq!(spare.approx_size(), size_of::<Vec<u64>>() + 10 * 8);
        let pair = (String::from("key"), 1u64);
        assert_eq!(
            pair.approx_size(),
            size_of::<(String, u64)>() + pair.0.capacity()
        );
        let some = Some(String::from("xy"));
        assert_eq!(some.approx_size(), size_of::<Option<String>>() + 2);
        assert_eq!(None::<String>.approx_size(), size_of::<Option<String>>());
    }
}
