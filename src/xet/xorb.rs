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
    let mut chunks = Vec::new();
    let mut stream = ChunkStream::new(expected, range.len());
    stream.feed(range, |_, data: &[u8]| {
        chunks.push(DecodedChunk {
            data: data.to_vec(),
        });
        Ok::<(), XorbError>(())
    })?;
    stream.finish()?;
    Ok(chunks)
}

/// Decodes a xorb range as it arrives, piece by piece, handing each chunk's bytes on in order.
///
/// A chunk that lies whole within a piece is decoded from the piece itself, and a raw
/// (uncompressed) one is handed on without any copy; only a chunk split across pieces is
/// gathered first. So memory stays at about one chunk whatever the range's length, and the
/// bytes written out are still in the CPU's cache. Every bound of [`decode_chunks`] holds.
#[derive(Debug, Default)]
pub struct ChunkStream {
    /// Chunks the range must hold.
    expected: usize,
    /// Length of the whole range (for error messages).
    len: usize,
    /// Chunks handed on so far.
    index: usize,
    /// Range bytes consumed by those chunks.
    consumed: usize,
    /// The start of a chunk that continues in the next piece.
    carry: Vec<u8>,
    /// A compressed chunk's decoded bytes.
    scratch: Vec<u8>,
}

impl ChunkStream {
    /// A decoder for a range of `len` bytes holding `expected` chunks.
    pub fn new(expected: usize, len: usize) -> Self {
        ChunkStream {
            expected,
            len,
            ..ChunkStream::default()
        }
    }

    /// Decodes what `piece` completes, calling `emit(index, bytes)` for each whole chunk, in
    /// order. The first error (the range's or `emit`'s) stops it.
    pub fn feed<E: From<XorbError>>(
        &mut self,
        mut piece: &[u8],
        mut emit: impl FnMut(usize, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.carry.is_empty() {
            // Complete the chunk begun in an earlier piece: its header, then its data.
            let header_missing = CHUNK_HEADER_BYTES.saturating_sub(self.carry.len());
            let take = header_missing.min(piece.len());
            self.carry.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.carry.len() < CHUNK_HEADER_BYTES {
                return Ok(());
            }
            let whole = self.extent(&self.carry)?;
            let take = (whole - self.carry.len()).min(piece.len());
            self.carry.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.carry.len() < whole {
                return Ok(());
            }
            let carry = std::mem::take(&mut self.carry);
            let result = self.emit_chunk(&carry, &mut emit);
            self.carry = carry;
            self.carry.clear();
            result?;
        }
        while !piece.is_empty() {
            if piece.len() < CHUNK_HEADER_BYTES {
                break;
            }
            let whole = self.extent(piece)?;
            if piece.len() < whole {
                break;
            }
            self.emit_chunk(&piece[..whole], &mut emit)?;
            piece = &piece[whole..];
        }
        self.carry.extend_from_slice(piece);
        Ok(())
    }

    /// Checks that the range ended where its last chunk did, with every chunk there.
    pub fn finish(&self) -> Result<(), XorbError> {
        if !self.carry.is_empty() {
            return Err(XorbError::Truncated {
                index: self.index,
                offset: self.consumed,
                len: self.len,
            });
        }
        if self.index != self.expected {
            return Err(XorbError::Count {
                expected: self.expected,
                actual: self.index,
            });
        }
        Ok(())
    }

    /// Header and data length of the chunk `rest` starts with (its header is whole).
    fn extent(&self, rest: &[u8]) -> Result<usize, XorbError> {
        let header = chunk_header(rest, self.index, self.consumed, self.len)?;
        Ok(CHUNK_HEADER_BYTES + header.stored)
    }

    /// Decodes one whole chunk (header and data) and hands its bytes on.
    fn emit_chunk<E: From<XorbError>>(
        &mut self,
        chunk: &[u8],
        emit: &mut impl FnMut(usize, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let index = self.index;
        if index == self.expected {
            return Err(XorbError::Count {
                expected: self.expected,
                actual: self.expected + 1,
            }
            .into());
        }
        let header = chunk_header(chunk, index, self.consumed, self.len)?;
        let data = &chunk[CHUNK_HEADER_BYTES..];
        if header.scheme == CompressionScheme::None {
            if data.len() != header.unpacked {
                return Err(XorbError::Length {
                    index,
                    expected: header.unpacked,
                    actual: data.len(),
                }
                .into());
            }
            emit(index, data)?;
        } else {
            self.scratch.clear();
            decode_data(data, &header, index, &mut self.scratch)?;
            emit(index, &self.scratch)?;
        }
        self.index += 1;
        self.consumed += chunk.len();
        Ok(())
    }
}

/// What a chunk header says, checked against the format's bounds.
struct ChunkHeader {
    stored: usize,
    unpacked: usize,
    scheme: CompressionScheme,
}

/// Parses the header `rest` starts with; `Truncated` when `rest` is shorter than a header.
fn chunk_header(
    rest: &[u8],
    index: usize,
    offset: usize,
    len: usize,
) -> Result<ChunkHeader, XorbError> {
    let header: [u8; CHUNK_HEADER_BYTES] = rest
        .get(..CHUNK_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(XorbError::Truncated { index, offset, len })?;
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
    if scheme == CompressionScheme::Auto {
        return Err(XorbError::Header {
            index,
            why: "compression scheme `auto` is not a stored scheme".to_owned(),
        });
    }
    Ok(ChunkHeader {
        stored,
        unpacked,
        scheme,
    })
}

/// Decodes a chunk's stored data onto the end of `out`, refusing any other length than its
/// header promised.
fn decode_data(
    data: &[u8],
    header: &ChunkHeader,
    index: usize,
    out: &mut Vec<u8>,
) -> Result<(), XorbError> {
    let before = out.len();
    match header.scheme {
        CompressionScheme::LZ4 => lz4_bounded(data, header.unpacked, index, out)?,
        CompressionScheme::ByteGrouping4LZ4 => {
            let mut grouped = Vec::with_capacity(header.unpacked);
            lz4_bounded(data, header.unpacked, index, &mut grouped)?;
            out.extend_from_slice(&bg4_regroup(&grouped));
        }
        CompressionScheme::None | CompressionScheme::Auto => out.extend_from_slice(data),
    }
    let actual = out.len() - before;
    if actual != header.unpacked {
        return Err(XorbError::Length {
            index,
            expected: header.unpacked,
            actual,
        });
    }
    Ok(())
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

    /// Fed in pieces split anywhere (inside headers, inside data, between chunks), the stream
    /// hands on the same chunks as one whole range, and a range cut short is refused.
    #[test]
    fn pieces_split_anywhere_decode_the_same() {
        let a: Vec<u8> = (0..5_000u32).map(|i| (i % 251) as u8).collect();
        let b = vec![7u8; 3000];
        let c: Vec<u8> = (0..1024u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut range = chunk(CompressionScheme::None, &a);
        range.extend(chunk(CompressionScheme::LZ4, &b));
        range.extend(chunk(CompressionScheme::ByteGrouping4LZ4, &c));
        range.extend(chunk(CompressionScheme::None, &b[..10]));
        let whole: Vec<Vec<u8>> = decode_chunks(&range, 4)
            .unwrap()
            .into_iter()
            .map(|c| c.data)
            .collect();
        assert_eq!(
            whole,
            vec![a.clone(), b.clone(), c.clone(), b[..10].to_vec()]
        );
        for step in [1, 3, 7, 8, 9, 100, 4999, 5008, 5009] {
            let mut stream = ChunkStream::new(4, range.len());
            let mut got: Vec<(usize, Vec<u8>)> = Vec::new();
            for piece in range.chunks(step) {
                stream
                    .feed(piece, |i, data: &[u8]| {
                        got.push((i, data.to_vec()));
                        Ok::<(), XorbError>(())
                    })
                    .unwrap();
            }
            stream.finish().unwrap();
            let indices: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
            assert_eq!(indices, vec![0, 1, 2, 3], "pieces of {step}");
            let data: Vec<Vec<u8>> = got.into_iter().map(|(_, d)| d).collect();
            assert_eq!(data, whole, "pieces of {step}");
        }
        let mut stream = ChunkStream::new(4, range.len());
        stream
            .feed(&range[..range.len() - 1], |_, _| Ok::<(), XorbError>(()))
            .unwrap();
        assert!(matches!(
            stream.finish(),
            Err(XorbError::Truncated { index: 3, .. })
        ));
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
