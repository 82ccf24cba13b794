//! The four DSS checksums (SHA-256, SHA-1, S3 ETag, CRC-32C) computed in one streaming pass.
//!
//! SHA-256, SHA-1 and CRC-32C run in the caller's thread; MD5 (the S3 ETag's building block, and the
//! slowest of the four) moves to a thread of its own once the input passes [`OFFLOAD_MD5_AFTER`] bytes,
//! so a large upload is limited by MD5 alone rather than by the sum of all four.

use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::Sha256;

/// Default S3 multipart part size (64 MiB), as the original's `get_s3_multipart_chunk_size`.
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;
/// S3's maximum number of parts.
pub const MAX_PARTS: u64 = 10_000;
/// Inputs larger than this hash MD5 on a separate thread.
pub const OFFLOAD_MD5_AFTER: u64 = 4 * 1024 * 1024;

/// Why a checksum value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed checksum {name}")]
pub struct ChecksumFormatError {
    /// Which checksum (`sha256`, `sha1`, `s3_etag`, `crc32c`).
    pub name: &'static str,
}

/// The four checksums of a blob, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checksums {
    /// SHA-256 (64 hex).
    pub sha256: String,
    /// SHA-1 (40 hex).
    pub sha1: String,
    /// S3 ETag: MD5 (32 hex) or `md5-of-part-md5s-N`.
    pub s3_etag: String,
    /// CRC-32C, big-endian, 8 hex.
    pub crc32c: String,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks an S3 ETag: 32 hex digits, optionally `-N` with N in 2..=10000.
pub fn valid_s3_etag(s: &str) -> bool {
    match s.split_once('-') {
        None => is_hex(s, 32),
        Some((md5, n)) => {
            is_hex(md5, 32)
                && !n.starts_with('0')
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u64>().is_ok_and(|n| (2..=MAX_PARTS).contains(&n))
        }
    }
}

impl Checksums {
    /// Validates and lower-cases four checksum strings.
    pub fn new(
        sha256: &str,
        sha1: &str,
        s3_etag: &str,
        crc32c: &str,
    ) -> Result<Self, ChecksumFormatError> {
        let (sha256, sha1, s3_etag, crc32c) = (
            sha256.to_ascii_lowercase(),
            sha1.to_ascii_lowercase(),
            s3_etag.to_ascii_lowercase(),
            crc32c.to_ascii_lowercase(),
        );
        if !is_hex(&sha256, 64) {
            return Err(ChecksumFormatError { name: "sha256" });
        }
        if !is_hex(&sha1, 40) {
            return Err(ChecksumFormatError { name: "sha1" });
        }
        if !valid_s3_etag(&s3_etag) {
            return Err(ChecksumFormatError { name: "s3_etag" });
        }
        if !is_hex(&crc32c, 8) {
            return Err(ChecksumFormatError { name: "crc32c" });
        }
        Ok(Self {
            sha256,
            sha1,
            s3_etag,
            crc32c,
        })
    }

    /// Names of the checksums in which `self` and `other` differ.
    pub fn mismatches(&self, other: &Checksums) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, a, b) in [
            ("sha256", &self.sha256, &other.sha256),
            ("sha1", &self.sha1, &other.sha1),
            ("s3_etag", &self.s3_etag, &other.s3_etag),
            ("crc32c", &self.crc32c, &other.crc32c),
        ] {
            if a != b {
                out.push(name);
            }
        }
        out
    }
}

/// Why the checksums a staging object declares cannot be used (the original's
/// `missing_checksum` and `invalid_checksum`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclaredError {
    /// A checksum is not declared.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A declared checksum is malformed.
    #[error("malformed checksum {0}")]
    Malformed(&'static str),
}

/// The tags (S3) or metadata (GCS) that declare `sums` on a staging object, named as the
/// official `hca` CLI names them (`hca-dss-sha256`, `hca-dss-sha1`, `hca-dss-s3_etag`,
/// `hca-dss-crc32c`), so the original deployment and ours both accept the object.
pub fn declaration(sums: &Checksums) -> [(String, String); 4] {
    [
        ("hca-dss-sha256".into(), sums.sha256.clone()),
        ("hca-dss-sha1".into(), sums.sha1.clone()),
        ("hca-dss-s3_etag".into(), sums.s3_etag.clone()),
        ("hca-dss-crc32c".into(), sums.crc32c.clone()),
    ]
}

/// The checksums a staging object declares about itself in `declared` (its metadata, or tags):
/// `hca-dss-{name}` (what the `hca` CLI writes) or `dss-{name}` (also with `-` for `_`, as our
/// own stores record them), for `sha256`, `sha1`, `s3_etag` and `crc32c`, in any case.
pub fn declared_checksums(
    declared: &std::collections::BTreeMap<String, String>,
) -> Result<Checksums, DeclaredError> {
    let get = |name: &'static str| {
        let dashed = name.replace('_', "-");
        [
            format!("hca-dss-{name}"),
            format!("dss-{name}"),
            // What our own stores record (`dss-s3-etag`), so their objects can be staged too.
            format!("dss-{dashed}"),
        ]
        .iter()
        .find_map(|k| declared.get(k))
        .map(|v| v.to_ascii_lowercase())
        .ok_or(DeclaredError::Missing(name))
    };
    let (sha256, sha1, s3_etag, crc32c) = (
        get("sha256")?,
        get("sha1")?,
        get("s3_etag")?,
        get("crc32c")?,
    );
    Checksums::new(&sha256, &sha1, &s3_etag, &crc32c).map_err(|e| DeclaredError::Malformed(e.name))
}

/// The S3 part size the original uses for an object of `size` bytes.
pub fn s3_part_size(size: u64) -> u64 {
    if size <= MAX_PARTS * DEFAULT_PART_SIZE {
        DEFAULT_PART_SIZE
    } else {
        let mib = 1024 * 1024;
        size.div_ceil(MAX_PARTS).div_ceil(mib) * mib
    }
}

/// Incremental S3 ETag: MD5 of each part, combined at the end.
#[derive(Clone)]
pub struct S3EtagHasher {
    part_size: u64,
    current: Md5,
    current_len: u64,
    parts: Vec<[u8; 16]>,
}

impl S3EtagHasher {
    /// A hasher for the given part size.
    pub fn new(part_size: u64) -> Self {
        Self {
            part_size: part_size.max(1),
            current: Md5::new(),
            current_len: 0,
            parts: Vec::new(),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.current_len == self.part_size {
                let done = std::mem::replace(&mut self.current, Md5::new());
                self.parts.push(done.finalize().into());
                self.current_len = 0;
            }
            let room = (self.part_size - self.current_len) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.current_len += take as u64;
            data = &data[take..];
        }
    }

    /// The ETag: plain MD5 for one part, else `md5(part md5s)-N`.
    pub fn finish(self) -> String {
        if self.parts.is_empty() {
            return hex::encode(self.current.finalize());
        }
        let mut parts = self.parts;
        parts.push(self.current.finalize().into());
        let mut all = Md5::new();
        for p in &parts {
            all.update(p);
        }
        format!("{}-{}", hex::encode(all.finalize()), parts.len())
    }
}

enum Md5Stage {
    Inline(S3EtagHasher),
    Offloaded {
        tx: mpsc::SyncSender<Bytes>,
        handle: JoinHandle<String>,
    },
}

/// Computes all four checksums over a stream of chunks in one pass.
pub struct MultiHasher {
    sha256: Sha256,
    sha1: Sha1,
    crc: u32,
    md5: Md5Stage,
    len: u64,
}

impl MultiHasher {
    /// A hasher whose S3 ETag uses the part size for an object of `expected_size` bytes
    /// (64 MiB when the size is unknown).
    pub fn new(expected_size: Option<u64>) -> Self {
        Self::with_part_size(s3_part_size(expected_size.unwrap_or(0)))
    }

    /// A hasher with an explicit S3 part size.
    pub fn with_part_size(part_size: u64) -> Self {
        Self {
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            crc: 0,
            md5: Md5Stage::Inline(S3EtagHasher::new(part_size)),
            len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte was hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds one chunk.
    pub fn update(&mut self, chunk: Bytes) {
        self.len += chunk.len() as u64;
        if self.len > OFFLOAD_MD5_AFTER {
            self.offload_md5();
        }
        match &mut self.md5 {
            Md5Stage::Inline(h) => h.update(&chunk),
            Md5Stage::Offloaded { tx, .. } => {
                if tx.send(chunk.clone()).is_err() {
                    // The MD5 thread only stops when its receiver is dropped; finish() reports it.
                }
            }
        }
        self.sha256.update(&chunk);
        self.sha1.update(&chunk);
        self.crc = crc32c::crc32c_append(self.crc, &chunk);
    }

    fn offload_md5(&mut self) {
        if let Md5Stage::Inline(h) = &self.md5 {
            let mut h = h.clone();
            let (tx, rx) = mpsc::sync_channel::<Bytes>(8);
            let handle = std::thread::spawn(move || {
                while let Ok(chunk) = rx.recv() {
                    h.update(&chunk);
                }
                h.finish()
            });
            self.md5 = Md5Stage::Offloaded { tx, handle };
        }
    }

    /// The four checksums.
    pub fn finish(self) -> Checksums {
        let s3_etag = match self.md5 {
            Md5Stage::Inline(h) => h.finish(),
            Md5Stage::Offloaded { tx, handle } => {
                drop(tx);
                handle
                    .join()
                    .unwrap_or_else(|_| String::from("md5-thread-panicked"))
            }
        };
        Checksums {
            sha256: hex::encode(self.sha256.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            s3_etag,
            crc32c: format!("{:08x}", self.crc),
        }
    }
}

/// Checksums of an in-memory buffer.
pub fn checksums_of(data: &[u8]) -> Checksums {
    let mut h = MultiHasher::new(Some(data.len() as u64));
    h.update(Bytes::copy_from_slice(data));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let c = checksums_of(b"");
        assert_eq!(
            c.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(c.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(c.s3_etag, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(c.crc32c, "00000000");
        let c = checksums_of(b"123456789");
        assert_eq!(c.crc32c, "e3069283");
        assert_eq!(c.s3_etag, "25f9e794323b453885f5181f1b624d0b");
        assert_eq!(c.sha1, "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
        assert_eq!(
            c.sha256,
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // 10 bytes in 4-byte parts: md5(md5("abcd") || md5("efgh") || md5("ij")) + "-3".
        let mut h = S3EtagHasher::new(4);
        h.update(b"abc");
        h.update(b"defghij");
        let mut all = Md5::new();
        for part in [&b"abcd"[..], b"efgh", b"ij"] {
            all.update(Md5::digest(part));
        }
        assert_eq!(h.finish(), format!("{}-3", hex::encode(all.finalize())));
        // Exactly one full part is a plain MD5.
        let mut h = S3EtagHasher::new(4);
        h.update(b"abcd");
        assert_eq!(h.finish(), hex::encode(Md5::digest(b"abcd")));
    }

    #[test]
    fn offloaded_md5_matches_inline() {
        let data: Vec<u8> = (0..(OFFLOAD_MD5_AFTER as usize * 3))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut threaded = MultiHasher::with_part_size(1024 * 1024);
        for chunk in data.chunks(300_001) {
            threaded.update(Bytes::copy_from_slice(chunk));
        }
        let mut inline = S3EtagHasher::new(1024 * 1024);
        inline.update(&data);
        let got = threaded.finish();
        assert_eq!(got.s3_etag, inline.finish());
        assert!(got.s3_etag.ends_with("-12"));
        assert_eq!(got.sha256, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn part_size_follows_the_original() {
        assert_eq!(s3_part_size(1), DEFAULT_PART_SIZE);
        assert_eq!(
            s3_part_size(MAX_PARTS * DEFAULT_PART_SIZE),
            DEFAULT_PART_SIZE
        );
        assert_eq!(
            s3_part_size(MAX_PARTS * DEFAULT_PART_SIZE + 1),
            65 * 1024 * 1024
        );
    }

    #[test]
    fn validation() {
        assert!(valid_s3_etag("3b83ef96387f14655fc854ddc3c6bd57-10000"));
        assert!(!valid_s3_etag("3b83ef96387f14655fc854ddc3c6bd57-1"));
        assert!(!valid_s3_etag("3b83ef96387f14655fc854ddc3c6bd57-10001"));
        assert!(!valid_s3_etag("3b83ef96387f14655fc854ddc3c6bd57-02"));
        let e = Checksums::new("00", "", "", "").unwrap_err();
        assert_eq!(e.name, "sha256");
        let c = checksums_of(b"x");
        let up = Checksums::new(
            &c.sha256.to_uppercase(),
            &c.sha1,
            &c.s3_etag,
            &c.crc32c.to_uppercase(),
        )
        .unwrap();
        assert_eq!(up, c);
        let mut other = c.clone();
        other.crc32c = "00000000".into();
        assert_eq!(c.mismatches(&other), vec!["crc32c"]);
    }

    #[test]
    fn declared_checksums_come_from_either_prefix_in_any_case() {
        let sums = checksums_of(b"x");
        let mut d = std::collections::BTreeMap::new();
        d.insert("hca-dss-sha256".to_string(), sums.sha256.to_uppercase());
        d.insert("dss-sha1".to_string(), sums.sha1.clone());
        d.insert("hca-dss-s3_etag".to_string(), sums.s3_etag.clone());
        assert_eq!(
            declared_checksums(&d),
            Err(DeclaredError::Missing("crc32c"))
        );
        d.insert("hca-dss-crc32c".to_string(), "xyz".into());
        assert_eq!(
            declared_checksums(&d),
            Err(DeclaredError::Malformed("crc32c"))
        );
        d.insert("hca-dss-crc32c".to_string(), sums.crc32c.clone());
        assert_eq!(declared_checksums(&d), Ok(sums));
    }

    #[test]
    fn a_declaration_reads_back_as_the_same_checksums() {
        let sums = checksums_of(b"declared");
        let d = declaration(&sums).into_iter().collect();
        assert_eq!(declared_checksums(&d), Ok(sums));
    }
}
