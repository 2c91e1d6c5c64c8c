//! The incremental Xet hasher: content-defined chunking, chunk hashes and the file hash.
//!
//! The chunker is `xet_data`'s (a gearhash rolling hash; boundaries between 8 KiB and
//! 128 KiB, 64 KiB on average), the chunk hash is `xet_core_structures`' keyed BLAKE3 and the
//! file hash its Merkle rule over `(chunk hash, length)`. Fed in any slicing, the result is the
//! same as for the whole file at once.

use std::io::Read;
use std::path::Path;

use xet_core_structures::merklehash::{self, MerkleHash, compute_data_hash};
use xet_data::deduplication::Chunker;

use super::BadXetHash;

/// The largest chunk the chunker cuts (and the largest a xorb may hold), in bytes.
pub const MAX_CHUNK_SIZE: usize = 128 << 10;

/// The chunker's target (average) chunk size.
const TARGET_CHUNK_SIZE: usize = 64 << 10;

/// One chunk of a file, in file order; its offset is the sum of the lengths before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Keyed BLAKE3 of the chunk's bytes.
    pub hash: MerkleHash,
    /// Its length in bytes (1 ..= [`MAX_CHUNK_SIZE`]).
    pub length: u32,
}

/// A file's Xet chunking: its chunks in order and its file hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetChunking {
    /// The Xet file hash (all zeros for an empty file).
    pub file_hash: MerkleHash,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkEntry>,
}

impl XetChunking {
    /// The file hash in the Hub's hex form (`X-Xet-Hash`, `xetHash`, `hf_xet.hash_files`).
    pub fn hex(&self) -> String {
        self.file_hash.hex()
    }

    /// The file's size: the sum of the chunk lengths.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.length)).sum()
    }

    /// Each chunk with its byte offset in the file.
    pub fn with_offsets(&self) -> impl Iterator<Item = (u64, &ChunkEntry)> {
        self.chunks.iter().scan(0u64, |offset, chunk| {
            let at = *offset;
            *offset += u64::from(chunk.length);
            Some((at, chunk))
        })
    }
}

/// Computes a file's [`XetChunking`] from its bytes, fed in order in slices of any size.
///
/// Memory is bounded: the chunker holds at most one chunk (128 KiB) between calls, and the
/// chunk list grows by one [`ChunkEntry`] (36 bytes) per 64 KiB on average.
pub struct XetHasher {
    chunker: Chunker,
    chunks: Vec<ChunkEntry>,
    fed: u64,
}

impl Default for XetHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for XetHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XetHasher")
            .field("fed", &self.fed)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl XetHasher {
    /// A hasher at the start of a file.
    pub fn new() -> Self {
        XetHasher {
            chunker: Chunker::new(TARGET_CHUNK_SIZE),
            chunks: Vec::new(),
            fed: 0,
        }
    }

    /// Feed the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.fed += bytes.len() as u64;
        for chunk in self.chunker.next_block(bytes, false) {
            self.push(chunk.hash, chunk.data.len());
        }
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Cut the last chunk and compute the file hash.
    pub fn finish(mut self) -> XetChunking {
        if let Some(chunk) = self.chunker.finish() {
            self.push(chunk.hash, chunk.data.len());
        }
        XetChunking {
            file_hash: file_hash(self.chunks.iter().map(|c| (c.hash, u64::from(c.length)))),
            chunks: self.chunks,
        }
    }

    fn push(&mut self, hash: MerkleHash, length: usize) {
        // The chunker never cuts more than MAX_CHUNK_SIZE, so the length fits a u32.
        let length = u32::try_from(length).unwrap_or(u32::MAX);
        self.chunks.push(ChunkEntry { hash, length });
    }
}

/// The Xet file hash of a file whose chunks (hash, length) are known, in file order: what a
/// file assembled from xorb chunks is checked against. No chunks: all zeros.
pub fn file_hash(chunks: impl IntoIterator<Item = (MerkleHash, u64)>) -> MerkleHash {
    let list: Vec<(MerkleHash, u64)> = chunks.into_iter().collect();
    merklehash::file_hash(&list)
}

/// The Xet hash of one chunk's bytes (keyed BLAKE3).
pub fn chunk_hash(bytes: &[u8]) -> MerkleHash {
    compute_data_hash(bytes)
}

/// The chunking of an in-memory buffer.
pub fn hash_bytes(bytes: &[u8]) -> XetChunking {
    let mut hasher = XetHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// The chunking of a file on disk (one sequential read).
pub fn hash_file(path: &Path) -> std::io::Result<XetChunking> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = XetHasher::new();
    let mut buffer = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Parse a Xet hash from its hex form.
pub fn parse_hash(hex: &str) -> Result<MerkleHash, BadXetHash> {
    MerkleHash::from_hex(hex).map_err(|_| BadXetHash(hex.to_owned()))
}

/// A hash's 32 bytes in a fixed order (its four 64-bit words, each little-endian): the form
/// the chunk index stores. [`hash_from_bytes`] reads it back.
pub fn hash_to_bytes(hash: &MerkleHash) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (word, slot) in hash.iter().zip(out.chunks_exact_mut(8)) {
        slot.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The inverse of [`hash_to_bytes`].
pub fn hash_from_bytes(bytes: &[u8; 32]) -> MerkleHash {
    let mut words = [0u64; 4];
    for (word, slot) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(slot);
        *word = u64::from_le_bytes(le);
    }
    MerkleHash::from(words)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reproducible incompressible bytes (xorshift) for the Xet modules' tests.
    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn empty_is_zero() {
        let chunking = hash_bytes(b"");
        assert!(chunking.chunks.is_empty());
        assert_eq!(chunking.hex(), "0".repeat(64));
    }

    #[test]
    fn slicing_does_not_matter() {
        let data = noise(3 << 20, 7);
        let whole = hash_bytes(&data);
        for step in [1usize << 10, 8191, 65536, 1 << 20] {
            let mut hasher = XetHasher::new();
            for piece in data.chunks(step) {
                hasher.update(piece);
            }
            assert_eq!(hasher.fed(), data.len() as u64);
            assert_eq!(hasher.finish(), whole, "step {step}");
        }
        assert_eq!(whole.size(), data.len() as u64);
        assert!(whole.chunks.len() > 10);
        assert!(
            whole
                .chunks
                .iter()
                .all(|c| c.length as usize <= MAX_CHUNK_SIZE)
        );
        // The chunk hashes are those of the bytes at the offsets.
        for (offset, chunk) in whole.with_offsets() {
            let bytes = &data[offset as usize..offset as usize + chunk.length as usize];
            assert_eq!(chunk_hash(bytes), chunk.hash);
        }
        // And the file hash follows from them.
        let again = file_hash(whole.chunks.iter().map(|c| (c.hash, u64::from(c.length))));
        assert_eq!(again, whole.file_hash);
    }

    #[test]
    fn byte_form_round_trips() {
        let chunking = hash_bytes(b"hello");
        let bytes = hash_to_bytes(&chunking.file_hash);
        assert_eq!(hash_from_bytes(&bytes), chunking.file_hash);
        assert_eq!(parse_hash(&chunking.hex()).unwrap(), chunking.file_hash);
        assert!(parse_hash("xyz").is_err());
    }
}
