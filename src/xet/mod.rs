//! Xet: how the Hugging Face Hub stores large files (`../shared/docs/xet.md`), as far as a
//! reader needs it.
//!
//! - [`cas`]: the read token from the Hub and the CAS's reconstructions and xorb ranges;
//! - [`reconstruction`]: a reconstruction answer checked into terms (chunk ranges of xorbs at
//!   file offsets);
//! - [`xorb`]: decoding a xorb range's chunks with every length bounded;
//! - [`verify_hash`]: the Xet file hash of assembled chunks.
//!
//! The transfer that uses them is `fetch::xet`.

pub mod cas;
pub mod reconstruction;
pub mod xorb;

pub use xet_core_structures::merklehash::MerkleHash;

/// The Xet hash of one chunk's bytes.
pub fn chunk_hash(bytes: &[u8]) -> MerkleHash {
    xet_core_structures::merklehash::compute_data_hash(bytes)
}

/// The Xet file hash (hex, as the Hub prints it) of a file made of chunks with these hashes and
/// lengths, in order.
pub fn verify_hash(chunks: &[(MerkleHash, u64)]) -> String {
    xet_core_structures::merklehash::file_hash(chunks).hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_hash_is_zero() {
        assert_eq!(verify_hash(&[]), "0".repeat(64));
    }
}
