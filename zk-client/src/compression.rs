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

/// The default limit of decompressed data (64 MiB): deflate expands up to about 1000x, so a
/// 1 MiB node could otherwise make a reader allocate a gigabyte.
pub const MAX_DECOMPRESSED: u64 = 64 << 20;

/// The default provider: gzip (RFC 1952), as Curator's `GzipCompressionProvider`, so Java
/// and Rust clients read each other's compressed nodes. Decompressed output beyond a limit
/// ([`MAX_DECOMPRESSED`] by default) is refused.
#[derive(Debug, Clone, Copy)]
pub struct GzipCompressionProvider {
    max_decompressed: u64,
}

impl Default for GzipCompressionProvider {
    fn default() -> Self {
        GzipCompressionProvider {
            max_decompressed: MAX_DECOMPRESSED,
        }
    }
}

impl GzipCompressionProvider {
    /// A provider refusing decompressed data longer than `bytes`.
    pub fn with_max_decompressed(bytes: u64) -> Self {
        GzipCompressionProvider {
            max_decompressed: bytes,
        }
    }
}

impl CompressionProvider for GzipCompressionProvider {
    fn compress(&self, _path: &str, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data)?;
        encoder.finish()
    }

    /// Empty data decompresses to empty data: nodes written without data (such as the
    /// parents a create makes) read as empty under
    /// [`enable_compression`](crate::ClientBuilder::enable_compression). Several gzip members
    /// are read one after the other, as Java's `GZIPInputStream` does.
    fn decompress(&self, _path: &str, compressed: &[u8]) -> io::Result<Vec<u8>> {
        if compressed.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        MultiGzDecoder::new(compressed)
            .take(self.max_decompressed.saturating_add(1))
            .read_to_end(&mut out)?;
        if out.len() as u64 > self.max_decompressed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "decompressed data exceeds the limit of {} bytes",
                    self.max_decompressed
                ),
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
        let gzip = GzipCompressionProvider::default();
        for data in [&b""[..], b"x", &[7u8; 100_000]] {
            let packed = gzip.compress("/p", data).unwrap();
            // The gzip magic, as Java's GZIPOutputStream writes it.
            assert_eq!(&packed[..2], &[0x1f, 0x8b]);
            assert_eq!(gzip.decompress("/p", &packed).unwrap(), data);
        }
        assert!(gzip.compress("/p", &[7u8; 100_000]).unwrap().len() < 1_000);
        assert!(gzip.decompress("/p", b"plain text").is_err());
        assert_eq!(gzip.decompress("/p", b"").unwrap(), b"");
        let packed = gzip.compress("/p", b"some data").unwrap();
        assert!(gzip.decompress("/p", &packed[..packed.len() - 3]).is_err());
        // Two members, as concatenated gzip files.
        let mut two = packed.clone();
        two.extend(gzip.compress("/p", b" and more").unwrap());
        assert_eq!(gzip.decompress("/p", &two).unwrap(), b"some data and more");

        // Beyond the limit: refused (2 MiB of zeros compress to about 2 KiB).
        let small = GzipCompressionProvider::with_max_decompressed(1 << 20);
        let bomb = small.compress("/p", &vec![0u8; 2 << 20]).unwrap();
        assert!(bomb.len() < 10 << 10, "{}", bomb.len());
        assert!(small.decompress("/p", &bomb).is_err());
        assert_eq!(small.decompress("/p", &packed).unwrap(), b"some data");
    }
}
