//! Xet chunking and hashes: how the Hugging Face Hub's Xet storage cuts a file into
//! content-defined chunks and names the chunks and the file (`../shared/docs/xet.md` §4).
//!
//! Larder computes this for every blob it stores, while the bytes land, so the store knows its
//! chunks: the registry keeps each blob's Xet file hash and chunk list (the chunk index, see
//! `larder-registry`'s `xet` module), `larder show` prints the Xet hash, `larder verify` checks
//! it, and a Xet-native pull can map the chunks of a new revision onto blobs already held.
//!
//! - [`XetHasher`] is fed a file's bytes in order and yields its [`XetChunking`]: the chunk
//!   boundaries, the chunk hashes and the file hash, equal to what `hf_xet.hash_files` prints.
//! - [`PipelinedXetHasher`] does the same on a thread of its own for large inputs, so a caller
//!   that also computes sha256 hashes both at once instead of one after the other.
//! - [`file_hash`] computes the file hash from chunk hashes and lengths already known (a file
//!   assembled from xorb chunks is verified with it).
//!
//! Reading from the Hub's CAS (used by the transfer in `fetch::xet`):
//! - [`cas`]: the read token from the Hub and the CAS's reconstructions and xorb ranges;
//! - [`reconstruction`]: a reconstruction answer checked into terms (chunk ranges of xorbs at
//!   file offsets);
//! - [`xorb`]: decoding a xorb range's chunks with every length bounded.
//!
//! The chunker and the hashes are xet-core's own (crates `xet-data` and `xet-core-structures`,
//! 1.8.0), so Larder's chunk boundaries and hashes are the Hub's by construction; the tests
//! check them against `hf_xet` too.

pub mod cas;
mod chunking;
pub mod index;
pub mod layout;
mod pipeline;
pub mod reconstruction;
pub mod xorb;

pub use chunking::{
    ChunkEntry, MAX_CHUNK_SIZE, XetChunking, XetHasher, chunk_hash, file_hash, hash_bytes,
    hash_file, hash_from_bytes, hash_to_bytes, parse_hash,
};
pub use pipeline::PipelinedXetHasher;
pub use xet_core_structures::merklehash::MerkleHash;

/// A string that is not a Xet hash (64 hex digits).
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a Xet hash (64 hex digits)")]
pub struct BadXetHash(pub String);
