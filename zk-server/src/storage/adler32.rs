//! Adler-32, the checksum Apache ZooKeeper puts on txn-log entries and snapshots.

const MOD: u32 = 65_521;
/// Bytes that can be summed before the running sums must be reduced (keeps `b` below 2^32).
const NMAX: usize = 5552;

/// A running Adler-32 checksum.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    /// Adds bytes to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(NMAX) {
            for &byte in chunk {
                self.a += u32::from(byte);
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }

    /// The checksum so far.
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// The Adler-32 of `data`.
pub fn adler32(data: &[u8]) -> u32 {
    let mut sum = Adler32::default();
    sum.update(data);
    sum.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values from RFC 1950's definition (also zlib's adler32).
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big = vec![0xffu8; 100_000];
        let mut split = Adler32::default();
        split.update(&big[..33_333]);
        split.update(&big[33_333..]);
        assert_eq!(split.value(), adler32(&big));
    }
}
