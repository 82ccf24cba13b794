//! The checks of a downloaded file: size, SHA-256 and CRC-32C in one pass. SHA-1 is not
//! computed: once the SHA-256 matches it cannot tell anything more, and it would cost as much
//! CPU again. (The S3 ETag is not checked either: it depends on the part size the uploader
//! chose.)

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::files::Feed;

/// What a file's bytes hash to so far.
pub struct Verifier {
    sha256: Sha256,
    crc32c: u32,
    len: u64,
}

/// A file's size and checksums (lower-case hex).
pub struct Digests {
    /// Bytes hashed.
    pub len: u64,
    /// SHA-256.
    pub sha256: String,
    /// CRC-32C, big-endian.
    pub crc32c: String,
}

impl Verifier {
    /// Nothing hashed yet.
    pub fn new() -> Self {
        Self {
            sha256: Sha256::new(),
            crc32c: 0,
            len: 0,
        }
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
        self.len += data.len() as u64;
    }

    /// The size and checksums of everything hashed.
    pub fn finish(self) -> Digests {
        Digests {
            len: self.len,
            sha256: hex::encode(self.sha256.finalize()),
            crc32c: format!("{:08x}", self.crc32c),
        }
    }
}

impl Feed for Verifier {
    fn feed(&mut self, chunk: Bytes) {
        self.update(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_agree_with_the_shared_checksums() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut v = Verifier::new();
        v.update(&data[..40_000]);
        v.update(&data[40_000..]);
        let got = v.finish();
        let want = dss_core::checksum::checksums_of(&data);
        assert_eq!(got.len, 100_000);
        assert_eq!((got.sha256, got.crc32c), (want.sha256, want.crc32c));
    }
}
