//! Compressed node data (Curator's `CompressionProvider`): `compressed()` on creates, data
//! writes and transactions, `decompressed()` on reads, or everything with
//! [`ClientBuilder::enable_compression`](crate::ClientBuilder::enable_compression).

use std::fmt;
use std::io::{self, Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// Compresses node data before it is written and decompresses it after it is read.
pub trait CompressionProvider: Send + Sync + fmt::Debug {
    /// The bytes to store for `data` at `path` (the path as the caller gave it).
    ///
    /// # Errors
    /// Any I/O error of the codec.
    fn compress(&self, path: &str, data: &[u8]) -> io::Result<Vec<u8>>;

    /// The data stored as `compressed` at `path`.
    ///
    /// # Errors
    /// The bytes are not what [`compress`](Self::compress) makes.
    fn decompress(&self, path: &str, compressed: &[u8]) -> io::Result<Vec<u8>>;
}

/// The default provider: gzip (RFC 1952), as Curator's `GzipCompressionProvider`, so Java
/// and Rust clients read each other's compressed nodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GzipCompressionProvider;

/// Decompressed data larger than this is refused: a node holds at most 1 MiB, and gzip
/// cannot expand it by more than about 1000x; the bound keeps a hostile node from taking all
/// memory.
const MAX_DECOMPRESSED: u64 = 1 << 30;

impl CompressionProvider for GzipCompressionProvider {
    fn compress(&self, _path: &str, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data)?;
        encoder.finish()
    }

    fn decompress(&self, _path: &str, compressed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        MultiGzDecoder::new(compressed)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "decompressed data exceeds 1 GiB",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_rejects_what_is_not_gzip() {
        let gzip = GzipCompressionProvider;
        for data in [&b""[..], b"x", &[7u8; 100_000]] {
            let packed = gzip.compress("/p", data).unwrap();
            // The gzip magic, as Java's GZIPOutputStream writes it.
            assert_eq!(&packed[..2], &[0x1f, 0x8b]);
            assert_eq!(gzip.decompress("/p", &packed).unwrap(), data);
        }
        assert!(gzip.compress("/p", &[7u8; 100_000]).unwrap().len() < 1_000);
        assert!(gzip.decompress("/p", b"plain text").is_err());
        let packed = gzip.compress("/p", b"some data").unwrap();
        assert!(gzip.decompress("/p", &packed[..packed.len() - 3]).is_err());
    }
}
