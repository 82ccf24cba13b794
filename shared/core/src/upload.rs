//! Helpers for the stores' puts: what a put hashes of its body ([`Hashing`], for every store),
//! and, for stores that upload the body to a remote service in parts, reading it part by part,
//! hashing off the request threads, and checking the result against the put's expectations
//! before anything becomes visible.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::checksum::{Checksums, MultiHasher};
use crate::ports::{BlobError, ByteStream, PutOptions, Verify};

/// Media type recorded when a put names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Reads `limit` bytes of `body` (fewer only at its end), starting with `carry` and leaving
/// in it what is read beyond. A part that one chunk holds is that chunk's bytes (no copy);
/// else the chunks are copied into one buffer of `limit` bytes, allocated once.
pub async fn fill(
    body: &mut ByteStream,
    limit: usize,
    carry: &mut Bytes,
) -> Result<Bytes, BlobError> {
    if carry.is_empty() && ended(body, carry).await? {
        return Ok(Bytes::new());
    }
    if carry.len() >= limit {
        return Ok(carry.split_to(limit));
    }
    let first = std::mem::take(carry);
    if ended(body, carry).await? {
        return Ok(first);
    }
    let mut buf = BytesMut::with_capacity(limit);
    buf.extend_from_slice(&first);
    loop {
        let n = carry.len().min(limit - buf.len());
        buf.extend_from_slice(&carry.split_to(n));
        // Not full: `carry` is used up, so read on.
        if buf.len() == limit || ended(body, carry).await? {
            return Ok(buf.freeze());
        }
    }
}

/// Read size of the passes over a local file.
const FILE_CHUNK: usize = 1024 * 1024;

/// Reads the file `path` from `offset` on, `len` bytes (all the rest when `None`), handing
/// them to `each` chunk by chunk, on the calling thread (a blocking one). A file that ends
/// before `len` bytes is a [`BlobError::SizeMismatch`] (against `offset + len`).
pub fn read_file(
    path: &Path,
    offset: u64,
    len: Option<u64>,
    mut each: impl FnMut(Bytes),
) -> Result<(), BlobError> {
    let mut file = std::fs::File::open(path).map_err(BlobError::Body)?;
    file.seek(SeekFrom::Start(offset))
        .map_err(BlobError::Body)?;
    let mut reader = file.take(len.unwrap_or(u64::MAX));
    let mut read = 0u64;
    loop {
        let want = len.map_or(FILE_CHUNK as u64, |n| (n - read).min(FILE_CHUNK as u64));
        if want == 0 {
            return Ok(());
        }
        let mut buf = vec![0u8; want as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BlobError::Body(e)),
            }
        }
        match (filled, len) {
            (0, None) => return Ok(()),
            (0, Some(n)) => {
                return Err(BlobError::SizeMismatch {
                    expected: offset + n,
                    got: offset + read,
                });
            }
            _ => {}
        }
        buf.truncate(filled);
        read += filled as u64;
        each(Bytes::from(buf));
    }
}

/// Starts hashing the `size` bytes of the file `path` with `hasher` on the blocking pool, at
/// once: await the result when the checksums are needed (while parts read from the file go).
pub fn hash_file(
    path: &Path,
    size: u64,
    mut hasher: Hashing,
) -> impl Future<Output = Result<Hashing, BlobError>> + use<> {
    let path = path.to_path_buf();
    let pass = tokio::task::spawn_blocking(move || {
        read_file(&path, 0, Some(size), |chunk| hasher.update(chunk)).map(|()| hasher)
    });
    async move {
        pass.await
            .map_err(|e| BlobError::Backend(format!("hashing failed: {e}")))?
    }
}

/// Whether `body` has ended; a chunk read to find out is left in `carry`.
pub async fn ended(body: &mut ByteStream, carry: &mut Bytes) -> Result<bool, BlobError> {
    loop {
        match body.next().await {
            None => return Ok(true),
            Some(Err(e)) => return Err(BlobError::Body(e)),
            Some(Ok(c)) if c.is_empty() => continue,
            Some(Ok(c)) => {
                *carry = c;
                return Ok(false);
            }
        }
    }
}

/// Feeds `data` (up to a part, megabytes) to `hasher`: all four checksums on the blocking
/// pool, off the threads that serve requests; a CRC-32C alone (hardware, ~13 GB/s) in place.
pub async fn hash(mut hasher: Hashing, data: Bytes) -> Result<Hashing, BlobError> {
    if matches!(hasher, Hashing::Copy { .. }) {
        hasher.update(data);
        return Ok(hasher);
    }
    tokio::task::spawn_blocking(move || {
        hasher.update(data);
        hasher
    })
    .await
    .map_err(|e| BlobError::Backend(format!("hashing failed: {e}")))
}

/// What a put computes of its body: all four checksums, or, for a copy of an object whose
/// checksums are known ([`Verify::Copy`]), only the CRC-32C (a wrong CRC-32C then yields
/// checksums that cannot match).
pub enum Hashing {
    /// All four.
    All(Box<MultiHasher>),
    /// The CRC-32C and length of a copy of the object whose checksums are `of`.
    Copy {
        /// The checksums the copy should have.
        of: Checksums,
        /// CRC-32C so far.
        crc: u32,
        /// Bytes so far.
        len: u64,
    },
}

impl Hashing {
    /// What `opts` asks for: the CRC-32C of a [`Verify::Copy`] put with expected checksums,
    /// else all four.
    pub fn for_put(opts: &PutOptions) -> Self {
        let copy_of = match (opts.verify, &opts.expected) {
            (Verify::Copy, Some(e)) => Some(e.clone()),
            _ => None,
        };
        Self::new(opts.size, copy_of)
    }

    /// All four checksums of a body of about `size` bytes, or the CRC-32C of a copy of `copy_of`.
    pub fn new(size: Option<u64>, copy_of: Option<Checksums>) -> Self {
        match copy_of {
            None => Hashing::All(Box::new(MultiHasher::new(size))),
            Some(of) => Hashing::Copy { of, crc: 0, len: 0 },
        }
    }

    /// Bytes hashed so far.
    pub fn hashed(&self) -> u64 {
        match self {
            Hashing::All(h) => h.len(),
            Hashing::Copy { len, .. } => *len,
        }
    }

    /// Feeds one chunk.
    pub fn update(&mut self, chunk: Bytes) {
        match self {
            Hashing::All(h) => h.update(chunk),
            Hashing::Copy { crc, len, .. } => {
                *crc = crc32c::crc32c_append(*crc, &chunk);
                *len += chunk.len() as u64;
            }
        }
    }

    /// Like `update`, from a borrowed buffer: only the full hashing needs (and copies) it
    /// into an owned chunk.
    pub fn update_slice(&mut self, chunk: &[u8]) {
        match self {
            Hashing::All(h) => h.update(Bytes::copy_from_slice(chunk)),
            Hashing::Copy { crc, len, .. } => {
                *crc = crc32c::crc32c_append(*crc, chunk);
                *len += chunk.len() as u64;
            }
        }
    }

    /// The checksums of the bytes (for a copy: the expected ones, with the CRC-32C computed).
    pub fn finish(self) -> Checksums {
        match self {
            Hashing::All(h) => h.finish(),
            Hashing::Copy { mut of, crc, .. } => {
                let got = format!("{crc:08x}");
                if got != of.crc32c {
                    // Only the CRC-32C was computed: report it alone as what the bytes have.
                    of = Checksums { crc32c: got, ..of };
                }
                of
            }
        }
    }
}

/// The media type a put records.
pub fn content_type(opts: &PutOptions) -> String {
    opts.content_type
        .clone()
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string())
}

/// Compares what was received with what the put expects.
pub fn verify(opts: &PutOptions, size: u64, sums: &Checksums) -> Result<(), BlobError> {
    if let Some(expected) = opts.size
        && expected != size
    {
        return Err(BlobError::SizeMismatch {
            expected,
            got: size,
        });
    }
    if opts.verify == Verify::Copy && opts.expected.is_none() {
        return Err(BlobError::Backend(
            "a copy put needs the expected checksums".into(),
        ));
    }
    if let Some(expected) = &opts.expected {
        let bad = expected.mismatches(sums);
        if !bad.is_empty() {
            return Err(BlobError::ChecksumMismatch(bad));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ranges_are_read_in_order_and_a_short_file_is_a_size_mismatch() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * FILE_CHUNK + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let mut got = Vec::new();
        read_file(&path, 7, Some(data.len() as u64 - 7), |c| {
            got.extend_from_slice(&c)
        })
        .expect("read");
        assert!(got == data[7..]);
        let mut all = Vec::new();
        read_file(&path, 7, None, |c| all.extend_from_slice(&c)).expect("read to the end");
        assert!(all == data[7..]);
        let mut got = Vec::new();
        read_file(&path, FILE_CHUNK as u64, Some(10), |c| {
            got.extend_from_slice(&c)
        })
        .expect("read");
        assert_eq!(got, data[FILE_CHUNK..FILE_CHUNK + 10]);
        let short = read_file(&path, 0, Some(data.len() as u64 + 1), |_| {});
        assert!(
            matches!(short, Err(BlobError::SizeMismatch { expected, got })
                if expected == data.len() as u64 + 1 && got == data.len() as u64),
            "{short:?}"
        );
    }

    fn body(chunks: &[&[u8]]) -> ByteStream {
        let owned: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures::stream::iter(owned))
    }

    async fn parts(chunks: &[&[u8]], limit: usize) -> Vec<Vec<u8>> {
        let (mut b, mut carry, mut out) = (body(chunks), Bytes::new(), Vec::new());
        loop {
            let p = fill(&mut b, limit, &mut carry).await.expect("fill");
            if p.is_empty() {
                return out;
            }
            out.push(p.to_vec());
        }
    }

    #[tokio::test]
    async fn bodies_are_cut_into_parts_of_the_limit_whatever_their_chunks() {
        let v = |s: &str| s.as_bytes().to_vec();
        assert_eq!(parts(&[b"abcdefg"], 3).await, [v("abc"), v("def"), v("g")]);
        assert_eq!(parts(&[b"a", b"bc", b"d"], 3).await, [v("abc"), v("d")]);
        assert_eq!(parts(&[b"ab", b"", b"cdef"], 3).await, [v("abc"), v("def")]);
        assert_eq!(parts(&[b"ab"], 3).await, [v("ab")]);
        assert_eq!(parts(&[b"abc"], 3).await, [v("abc")]);
        assert_eq!(parts(&[b"a", b"b"], 3).await, [v("ab")]);
        assert!(parts(&[], 3).await.is_empty());
        assert!(parts(&[b""], 3).await.is_empty());
    }

    #[tokio::test]
    async fn a_part_one_chunk_holds_is_not_copied() {
        let chunk = Bytes::from_static(b"abcdef");
        let mut b: ByteStream = Box::pin(futures::stream::iter([Ok(chunk.clone())]));
        let mut carry = Bytes::new();
        let p = fill(&mut b, 4, &mut carry).await.expect("fill");
        assert_eq!(p.as_ptr(), chunk.as_ptr(), "the chunk's own bytes");
        assert_eq!(&carry[..], b"ef");
    }
}
