//! Decoding the chunks of a xorb range (`../shared/docs/xet.md` §3), with every length bounded.
//!
//! A range fetched from a xorb is a run of chunks, each an 8-byte header (parsed by
//! `xet-core-structures`) and its data, stored raw, as an LZ4 frame, or byte-grouped in 4
//! planes then LZ4. The upstream is not trusted: a header claiming more than
//! [`MAX_CHUNK_BYTES`], data cut short, an LZ4 frame that expands past (or stops short of) the
//! length its header promised, or bytes left over are all refused with a [`XorbError`], and no
//! decode ever allocates more than [`MAX_CHUNK_BYTES`] per chunk.

use std::io::Read;

use xet_core_structures::xorb_object::byte_grouping::bg4::bg4_regroup;
use xet_core_structures::xorb_object::{
    CompressionScheme, XORB_CHUNK_HEADER_LENGTH, parse_chunk_header,
};

/// Largest chunk the Xet format allows, uncompressed (128 KiB).
pub const MAX_CHUNK_BYTES: usize = 128 << 10;
/// Length of a chunk header.
pub const CHUNK_HEADER_BYTES: usize = XORB_CHUNK_HEADER_LENGTH;
/// Largest stored chunk: a chunk that does not shrink is stored raw, so its stored form is never
/// longer than [`MAX_CHUNK_BYTES`]; a little slack covers an LZ4 frame's own header.
pub const MAX_STORED_CHUNK_BYTES: usize = MAX_CHUNK_BYTES + 1024;

/// Why a xorb range could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XorbError {
    /// The range ended inside a chunk header or chunk data.
    #[error("the xorb range ends inside chunk {index} (at byte {offset} of {len})")]
    Truncated {
        /// Chunk index within the range.
        index: usize,
        /// Where the chunk started.
        offset: usize,
        /// Length of the range.
        len: usize,
    },
    /// A chunk header is malformed or claims lengths beyond the format's bounds.
    #[error("chunk {index} has an invalid header: {why}")]
    Header {
        /// Chunk index within the range.
        index: usize,
        /// What was wrong.
        why: String,
    },
    /// A chunk decompressed to another length than its header said (an LZ4 bomb among them).
    #[error("chunk {index} decompresses to {actual} bytes, its header says {expected}")]
    Length {
        /// Chunk index within the range.
        index: usize,
        /// What the header promised.
        expected: usize,
        /// What decompression produced (capped at one byte past the promise).
        actual: usize,
    },
    /// A chunk's compressed data is not valid.
    #[error("chunk {index} does not decompress: {why}")]
    Corrupt {
        /// Chunk index within the range.
        index: usize,
        /// The decompressor's complaint.
        why: String,
    },
    /// The range holds another number of chunks than asked for.
    #[error("the xorb range holds {actual} chunks, expected {expected}")]
    Count {
        /// Chunks expected.
        expected: usize,
        /// Chunks found (counting stops one past the expectation).
        actual: usize,
    },
}

/// One decoded chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedChunk {
    /// Its uncompressed bytes.
    pub data: Vec<u8>,
}

/// Decodes exactly `expected` chunks from `range`, refusing anything else.
pub fn decode_chunks(range: &[u8], expected: usize) -> Result<Vec<DecodedChunk>, XorbError> {
    let (mut bytes, mut lengths) = (Vec::new(), Vec::new());
    decode_chunks_into(range, expected, &mut bytes, &mut lengths)?;
    let mut at = 0;
    Ok(lengths
        .iter()
        .map(|&length| {
            let data = bytes[at..at + length as usize].to_vec();
            at += length as usize;
            DecodedChunk { data }
        })
        .collect())
}

/// [`decode_chunks`] into buffers the caller reuses: the chunks' bytes are appended to `out`
/// back to back and their lengths to `lengths` (both are cleared first). Nothing is allocated
/// per chunk, so a transfer decoding range after range keeps its memory.
pub fn decode_chunks_into(
    range: &[u8],
    expected: usize,
    out: &mut Vec<u8>,
    lengths: &mut Vec<u32>,
) -> Result<(), XorbError> {
    out.clear();
    lengths.clear();
    let mut offset = 0;
    while offset < range.len() {
        let index = lengths.len();
        if index == expected {
            return Err(XorbError::Count {
                expected,
                actual: expected + 1,
            });
        }
        let before = out.len();
        let used = decode_one(&range[offset..], index, offset, range.len(), out)?;
        lengths.push((out.len() - before) as u32);
        offset += used;
    }
    if lengths.len() != expected {
        return Err(XorbError::Count {
            expected,
            actual: lengths.len(),
        });
    }
    Ok(())
}

/// Decodes the chunk at the start of `rest`, appending its bytes to `out`; returns the bytes
/// of `rest` it used.
fn decode_one(
    rest: &[u8],
    index: usize,
    offset: usize,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<usize, XorbError> {
    let truncated = XorbError::Truncated { index, offset, len };
    let header: [u8; CHUNK_HEADER_BYTES] = rest
        .get(..CHUNK_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| truncated.clone())?;
    let header = parse_chunk_header(header).map_err(|e| XorbError::Header {
        index,
        why: e.to_string(),
    })?;
    let stored = header.get_compressed_length() as usize;
    let unpacked = header.get_uncompressed_length() as usize;
    if unpacked > MAX_CHUNK_BYTES || stored > MAX_STORED_CHUNK_BYTES {
        return Err(XorbError::Header {
            index,
            why: format!(
                "it claims {stored} stored and {unpacked} unpacked bytes; chunks are at most {MAX_CHUNK_BYTES}"
            ),
        });
    }
    let scheme = header
        .get_compression_scheme()
        .map_err(|e| XorbError::Header {
            index,
            why: e.to_string(),
        })?;
    let data = rest
        .get(CHUNK_HEADER_BYTES..CHUNK_HEADER_BYTES + stored)
        .ok_or(truncated)?;
    let before = out.len();
    match scheme {
        CompressionScheme::None => out.extend_from_slice(data),
        CompressionScheme::LZ4 => lz4_bounded(data, unpacked, index, out)?,
        CompressionScheme::ByteGrouping4LZ4 => {
            let mut grouped = Vec::with_capacity(unpacked);
            lz4_bounded(data, unpacked, index, &mut grouped)?;
            out.extend_from_slice(&bg4_regroup(&grouped));
        }
        CompressionScheme::Auto => {
            return Err(XorbError::Header {
                index,
                why: "compression scheme `auto` is not a stored scheme".to_owned(),
            });
        }
    }
    let actual = out.len() - before;
    if actual != unpacked {
        return Err(XorbError::Length {
            index,
            expected: unpacked,
            actual,
        });
    }
    Ok(CHUNK_HEADER_BYTES + stored)
}

/// Decompresses an LZ4 frame onto the end of `out`, reading at most one byte past `expected`
/// so that a frame that would expand further is caught without ever being expanded.
fn lz4_bounded(
    data: &[u8],
    expected: usize,
    index: usize,
    out: &mut Vec<u8>,
) -> Result<(), XorbError> {
    out.reserve(expected);
    lz4_flex::frame::FrameDecoder::new(data)
        .take(expected as u64 + 1)
        .read_to_end(out)
        .map_err(|e| XorbError::Corrupt {
            index,
            why: e.to_string(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use xet_core_structures::xorb_object::{XorbChunkHeader, bg4_lz4_compress_from_slice};

    pub(super) fn header(scheme: CompressionScheme, stored: u32, unpacked: u32) -> Vec<u8> {
        let header = XorbChunkHeader::new(scheme, stored, unpacked);
        let mut out = Vec::new();
        xet_core_structures::xorb_object::write_chunk_header(&mut out, &header).unwrap();
        out
    }

    pub(super) fn lz4(data: &[u8]) -> Vec<u8> {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    pub(super) fn chunk(scheme: CompressionScheme, data: &[u8]) -> Vec<u8> {
        let stored = match scheme {
            CompressionScheme::None => data.to_vec(),
            CompressionScheme::LZ4 => lz4(data),
            _ => bg4_lz4_compress_from_slice(data).unwrap(),
        };
        let mut out = header(scheme, stored.len() as u32, data.len() as u32);
        out.extend_from_slice(&stored);
        out
    }

    #[test]
    fn decodes_every_scheme() {
        let a: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let b = vec![9u8; 1000];
        let c: Vec<u8> = (0..4096u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut range = chunk(CompressionScheme::None, &a);
        range.extend(chunk(CompressionScheme::LZ4, &b));
        range.extend(chunk(CompressionScheme::ByteGrouping4LZ4, &c));
        let chunks = decode_chunks(&range, 3).unwrap();
        assert_eq!(chunks[0].data, a);
        assert_eq!(chunks[1].data, b);
        assert_eq!(chunks[2].data, c);
        assert!(matches!(
            decode_chunks(&range, 2),
            Err(XorbError::Count { .. })
        ));
        assert!(matches!(
            decode_chunks(&range, 4),
            Err(XorbError::Count { .. })
        ));
    }

    #[test]
    fn refuses_oversized_headers_and_truncation() {
        // A header claiming 16 MiB does not fit 3 bytes' worth of "sane"; 200 KiB is over the cap.
        let mut range = header(CompressionScheme::None, 200 << 10, 200 << 10);
        range.extend(vec![0u8; 16]);
        assert!(matches!(
            decode_chunks(&range, 1),
            Err(XorbError::Header { .. })
        ));
        let good = chunk(CompressionScheme::None, &[1, 2, 3, 4]);
        assert!(matches!(
            decode_chunks(&good[..good.len() - 1], 1),
            Err(XorbError::Truncated { .. })
        ));
        assert!(matches!(
            decode_chunks(&good[..5], 1),
            Err(XorbError::Truncated { .. })
        ));
    }

    #[test]
    fn refuses_an_lz4_bomb() {
        // 128 KiB of zeros compresses to a few hundred bytes; the header claims 100 bytes.
        let stored = lz4(&vec![0u8; MAX_CHUNK_BYTES]);
        let mut range = header(CompressionScheme::LZ4, stored.len() as u32, 100);
        range.extend(&stored);
        assert_eq!(
            decode_chunks(&range, 1),
            Err(XorbError::Length {
                index: 0,
                expected: 100,
                actual: 101
            })
        );
        // And one that stops short of its promise.
        let stored = lz4(&[5u8; 50]);
        let mut range = header(CompressionScheme::LZ4, stored.len() as u32, 100);
        range.extend(&stored);
        assert!(matches!(
            decode_chunks(&range, 1),
            Err(XorbError::Length { actual: 50, .. })
        ));
        // Garbage instead of a frame.
        let mut range = header(CompressionScheme::LZ4, 8, 100);
        range.extend([0xAB; 8]);
        assert!(matches!(
            decode_chunks(&range, 1),
            Err(XorbError::Corrupt { .. })
        ));
    }
}

/// Property tests: hostile xorb ranges (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::tests::{chunk, header};
    use super::*;

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder, and what it accepts is bounded: exactly the
        /// expected number of chunks, none larger than a chunk may be.
        #[test]
        fn arbitrary_ranges_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            expected in 0usize..5,
        ) {
            if let Ok(chunks) = decode_chunks(&bytes, expected) {
                proptest::prop_assert_eq!(chunks.len(), expected);
                for chunk in chunks {
                    proptest::prop_assert!(chunk.data.len() <= MAX_CHUNK_BYTES);
                }
            }
        }

        /// A chunk header claiming any length, with a short body, is refused.
        #[test]
        fn lying_headers_are_refused(len in 1u32..(1 << 24), scheme in 0u8..4, body in 0usize..64) {
            let l = len.to_le_bytes();
            let mut range = vec![0, l[0], l[1], l[2], scheme, l[0], l[1], l[2]];
            range.extend(std::iter::repeat_n(7u8, body));
            if (body as u32) < len {
                proptest::prop_assert!(decode_chunks(&range, 1).is_err());
            }
        }
    }

    fn scheme() -> impl proptest::strategy::Strategy<Value = CompressionScheme> {
        proptest::sample::select(vec![
            CompressionScheme::None,
            CompressionScheme::LZ4,
            CompressionScheme::ByteGrouping4LZ4,
        ])
    }

    proptest::proptest! {
        /// Sound chunks of any scheme decode to what was encoded; one damaged byte gives an
        /// error or chunks still within bounds, never a panic.
        #[test]
        fn sound_and_damaged_ranges(
            chunks in proptest::collection::vec(
                (scheme(), proptest::collection::vec(0u8..4, 1..3000)),
                1..4,
            ),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let mut range = Vec::new();
            for (scheme, data) in &chunks {
                range.extend(chunk(*scheme, data));
            }
            let decoded = decode_chunks(&range, chunks.len()).unwrap();
            for (got, (_, want)) in decoded.iter().zip(&chunks) {
                proptest::prop_assert_eq!(&got.data, want);
            }
            let i = at.index(range.len());
            range[i] = byte;
            if let Ok(decoded) = decode_chunks(&range, chunks.len()) {
                for chunk in decoded {
                    proptest::prop_assert!(chunk.data.len() <= MAX_CHUNK_BYTES);
                }
            }
        }

        /// A header promising up to the largest chunk over a frame that expands to anything
        /// else is refused, without expanding past the promise.
        #[test]
        fn lz4_promises_are_kept(promise in 1u32..(MAX_CHUNK_BYTES as u32), actual in 0usize..200_000) {
            let frame = super::tests::lz4(&vec![1u8; actual]);
            let mut range = header(CompressionScheme::LZ4, frame.len() as u32, promise);
            range.extend(&frame);
            let result = decode_chunks(&range, 1);
            if actual == promise as usize {
                proptest::prop_assert!(result.is_ok());
            } else if frame.len() <= MAX_STORED_CHUNK_BYTES {
                let refused_as_length = matches!(
                    result,
                    Err(XorbError::Length { actual: got, .. }) if got <= promise as usize + 1
                );
                proptest::prop_assert!(refused_as_length);
            } else {
                proptest::prop_assert!(result.is_err());
            }
        }
    }
}
