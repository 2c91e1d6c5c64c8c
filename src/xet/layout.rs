//! How the mirror presents a held blob as xorbs, so that it can answer the CAS read API
//! (`../shared/docs/xet.md` §2, §3) from its store without keeping a second copy of anything.
//!
//! The mirror defines its own xorbs over each blob's chunk list (the chunk index):
//!
//! - **Content-defined grouping.** A xorb ends after a chunk whose hash, read as a
//!   little-endian u64, is divisible by the blob's cut modulus ([`cut_modulus`]), or when it
//!   holds eight times that many chunks (at most 512, so at most 64 MiB). The grouping depends only on the chunk hashes, and the xorb hash is the Xet Merkle
//!   hash of its chunks (`xet_core_structures::merklehash::xorb_hash`), so a xorb's identity
//!   comes from its content, not from the file: a new revision of a file that differs in a few
//!   places has the same xorbs as the old one everywhere else. A client (or a downstream Larder)
//!   that holds the old revision's xorbs then fetches only the few that changed.
//! - **Uncompressed chunks.** Each chunk is serialised as its 8-byte header (version 0, scheme
//!   0 = none, both lengths equal to the chunk's length) followed by its bytes as they are in
//!   the blob. Every byte of a xorb is either a header computed from the chunk index or a slice
//!   of a verified blob, so a xorb range can be sent as header + file-slice pairs.
//!
//! The modulus grows with the blob's size: small xorbs (~512 KiB below 2 GiB) keep updates cheap
//! along mirror chains; larger ones for larger blobs (~4 MiB below 32 GiB, ~32 MiB above) keep a
//! whole-file reconstruction to a few thousand terms. Two revisions of a file in the same size
//! class share every unchanged xorb; `docs/architecture.md` has the reasoning.

use xet_core_structures::merklehash::{MerkleHash, xorb_hash};

use super::chunking::{ChunkEntry, XetChunking};
use super::hash_to_bytes;

/// The cut modulus of a blob of `size` bytes: a xorb ends after a chunk whose hash (first 8
/// bytes, little-endian) is divisible by it, so xorbs average that many chunks.
pub fn cut_modulus(size: u64) -> u64 {
    match size {
        s if s < 2 << 30 => 8,
        s if s < 32 << 30 => 64,
        _ => 512,
    }
}

/// Most chunks in one xorb of a blob with this cut modulus (at most 512 × 128 KiB = 64 MiB, the
/// format's limit).
fn max_xorb_chunks(modulus: u64) -> u32 {
    (modulus * 8).min(512) as u32
}
/// Bytes of a chunk header in a serialised xorb.
pub const CHUNK_HEADER_LEN: u64 = 8;

/// One xorb of a blob's layout: chunks `[first_chunk, first_chunk + chunk_count)` of the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorXorb {
    /// The xorb hash.
    pub hash: MerkleHash,
    /// Index of its first chunk in the blob's chunk list.
    pub first_chunk: u32,
    /// Number of chunks.
    pub chunk_count: u32,
}

/// A blob's chunks, their offsets and its xorbs.
#[derive(Debug, Clone)]
pub struct BlobLayout {
    chunks: Vec<ChunkEntry>,
    /// `offsets[i]` is where chunk `i` starts in the blob; `offsets[len]` is the blob's size.
    offsets: Vec<u64>,
    xorbs: Vec<MirrorXorb>,
}

/// One term of a reconstruction: chunks `[start, end)` (indices within the xorb) of `xorb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedTerm {
    /// The xorb.
    pub xorb: MirrorXorb,
    /// First chunk, counted within the xorb.
    pub start: u32,
    /// One past the last chunk, counted within the xorb.
    pub end: u32,
    /// The chunks' bytes once decoded.
    pub unpacked_length: u64,
    /// The serialised xorb bytes holding those chunks: first byte.
    pub byte_start: u64,
    /// Last byte, inclusive.
    pub byte_end: u64,
}

/// The answer to a reconstruction of bytes `start..=end` of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of the first term's chunks that come before `start`.
    pub offset_into_first_range: u64,
    /// The terms, in file order.
    pub terms: Vec<PlannedTerm>,
}

/// A piece of a serialised xorb range: header bytes computed here, or a slice of the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes of chunk headers (a whole header, or part of one at the edges of the range).
    Header(Vec<u8>),
    /// `len` bytes of the blob from `offset`.
    Blob {
        /// Byte offset in the blob.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
}

/// The serialised header of an uncompressed chunk of `length` bytes.
pub fn chunk_header(length: u32) -> [u8; 8] {
    let l = length.to_le_bytes();
    [0, l[0], l[1], l[2], 0, l[0], l[1], l[2]]
}

impl BlobLayout {
    /// The layout of a blob with this chunking.
    pub fn new(chunking: &XetChunking) -> Self {
        let chunks = chunking.chunks.clone();
        let mut offsets = Vec::with_capacity(chunks.len() + 1);
        let mut at = 0u64;
        for chunk in &chunks {
            offsets.push(at);
            at += u64::from(chunk.length);
        }
        offsets.push(at);
        let modulus = cut_modulus(at);
        let max_chunks = max_xorb_chunks(modulus);
        let mut xorbs = Vec::new();
        let mut first = 0usize;
        for (i, chunk) in chunks.iter().enumerate() {
            let count = (i + 1 - first) as u32;
            if ends_xorb(&chunk.hash, modulus) || count == max_chunks || i + 1 == chunks.len() {
                let members: Vec<(MerkleHash, u64)> = chunks[first..=i]
                    .iter()
                    .map(|c| (c.hash, u64::from(c.length)))
                    .collect();
                xorbs.push(MirrorXorb {
                    hash: xorb_hash(&members),
                    first_chunk: first as u32,
                    chunk_count: count,
                });
                first = i + 1;
            }
        }
        BlobLayout {
            chunks,
            offsets,
            xorbs,
        }
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Its xorbs, in blob order.
    pub fn xorbs(&self) -> &[MirrorXorb] {
        &self.xorbs
    }

    /// The xorb of this layout that starts at blob chunk `first_chunk` and has `hash`.
    pub fn xorb_at(&self, first_chunk: u32, hash: &MerkleHash) -> Option<MirrorXorb> {
        let index = self
            .xorbs
            .binary_search_by_key(&first_chunk, |x| x.first_chunk)
            .ok()?;
        let xorb = self.xorbs[index];
        (xorb.hash == *hash).then_some(xorb)
    }

    /// Where local chunk `j` (0 ..= chunk_count) of `xorb` starts in the serialised xorb.
    pub fn xorb_offset(&self, xorb: &MirrorXorb, j: u32) -> u64 {
        let first = xorb.first_chunk as usize;
        let data = self.offsets[first + j as usize] - self.offsets[first];
        data + CHUNK_HEADER_LEN * u64::from(j)
    }

    /// The serialised length of `xorb`.
    pub fn xorb_len(&self, xorb: &MirrorXorb) -> u64 {
        self.xorb_offset(xorb, xorb.chunk_count)
    }

    /// The terms that rebuild bytes `start..=end` of the blob (`end < size`, `start <= end`).
    pub fn plan(&self, start: u64, end: u64) -> Plan {
        debug_assert!(start <= end && end < self.size());
        // The chunk holding `start`, and the one holding `end`.
        let first = self.offsets.partition_point(|&o| o <= start) - 1;
        let last = self.offsets.partition_point(|&o| o <= end) - 1;
        let mut terms = Vec::new();
        let mut x = self
            .xorbs
            .partition_point(|x| x.first_chunk as usize <= first)
            - 1;
        while x < self.xorbs.len() && (self.xorbs[x].first_chunk as usize) <= last {
            let xorb = self.xorbs[x];
            let lo = first.max(xorb.first_chunk as usize);
            let hi = (last + 1).min((xorb.first_chunk + xorb.chunk_count) as usize);
            let (s, e) = (
                (lo - xorb.first_chunk as usize) as u32,
                (hi - xorb.first_chunk as usize) as u32,
            );
            terms.push(PlannedTerm {
                xorb,
                start: s,
                end: e,
                unpacked_length: self.offsets[hi] - self.offsets[lo],
                byte_start: self.xorb_offset(&xorb, s),
                byte_end: self.xorb_offset(&xorb, e) - 1,
            });
            x += 1;
        }
        Plan {
            offset_into_first_range: start - self.offsets[first],
            terms,
        }
    }

    /// The pieces of bytes `start..=end` of serialised `xorb` (`end < xorb_len`).
    pub fn pieces(&self, xorb: &MirrorXorb, start: u64, end: u64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut pos = 0u64; // serialised position of the current chunk's header
        for j in 0..xorb.chunk_count {
            let index = (xorb.first_chunk + j) as usize;
            let length = self.chunks[index].length;
            let header = chunk_header(length);
            let data_at = pos + CHUNK_HEADER_LEN;
            let next = data_at + u64::from(length);
            if next <= start {
                pos = next;
                continue;
            }
            if pos > end {
                break;
            }
            // Header bytes [pos, data_at) ∩ [start, end].
            let (h0, h1) = (pos.max(start), data_at.min(end + 1));
            if h0 < h1 {
                pieces.push(Piece::Header(
                    header[(h0 - pos) as usize..(h1 - pos) as usize].to_vec(),
                ));
            }
            // Data bytes [data_at, next) ∩ [start, end].
            let (d0, d1) = (data_at.max(start), next.min(end + 1));
            if d0 < d1 {
                pieces.push(Piece::Blob {
                    offset: self.offsets[index] + (d0 - data_at),
                    len: d1 - d0,
                });
            }
            pos = next;
        }
        pieces
    }
}

/// Whether a xorb ends after the chunk with this hash.
fn ends_xorb(hash: &MerkleHash, modulus: u64) -> bool {
    let bytes = hash_to_bytes(hash);
    let word = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    word % modulus == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::hash_bytes;
    use crate::xet::xorb::decode_chunks;

    use crate::xet::chunking::tests::noise as data;

    fn serialise(layout: &BlobLayout, blob: &[u8], xorb: &MirrorXorb) -> Vec<u8> {
        let len = layout.xorb_len(xorb);
        let mut out = Vec::new();
        for piece in layout.pieces(xorb, 0, len - 1) {
            match piece {
                Piece::Header(h) => out.extend_from_slice(&h),
                Piece::Blob { offset, len } => {
                    out.extend_from_slice(&blob[offset as usize..(offset + len) as usize])
                }
            }
        }
        out
    }

    #[test]
    fn xorbs_decode_to_the_blob_and_plans_cover_ranges() {
        let blob = data(5 << 20, 7);
        let layout = BlobLayout::new(&hash_bytes(&blob));
        assert!(layout.xorbs().len() > 3, "{}", layout.xorbs().len());
        let mut rebuilt = Vec::new();
        for xorb in layout.xorbs() {
            let bytes = serialise(&layout, &blob, xorb);
            assert_eq!(bytes.len() as u64, layout.xorb_len(xorb));
            let chunks = decode_chunks(&bytes, xorb.chunk_count as usize).unwrap();
            for chunk in chunks {
                rebuilt.extend_from_slice(&chunk.data);
            }
        }
        assert_eq!(rebuilt, blob);

        for (start, end) in [
            (0, 0),
            (1, 70_000),
            (100_000, 3_000_000),
            (0, blob.len() - 1),
        ] {
            let plan = layout.plan(start as u64, end as u64);
            let mut bytes = Vec::new();
            for term in &plan.terms {
                let all = serialise(&layout, &blob, &term.xorb);
                let range = &all[term.byte_start as usize..=term.byte_end as usize];
                let chunks = decode_chunks(range, (term.end - term.start) as usize).unwrap();
                let got: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
                assert_eq!(got.len() as u64, term.unpacked_length);
                bytes.extend_from_slice(&got);
            }
            let skip = plan.offset_into_first_range as usize;
            assert_eq!(&bytes[skip..skip + end - start + 1], &blob[start..=end]);
        }
    }

    #[test]
    fn partial_pieces_match_the_whole() {
        let blob = data(700_000, 3);
        let layout = BlobLayout::new(&hash_bytes(&blob));
        let xorb = layout.xorbs()[0];
        let whole = serialise(&layout, &blob, &xorb);
        for (s, e) in [(0u64, 3u64), (5, 20), (7, 9), (3, whole.len() as u64 - 2)] {
            let mut out = Vec::new();
            for piece in layout.pieces(&xorb, s, e) {
                match piece {
                    Piece::Header(h) => out.extend_from_slice(&h),
                    Piece::Blob { offset, len } => {
                        out.extend_from_slice(&blob[offset as usize..(offset + len) as usize])
                    }
                }
            }
            assert_eq!(out, &whole[s as usize..=e as usize]);
        }
    }

    #[test]
    fn an_edit_keeps_the_other_xorbs() {
        let old = data(16 << 20, 11);
        let mut new = old.clone();
        new.splice(10_000..10_000, data(1024, 5));
        let middle = new.len() / 2;
        for b in &mut new[middle..middle + 100] {
            *b ^= 0x5a;
        }
        let old_layout = BlobLayout::new(&hash_bytes(&old));
        let new_layout = BlobLayout::new(&hash_bytes(&new));
        let held: std::collections::HashSet<_> =
            old_layout.xorbs().iter().map(|x| x.hash).collect();
        let changed = new_layout
            .xorbs()
            .iter()
            .filter(|x| !held.contains(&x.hash))
            .count();
        // Each edit changes the xorb holding it and, at most, a neighbour whose boundary moved.
        assert!(
            changed <= 4 && new_layout.xorbs().len() >= 20,
            "{changed} of {} xorbs are new",
            new_layout.xorbs().len()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// For any blob and any byte range, the plan's xorb ranges decode to exactly those bytes.
        #[test]
        fn plans_rebuild_any_range(len in 1usize..600_000, seed in 1u64..1000, a in 0usize..600_000, b in 0usize..600_000) {
            let blob = data(len, seed);
            let layout = BlobLayout::new(&hash_bytes(&blob));
            let (start, end) = ((a % len).min(b % len), (a % len).max(b % len));
            let plan = layout.plan(start as u64, end as u64);
            let mut bytes = Vec::new();
            for term in &plan.terms {
                let range = layout.pieces(&term.xorb, term.byte_start, term.byte_end);
                let mut raw = Vec::new();
                for piece in range {
                    match piece {
                        Piece::Header(h) => raw.extend_from_slice(&h),
                        Piece::Blob { offset, len } => raw.extend_from_slice(&blob[offset as usize..(offset + len) as usize]),
                    }
                }
                let chunks = decode_chunks(&raw, (term.end - term.start) as usize).unwrap();
                bytes.extend(chunks.into_iter().flat_map(|c| c.data));
            }
            let skip = plan.offset_into_first_range as usize;
            proptest::prop_assert_eq!(&bytes[skip..skip + end - start + 1], &blob[start..=end]);
        }
    }
}
