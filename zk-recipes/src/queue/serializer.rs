//! [`QueueSerializer`]: how a queue's items become bytes (Curator's `QueueSerializer`).

use std::fmt;

/// An error of a serializer or a consumer: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Turns a queue's items into bytes and back (Curator's `QueueSerializer`).
///
/// The bytes of each item are wrapped in Curator's item envelope in the node, so a Java
/// producer or consumer using a serializer with the same byte format shares the queue.
/// Deserialization gets bytes from the network: it must not panic on bad input (a consumer
/// that meets a panic drops the item, as one it cannot deserialize).
pub trait QueueSerializer<T>: Send + Sync + 'static {
    /// The bytes of `item`.
    ///
    /// # Errors
    /// Any error; the put fails with [`Error::Serialization`](crate::Error::Serialization).
    fn serialize(&self, item: &T) -> Result<Vec<u8>, BoxError>;

    /// The item in `bytes`.
    ///
    /// # Errors
    /// Any error; the consumer logs it and skips the item (it can never succeed).
    fn deserialize(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// Items are byte vectors, stored as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl QueueSerializer<Vec<u8>> for BytesSerializer {
    fn serialize(&self, item: &Vec<u8>) -> Result<Vec<u8>, BoxError> {
        Ok(item.clone())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.to_vec())
    }
}

/// Items are strings, stored as UTF-8 (bytes that are not UTF-8 fail to deserialize).
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8Serializer;

impl QueueSerializer<String> for Utf8Serializer {
    fn serialize(&self, item: &String) -> Result<Vec<u8>, BoxError> {
        Ok(item.as_bytes().to_vec())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<String, BoxError> {
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}

/// A serializer made of two closures (e.g. calling serde, or a hand-written format).
///
/// ```
/// use zk_recipes::queue::{FnSerializer, QueueSerializer};
///
/// let s = FnSerializer::new(
///     |n: &u64| Ok(n.to_be_bytes().to_vec()),
///     |b: &[u8]| Ok(u64::from_be_bytes(<[u8; 8]>::try_from(b)?)),
/// );
/// assert_eq!(s.deserialize(&s.serialize(&7).unwrap()).unwrap(), 7);
/// assert!(s.deserialize(b"short").is_err());
/// ```
pub struct FnSerializer<S, D> {
    serialize: S,
    deserialize: D,
}

impl<S, D> FnSerializer<S, D> {
    /// A serializer calling `serialize` and `deserialize`.
    pub fn new<T>(serialize: S, deserialize: D) -> FnSerializer<S, D>
    where
        S: Fn(&T) -> Result<Vec<u8>, BoxError>,
        D: Fn(&[u8]) -> Result<T, BoxError>,
    {
        FnSerializer {
            serialize,
            deserialize,
        }
    }
}

impl<S, D> fmt::Debug for FnSerializer<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSerializer").finish_non_exhaustive()
    }
}

impl<T, S, D> QueueSerializer<T> for FnSerializer<S, D>
where
    S: Fn(&T) -> Result<Vec<u8>, BoxError> + Send + Sync + 'static,
    D: Fn(&[u8]) -> Result<T, BoxError> + Send + Sync + 'static,
{
    fn serialize(&self, item: &T) -> Result<Vec<u8>, BoxError> {
        (self.serialize)(item)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<T, BoxError> {
        (self.deserialize)(bytes)
    }
}
