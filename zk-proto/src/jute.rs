//! Jute, ZooKeeper's binary record encoding: big-endian integers, length-prefixed strings and
//! buffers (`-1` = null), count-prefixed vectors (`-1` = null), and nested records as their fields
//! concatenated in declaration order.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;

/// A record or primitive that can be written in jute's binary form.
pub trait Encode {
    /// Appends the encoded bytes to `buf`.
    fn encode(&self, buf: &mut BytesMut);

    /// Encodes into a fresh buffer (sized for a typical record, so that small ones are written
    /// without reallocating).
    fn to_bytes(&self) -> BytesMut {
        let mut buf = BytesMut::with_capacity(256);
        self.encode(&mut buf);
        buf
    }
}

/// A record or primitive that can be read from jute's binary form.
pub trait Decode: Sized {
    /// The fewest bytes one encoded value can take. Used to reject element counts that the input
    /// cannot possibly hold before allocating for them.
    const MIN_LEN: usize;

    /// Reads one value, advancing the reader past it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes one value from the start of `bytes`. Trailing bytes are ignored, as Apache
    /// ZooKeeper's own deserializers ignore them.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(bytes))
    }
}

/// A cursor over an input slice with checked reads.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The unconsumed bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Consumes exactly `n` bytes.
    pub fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::UnexpectedEof {
                what,
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(what, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>(what)?[0])
    }

    /// Reads a jute `boolean` (any non-zero byte is true).
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.read_u8(what)? != 0)
    }

    /// Reads a jute `int`.
    pub fn read_i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take_array(what)?))
    }

    /// Reads a jute `long`.
    pub fn read_i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take_array(what)?))
    }

    /// Reads a length prefix: `None` for `-1` (null), an error for other negative values or a
    /// length that would need more than `remaining() / min_elem_len` bytes.
    pub fn read_len(
        &mut self,
        what: &'static str,
        min_elem_len: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let len = self.read_i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(count) = usize::try_from(len) else {
            return Err(DecodeError::NegativeLength { what, len });
        };
        if count.saturating_mul(min_elem_len.max(1)) > self.buf.len() {
            return Err(DecodeError::LengthExceedsInput {
                what,
                len,
                remaining: self.buf.len(),
            });
        }
        Ok(Some(count))
    }

    /// Reads a jute `buffer`; `None` is the null buffer (length `-1`).
    pub fn read_buffer(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.read_len(what, 1)? {
            None => Ok(None),
            Some(n) => self.take(what, n).map(Some),
        }
    }

    /// Reads a jute `ustring`; `None` is the null string (length `-1`). Never an encoding
    /// error, as in Java (see [`decode_java_utf8`]).
    pub fn read_ustring(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Cow<'a, str>>, DecodeError> {
        Ok(self.read_buffer(what)?.map(decode_java_utf8))
    }

    /// Reads a jute `vector<T>`; `None` is the null vector (count `-1`). The count is checked
    /// against the input before any allocation.
    pub fn read_vector<T: Decode>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(count) = self.read_len(what, T::MIN_LEN)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(T::decode(self)?);
        }
        Ok(Some(out))
    }
}

/// Writes a jute length prefix or null marker.
fn put_len(buf: &mut BytesMut, len: Option<usize>) {
    match len {
        None => buf.put_i32(-1),
        // Lengths are bounded by jute.maxbuffer long before they could exceed i32::MAX.
        Some(n) => buf.put_i32(i32::try_from(n).unwrap_or(i32::MAX)),
    }
}

/// Writes a jute `buffer`; `None` writes the null marker `-1`.
pub fn put_buffer(buf: &mut BytesMut, data: Option<&[u8]>) {
    put_len(buf, data.map(<[u8]>::len));
    if let Some(data) = data {
        buf.put_slice(data);
    }
}

/// Writes a jute `ustring`.
pub fn put_ustring(buf: &mut BytesMut, s: &str) {
    put_buffer(buf, Some(s.as_bytes()));
}

/// Writes a jute `vector<T>`; `None` writes the null marker `-1`.
pub fn put_vector<T: Encode>(buf: &mut BytesMut, items: Option<&[T]>) {
    put_len(buf, items.map(<[T]>::len));
    for item in items.into_iter().flatten() {
        item.encode(buf);
    }
}

impl Encode for i32 {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(*self);
    }
}

impl Decode for i32 {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32("int")
    }
}

impl Encode for i64 {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i64(*self);
    }
}

impl Decode for i64 {
    const MIN_LEN: usize = 8;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64("long")
    }
}

impl Encode for bool {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(u8::from(*self));
    }
}

impl Decode for bool {
    const MIN_LEN: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool("boolean")
    }
}

/// A jute `ustring` from a Java peer. Java's writer encodes each UTF-16 unit on its own, so a
/// character beyond the BMP arrives as two 3-byte surrogates (CESU-8); those pairs become the
/// character they encode (Java's own reader makes two U+FFFD of them: joining them is a
/// deliberate difference, so that such an id written by a Java client reads back as
/// written). Like Java's reader this never fails: any other ill-formed sequence becomes
/// U+FFFD (which no valid path contains, so a path with it is refused as Apache refuses it).
pub fn decode_java_utf8(bytes: &[u8]) -> Cow<'_, str> {
    let mut rest = match std::str::from_utf8(bytes) {
        Ok(s) => return Cow::Borrowed(s),
        Err(_) => bytes,
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return Cow::Owned(out);
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let skip = if let Some(c) = surrogate_pair(bad) {
                    out.push(c);
                    6
                } else {
                    out.push(char::REPLACEMENT_CHARACTER);
                    e.error_len().unwrap_or(bad.len()).max(1)
                };
                rest = bad.get(skip..).unwrap_or_default();
            }
        }
    }
}

/// The character a CESU-8 surrogate pair at the start of `bytes` encodes.
fn surrogate_pair(bytes: &[u8]) -> Option<char> {
    let &[0xED, h1 @ 0xA0..=0xAF, h2 @ 0x80..=0xBF, 0xED, l1 @ 0xB0..=0xBF, l2 @ 0x80..=0xBF, ..] =
        bytes
    else {
        return None;
    };
    let high = (u32::from(h1 & 0x0F) << 6) | u32::from(h2 & 0x3F);
    let low = (u32::from(l1 & 0x0F) << 6) | u32::from(l2 & 0x3F);
    char::from_u32(0x10000 + (high << 10) + low)
}

/// A `ustring`. The null string (`-1`, which kazoo writes for empty strings) decodes as `""`.
impl Encode for String {
    fn encode(&self, buf: &mut BytesMut) {
        put_ustring(buf, self);
    }
}

impl Decode for String {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_ustring("string")?
            .map(Cow::into_owned)
            .unwrap_or_default())
    }
}

/// A nullable `ustring`: `None` is written as length `-1` and read back as `None` (the
/// reconfig request tells "not given" from "empty" this way).
impl Encode for Option<String> {
    fn encode(&self, buf: &mut BytesMut) {
        put_buffer(buf, self.as_deref().map(str::as_bytes));
    }
}

impl Decode for Option<String> {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_ustring("string")?.map(Cow::into_owned))
    }
}

/// A non-null `buffer`. The null buffer decodes as empty.
impl Encode for Vec<u8> {
    fn encode(&self, buf: &mut BytesMut) {
        put_buffer(buf, Some(self));
    }
}

impl Decode for Vec<u8> {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_buffer("buffer")?.unwrap_or_default().to_vec())
    }
}

/// A nullable `buffer`: `None` is written as length `-1` and read back as `None`.
impl Encode for Option<Vec<u8>> {
    fn encode(&self, buf: &mut BytesMut) {
        put_buffer(buf, self.as_deref());
    }
}

impl Decode for Option<Vec<u8>> {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_buffer("buffer")?.map(<[u8]>::to_vec))
    }
}

/// Implements `Encode`/`Decode` for `Vec<T>` as a jute `vector<T>` whose null form decodes as
/// empty. Not generic over `T` because `Vec<u8>` is a jute `buffer`.
macro_rules! jute_vector {
    ($($elem:ty),* $(,)?) => {$(
        impl $crate::jute::Encode for Vec<$elem> {
            fn encode(&self, buf: &mut ::bytes::BytesMut) {
                $crate::jute::put_vector(buf, Some(self.as_slice()));
            }
        }

        impl $crate::jute::Decode for Vec<$elem> {
            const MIN_LEN: usize = 4;
            fn decode(r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::error::DecodeError> {
                Ok(r.read_vector::<$elem>("vector")?.unwrap_or_default())
            }
        }
    )*};
}
pub(crate) use jute_vector;

jute_vector!(String, i64);

/// Defines a jute record: a struct whose fields are encoded in declaration order, with `Encode`,
/// `Decode` and (in tests) proptest's `Arbitrary`.
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $crate::jute::Encode for $name {
            #[allow(unused_variables)]
            fn encode(&self, buf: &mut ::bytes::BytesMut) {
                $( $crate::jute::Encode::encode(&self.$field, buf); )*
            }
        }

        impl $crate::jute::Decode for $name {
            const MIN_LEN: usize = 0 $( + <$ty as $crate::jute::Decode>::MIN_LEN )*;
            #[allow(unused_variables)]
            fn decode(r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::error::DecodeError> {
                Ok($name {
                    $( $field: $crate::jute::Decode::decode(r)?, )*
                })
            }
        }
    };
}
pub(crate) use record;

/// Implements `Encode`/`Decode` for a fieldless enum carried on the wire as a jute `int`, given
/// `TryFrom<i32>` and `From<Self> for i32`.
macro_rules! int_enum_codec {
    ($ty:ty, $what:literal) => {
        impl $crate::jute::Encode for $ty {
            fn encode(&self, buf: &mut ::bytes::BytesMut) {
                ::bytes::BufMut::put_i32(buf, i32::from(*self));
            }
        }

        impl $crate::jute::Decode for $ty {
            const MIN_LEN: usize = 4;
            fn decode(
                r: &mut $crate::jute::Reader<'_>,
            ) -> Result<Self, $crate::error::DecodeError> {
                let value = r.read_i32($what)?;
                <$ty>::try_from(value).map_err(|_| $crate::error::DecodeError::InvalidValue {
                    what: $what,
                    value: i64::from(value),
                })
            }
        }
    };
}
pub(crate) use int_enum_codec;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        let mut buf = BytesMut::new();
        0x0102_0304i32.encode(&mut buf);
        (-2i64).encode(&mut buf);
        true.encode(&mut buf);
        assert_eq!(
            &buf[..],
            &[1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1]
        );
    }

    #[test]
    fn null_buffer_and_string() {
        let mut buf = BytesMut::new();
        None::<Vec<u8>>.encode(&mut buf);
        assert_eq!(&buf[..], &[0xff; 4]);
        assert_eq!(Option::<Vec<u8>>::from_bytes(&buf), Ok(None));
        assert_eq!(String::from_bytes(&buf).as_deref(), Ok(""));
        assert_eq!(Vec::<String>::from_bytes(&buf), Ok(vec![]));
        assert_eq!(Option::<String>::from_bytes(&buf), Ok(None));
        let mut empty = BytesMut::new();
        Some(String::new()).encode(&mut empty);
        assert_eq!(&empty[..], &[0; 4]);
        assert_eq!(
            Option::<String>::from_bytes(&empty),
            Ok(Some(String::new()))
        );
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        assert_eq!(bool::from_bytes(&[7]), Ok(true));
        assert_eq!(bool::from_bytes(&[0]), Ok(false));
    }

    #[test]
    fn vector_count_beyond_input_is_rejected_before_allocating() {
        let mut bytes = vec![0x7f, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            Vec::<String>::from_bytes(&bytes),
            Err(DecodeError::LengthExceedsInput {
                what: "vector",
                len: i32::MAX,
                remaining: 16
            })
        );
    }

    #[test]
    fn negative_and_truncated_lengths() {
        assert_eq!(
            String::from_bytes(&(-5i32).to_be_bytes()),
            Err(DecodeError::NegativeLength {
                what: "string",
                len: -5
            })
        );
        assert!(matches!(
            String::from_bytes(&[0, 0, 0, 9, b'a']),
            Err(DecodeError::LengthExceedsInput {
                len: 9,
                remaining: 1,
                ..
            })
        ));
        assert!(matches!(
            i64::from_bytes(&[1, 2, 3]),
            Err(DecodeError::UnexpectedEof {
                needed: 8,
                remaining: 3,
                ..
            })
        ));
    }

    #[test]
    fn strings_decode_as_java_writes_them_and_never_fail() {
        // Java writes U+1F600 as a surrogate pair, each half in 3 bytes.
        assert_eq!(
            String::from_bytes(&[0, 0, 0, 8, b'a', 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80, b'b']),
            Ok("a\u{1F600}b".to_owned())
        );
        assert_eq!(
            String::from_bytes(&[0, 0, 0, 3, b'/', 0xc3, 0x28]),
            Ok("/\u{FFFD}(".to_owned())
        );
        assert_eq!(
            String::from_bytes(&[0, 0, 0, 1, 0xFF]),
            Ok("\u{FFFD}".to_owned())
        );
        // A lone high surrogate, and one cut short at the end.
        let lone = String::from_bytes(&[0, 0, 0, 4, 0xED, 0xA0, 0xBD, b'x']).unwrap();
        assert!(
            lone.ends_with('x') && lone.starts_with('\u{FFFD}'),
            "{lone:?}"
        );
        let cut = String::from_bytes(&[0, 0, 0, 5, 0xED, 0xA0, 0xBD, 0xED, 0xB8]).unwrap();
        assert!(cut.chars().all(|c| c == '\u{FFFD}'), "{cut:?}");
        // Proper UTF-8 (as our encoder and Java's reader handle it) is borrowed as is.
        assert!(matches!(
            decode_java_utf8("é😀".as_bytes()),
            Cow::Borrowed(_)
        ));
    }
}
