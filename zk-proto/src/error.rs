//! Errors raised while decoding bytes received from the network or read from disk.

use thiserror::Error;

/// A record could not be decoded.
///
/// Decoding never panics, and allocates within a small multiple of the input: every length and
/// count is checked against the bytes actually present before anything is allocated (an
/// element in memory is larger than its smallest encoding, e.g. a `String` for 4 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a field.
    #[error("truncated record: {what} needs {needed} more bytes but only {remaining} remain")]
    UnexpectedEof {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A length or count prefix was negative (and not the `-1` that means null).
    #[error("negative {what} length {len}")]
    NegativeLength {
        /// The field being read.
        what: &'static str,
        /// The length found.
        len: i32,
    },
    /// A length or count prefix claims more bytes or elements than the input can hold.
    #[error("{what} length {len} exceeds the {remaining} bytes left in the record")]
    LengthExceedsInput {
        /// The field being read.
        what: &'static str,
        /// The length or count found.
        len: i32,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A string field is not valid UTF-8.
    #[error("{what} is not valid UTF-8 (invalid byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
        /// Offset of the first invalid byte within the string.
        valid_up_to: usize,
    },
    /// A field holds a value outside its defined set (an unknown enum number, a bad marker).
    #[error("invalid {what}: {value}")]
    InvalidValue {
        /// The field being read.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// A text field does not have the required form (an election address that is not
    /// `host:port`).
    #[error("malformed {what}: {text:?}")]
    MalformedText {
        /// The field being read.
        what: &'static str,
        /// The offending text.
        text: String,
    },
}

/// A frame's 4-byte length prefix is unacceptable. Reported before any of the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    /// The length prefix exceeds the configured maximum (`jute.maxbuffer`).
    #[error("frame length {len} exceeds the maximum of {max} bytes (jute.maxbuffer)")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}
