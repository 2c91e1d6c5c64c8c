//! A CAS reconstruction answer (`../shared/docs/xet.md` §2), parsed and checked into a list of
//! [`Term`]s: which chunks of which xorb fill which bytes of the file, and which xorb byte range
//! to fetch for them.
//!
//! The answer is not trusted. It is refused with a [`ReconstructionError`] when the terms do not
//! add up to the file's size, a chunk range is empty, reversed or longer than a xorb can be, a
//! term claims more bytes than its chunks can hold, no fetch range covers a term, fetch ranges of
//! one xorb overlap, or a byte range is reversed or too long for its chunks. No number in it is
//! trusted in arithmetic before it is bounded: an accepted fetch range spans at most its chunks
//! × ([`CHUNK_HEADER_BYTES`] + [`MAX_STORED_CHUNK_BYTES`]) bytes, which is all a xorb range read
//! may then buffer.

use std::collections::HashMap;

use serde::Deserialize;

use super::xorb::{CHUNK_HEADER_BYTES, MAX_CHUNK_BYTES, MAX_STORED_CHUNK_BYTES};

/// Most chunks one xorb holds.
pub const MAX_CHUNKS_PER_XORB: u32 = 8192;

#[derive(Debug, Clone, Copy, Deserialize)]
struct RawRange {
    start: u64,
    end: u64,
}

#[derive(Debug, Deserialize)]
struct RawTerm {
    hash: String,
    unpacked_length: u64,
    range: RawRange,
}

#[derive(Debug, Deserialize)]
struct RawFetchV1 {
    range: RawRange,
    url: String,
    url_range: RawRange,
}

#[derive(Debug, Deserialize)]
struct RawRangeV2 {
    chunks: RawRange,
    bytes: RawRange,
}

#[derive(Debug, Deserialize)]
struct RawFetchV2 {
    url: String,
    ranges: Vec<RawRangeV2>,
}

/// `GET /v1/reconstructions/{hash}`.
#[derive(Debug, Deserialize)]
pub struct RawV1 {
    offset_into_first_range: u64,
    terms: Vec<RawTerm>,
    #[serde(default)]
    fetch_info: HashMap<String, Vec<RawFetchV1>>,
}

/// `GET /v2/reconstructions/{hash}`.
#[derive(Debug, Deserialize)]
pub struct RawV2 {
    offset_into_first_range: u64,
    terms: Vec<RawTerm>,
    #[serde(default)]
    xorbs: HashMap<String, Vec<RawFetchV2>>,
}

/// Bytes of a xorb to GET, and the chunks they hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchRange {
    /// Where (signed; fetched without `Authorization`).
    pub url: String,
    /// First chunk index held.
    pub chunk_start: u32,
    /// One past the last chunk index held.
    pub chunk_end: u32,
    /// First byte (for `Range: bytes=start-end`).
    pub byte_start: u64,
    /// Last byte, inclusive.
    pub byte_end: u64,
}

impl FetchRange {
    /// Bytes the range spans.
    pub fn len(&self) -> u64 {
        self.byte_end - self.byte_start + 1
    }

    /// Whether the range is empty (never, once checked).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Chunks `[chunk_start, chunk_end)` of `xorb`, filling `len` bytes of the file from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Position in the reconstruction.
    pub index: usize,
    /// The xorb's hash (64 hex).
    pub xorb: String,
    /// First chunk index.
    pub chunk_start: u32,
    /// One past the last chunk index.
    pub chunk_end: u32,
    /// Where its bytes start in the file.
    pub offset: u64,
    /// How many bytes it fills.
    pub len: u64,
    /// The fetch range that holds its chunks.
    pub fetch: FetchRange,
}

impl Term {
    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        self.chunk_end - self.chunk_start
    }
}

/// Why a reconstruction answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconstructionError {
    /// Not JSON of the expected shape.
    #[error("the reconstruction is not valid JSON of the expected shape: {0}")]
    Shape(String),
    /// The terms add up to another size.
    #[error("the reconstruction's terms add up to {terms} bytes but the file has {size}")]
    Size {
        /// Sum of the terms.
        terms: u64,
        /// The file's size.
        size: u64,
    },
    /// A whole-file answer started inside its first term.
    #[error("the reconstruction of the whole file skips {0} bytes of its first term")]
    Offset(u64),
    /// A term is malformed.
    #[error("term {index} of the reconstruction is invalid: {why}")]
    Term {
        /// Term index.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A fetch range is malformed.
    #[error("a fetch range of xorb {xorb} is invalid: {why}")]
    Fetch {
        /// The xorb.
        xorb: String,
        /// What is wrong.
        why: String,
    },
    /// A fresh reconstruction, asked for when signed URLs were refused, no longer holds a
    /// range the transfer was fetching.
    #[error("a fresh reconstruction no longer serves the chunk range whose URL expired")]
    Changed,
}

fn is_hash(text: &str) -> bool {
    crate::registry::is_lower_hex(text, 64)
}

/// Checks a v1 answer for a file of `size` bytes.
pub fn from_v1(raw: RawV1, size: u64) -> Result<Vec<Term>, ReconstructionError> {
    let fetches = raw
        .fetch_info
        .into_iter()
        .map(|(xorb, list)| {
            let ranges = list
                .into_iter()
                .map(|f| (f.url, f.range, f.url_range))
                .collect();
            (xorb, ranges)
        })
        .collect();
    check(raw.offset_into_first_range, raw.terms, fetches, size)
}

/// Checks a v2 answer for a file of `size` bytes.
pub fn from_v2(raw: RawV2, size: u64) -> Result<Vec<Term>, ReconstructionError> {
    let fetches = raw
        .xorbs
        .into_iter()
        .map(|(xorb, list)| {
            let ranges = list
                .into_iter()
                .flat_map(|multi| {
                    let url = multi.url;
                    multi
                        .ranges
                        .into_iter()
                        .map(move |r| (url.clone(), r.chunks, r.bytes))
                })
                .collect();
            (xorb, ranges)
        })
        .collect();
    check(raw.offset_into_first_range, raw.terms, fetches, size)
}

type RawFetches = HashMap<String, Vec<(String, RawRange, RawRange)>>;

fn check_fetches(raw: RawFetches) -> Result<HashMap<String, Vec<FetchRange>>, ReconstructionError> {
    let mut out = HashMap::with_capacity(raw.len());
    for (xorb, list) in raw {
        let fail = |why: String| ReconstructionError::Fetch {
            xorb: xorb.clone(),
            why,
        };
        if !is_hash(&xorb) {
            return Err(fail("the xorb hash is not 64 hex digits".to_owned()));
        }
        let mut ranges = Vec::with_capacity(list.len());
        for (url, chunks, bytes) in list {
            if chunks.start >= chunks.end || chunks.end > u64::from(MAX_CHUNKS_PER_XORB) {
                return Err(fail(format!(
                    "chunk range {}..{} is empty, reversed or past the {MAX_CHUNKS_PER_XORB} chunks of a xorb",
                    chunks.start, chunks.end
                )));
            }
            let count = chunks.end - chunks.start;
            let most = count * (CHUNK_HEADER_BYTES + MAX_STORED_CHUNK_BYTES) as u64;
            // `end - start + 1 > most`, without overflowing on a range spanning all of u64.
            if bytes.start > bytes.end || bytes.end - bytes.start >= most {
                return Err(fail(format!(
                    "byte range {}-{} is reversed or too long for {count} chunks",
                    bytes.start, bytes.end
                )));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(fail("a fetch URL is not http(s)".to_owned()));
            }
            ranges.push(FetchRange {
                url,
                chunk_start: chunks.start as u32,
                chunk_end: chunks.end as u32,
                byte_start: bytes.start,
                byte_end: bytes.end,
            });
        }
        ranges.sort_by_key(|r| (r.chunk_start, r.chunk_end));
        for pair in ranges.windows(2) {
            if pair[1].chunk_start < pair[0].chunk_end {
                return Err(fail(format!(
                    "chunk ranges {}..{} and {}..{} overlap",
                    pair[0].chunk_start, pair[0].chunk_end, pair[1].chunk_start, pair[1].chunk_end
                )));
            }
        }
        out.insert(xorb.to_ascii_lowercase(), ranges);
    }
    Ok(out)
}

fn check(
    offset_into_first_range: u64,
    raw_terms: Vec<RawTerm>,
    fetches: RawFetches,
    size: u64,
) -> Result<Vec<Term>, ReconstructionError> {
    if offset_into_first_range != 0 {
        return Err(ReconstructionError::Offset(offset_into_first_range));
    }
    let fetches = check_fetches(fetches)?;
    let mut terms = Vec::with_capacity(raw_terms.len());
    let mut offset: u64 = 0;
    for (index, raw) in raw_terms.into_iter().enumerate() {
        let fail = |why: String| ReconstructionError::Term { index, why };
        if !is_hash(&raw.hash) {
            return Err(fail("the xorb hash is not 64 hex digits".to_owned()));
        }
        let xorb = raw.hash.to_ascii_lowercase();
        let (start, end) = (raw.range.start, raw.range.end);
        if start >= end || end > u64::from(MAX_CHUNKS_PER_XORB) {
            return Err(fail(format!(
                "chunk range {start}..{end} is empty, reversed or past the {MAX_CHUNKS_PER_XORB} chunks of a xorb"
            )));
        }
        let count = end - start;
        if raw.unpacked_length == 0 || raw.unpacked_length > count * MAX_CHUNK_BYTES as u64 {
            return Err(fail(format!(
                "{} bytes cannot come from {count} chunks",
                raw.unpacked_length
            )));
        }
        let fetch = fetches
            .get(&xorb)
            .and_then(|list| {
                list.iter()
                    .find(|f| u64::from(f.chunk_start) <= start && end <= u64::from(f.chunk_end))
            })
            .cloned()
            .ok_or_else(|| fail(format!("no fetch range holds chunks {start}..{end}")))?;
        terms.push(Term {
            index,
            xorb,
            chunk_start: start as u32,
            chunk_end: end as u32,
            offset,
            len: raw.unpacked_length,
            fetch,
        });
        offset = offset.saturating_add(raw.unpacked_length);
        if offset > size {
            break;
        }
    }
    if offset != size {
        return Err(ReconstructionError::Size {
            terms: offset,
            size,
        });
    }
    Ok(terms)
}

/// Parses and checks a v1 body.
pub fn parse_v1(body: &[u8], size: u64) -> Result<Vec<Term>, ReconstructionError> {
    let raw: RawV1 =
        serde_json::from_slice(body).map_err(|e| ReconstructionError::Shape(e.to_string()))?;
    from_v1(raw, size)
}

/// Parses and checks a v2 body.
pub fn parse_v2(body: &[u8], size: u64) -> Result<Vec<Term>, ReconstructionError> {
    let raw: RawV2 =
        serde_json::from_slice(body).map_err(|e| ReconstructionError::Shape(e.to_string()))?;
    from_v2(raw, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn answer(terms: serde_json::Value, ranges: serde_json::Value) -> Vec<u8> {
        json!({ "offset_into_first_range": 0, "terms": terms,
                "xorbs": { X: [{ "url": "http://cas/x", "ranges": ranges }] } })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn accepts_a_sound_answer() {
        let body = answer(
            json!([{ "hash": X, "unpacked_length": 100, "range": { "start": 0, "end": 2 } },
                   { "hash": X, "unpacked_length": 50, "range": { "start": 2, "end": 3 } }]),
            json!([{ "chunks": { "start": 0, "end": 3 }, "bytes": { "start": 0, "end": 199 } }]),
        );
        let terms = parse_v2(&body, 150).unwrap();
        assert_eq!(terms.len(), 2);
        assert_eq!((terms[1].offset, terms[1].len), (100, 50));
        assert_eq!(terms[1].fetch.len(), 200);
    }

    #[test]
    fn refuses_hostile_answers() {
        let ranges =
            json!([{ "chunks": { "start": 0, "end": 3 }, "bytes": { "start": 0, "end": 199 } }]);
        let term = |len: u64, start: u64, end: u64| json!({ "hash": X, "unpacked_length": len, "range": { "start": start, "end": end } });
        // Terms short of the size, and past it.
        let short = answer(json!([term(100, 0, 2)]), ranges.clone());
        assert!(matches!(
            parse_v2(&short, 150),
            Err(ReconstructionError::Size { .. })
        ));
        assert!(matches!(
            parse_v2(&short, 50),
            Err(ReconstructionError::Size { .. })
        ));
        // Reversed, empty and out-of-range chunk ranges.
        for (start, end) in [(2, 1), (1, 1), (2, 5)] {
            let body = answer(json!([term(10, start, end)]), ranges.clone());
            assert!(parse_v2(&body, 10).is_err(), "{start}..{end}");
        }
        // More bytes than the chunks can hold.
        let body = answer(json!([term(300 << 10, 0, 2)]), ranges.clone());
        assert!(matches!(
            parse_v2(&body, 300 << 10),
            Err(ReconstructionError::Term { .. })
        ));
        // Overlapping fetch ranges.
        let overlapping = json!([
            { "chunks": { "start": 0, "end": 2 }, "bytes": { "start": 0, "end": 99 } },
            { "chunks": { "start": 1, "end": 3 }, "bytes": { "start": 50, "end": 199 } }]);
        let body = answer(json!([term(10, 0, 1)]), overlapping);
        assert!(matches!(
            parse_v2(&body, 10),
            Err(ReconstructionError::Fetch { .. })
        ));
        // A byte range far too long for its chunks.
        let huge = json!([{ "chunks": { "start": 0, "end": 1 }, "bytes": { "start": 0, "end": 1u64 << 30 } }]);
        let body = answer(json!([term(10, 0, 1)]), huge);
        assert!(matches!(
            parse_v2(&body, 10),
            Err(ReconstructionError::Fetch { .. })
        ));
        // Found by `fuzz::hostile_answers`: a byte range spanning all of u64 overflowed its
        // length (a panic in debug builds, accepted as a tiny range in release builds).
        let whole = json!([{ "chunks": { "start": 0, "end": 1 }, "bytes": { "start": 0, "end": u64::MAX } }]);
        let body = answer(json!([term(10, 0, 1)]), whole);
        assert!(matches!(
            parse_v2(&body, 10),
            Err(ReconstructionError::Fetch { .. })
        ));
        // Not JSON.
        assert!(matches!(
            parse_v2(b"{", 10),
            Err(ReconstructionError::Shape(_))
        ));
    }
}

/// Property tests: hostile reconstruction answers (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// A number that is usually small and sometimes at the edges of `u64`.
    fn number(small: u64) -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => 0..small,
            2 => Just(0),
            1 => Just(u64::MAX),
            1 => Just(u64::MAX - 1),
            1 => Just(u64::from(u32::MAX) + 1),
            1 => any::<u64>(),
        ]
    }

    /// One term and the fetch range offered for it: hash, length, chunks, bytes.
    type RawParts = (String, u64, u64, u64, u64, u64);

    fn parts() -> impl Strategy<Value = RawParts> {
        (
            prop_oneof![8 => "[0-9a-f]{0,2}", 1 => "[0-9A-Fa-z]{0,66}"],
            number(400),
            number(10),
            number(10),
            number(600),
            number(600),
        )
    }

    fn hash(h: &str) -> String {
        if h.len() <= 2 {
            format!("{h:0>64}")
        } else {
            h.to_owned()
        }
    }

    fn v1(offset: u64, terms: &[RawParts]) -> Value {
        let mut fetch = serde_json::Map::new();
        let mut raw_terms = Vec::new();
        for (h, len, c0, c1, b0, b1) in terms {
            raw_terms.push(
                json!({"hash": hash(h), "unpacked_length": len, "range": {"start": c0, "end": c1}}),
            );
            let list = fetch.entry(hash(h)).or_insert_with(|| json!([]));
            list.as_array_mut().unwrap().push(json!({
                "url": "http://x/", "range": {"start": c0, "end": c1}, "url_range": {"start": b0, "end": b1}
            }));
        }
        json!({"offset_into_first_range": offset, "terms": raw_terms, "fetch_info": fetch})
    }

    fn v2(offset: u64, terms: &[RawParts]) -> Value {
        let mut xorbs = serde_json::Map::new();
        let mut raw_terms = Vec::new();
        for (h, len, c0, c1, b0, b1) in terms {
            raw_terms.push(
                json!({"hash": hash(h), "unpacked_length": len, "range": {"start": c0, "end": c1}}),
            );
            let list = xorbs
                .entry(hash(h))
                .or_insert_with(|| json!([{"url": "https://x/", "ranges": []}]));
            list[0]["ranges"].as_array_mut().unwrap().push(json!({
                "chunks": {"start": c0, "end": c1}, "bytes": {"start": b0, "end": b1}
            }));
        }
        json!({"offset_into_first_range": offset, "terms": raw_terms, "xorbs": xorbs})
    }

    /// An accepted answer covers exactly the file, term after term, each held by a fetch range
    /// whose byte span is what its chunks can take.
    fn check_terms(terms: &[Term], size: u64) -> Result<(), TestCaseError> {
        let mut at = 0u64;
        for term in terms {
            prop_assert_eq!(term.offset, at);
            prop_assert!(
                term.chunk_start < term.chunk_end && term.chunk_end <= MAX_CHUNKS_PER_XORB
            );
            prop_assert!(
                term.len >= 1 && term.len <= u64::from(term.chunks()) * MAX_CHUNK_BYTES as u64
            );
            prop_assert!(term.fetch.chunk_start <= term.chunk_start);
            prop_assert!(term.fetch.chunk_end >= term.chunk_end);
            prop_assert!(term.fetch.byte_start <= term.fetch.byte_end);
            let chunks = u64::from(term.fetch.chunk_end - term.fetch.chunk_start);
            prop_assert!(
                term.fetch.len() <= chunks * (CHUNK_HEADER_BYTES + MAX_STORED_CHUNK_BYTES) as u64
            );
            at += term.len;
        }
        prop_assert_eq!(at, size);
        Ok(())
    }

    proptest! {
        /// A hostile reconstruction answer, v1 or v2, is refused or accepted, never a panic or
        /// an overflow; what is accepted is sound (see `check_terms`).
        #[test]
        fn hostile_answers(
            offset in prop_oneof![8 => Just(0u64), 1 => number(300)],
            terms in proptest::collection::vec(parts(), 0..6),
            size in proptest::option::of(number(1000)),
        ) {
            // Mostly the size the terms add up to, so that more answers get past that check.
            let size = size.unwrap_or_else(|| terms.iter().fold(0u64, |sum, t| sum.saturating_add(t.1)));
            if let Ok(parsed) = parse_v1(v1(offset, &terms).to_string().as_bytes(), size) {
                check_terms(&parsed, size)?;
            }
            if let Ok(parsed) = parse_v2(v2(offset, &terms).to_string().as_bytes(), size) {
                check_terms(&parsed, size)?;
            }
        }

        /// Arbitrary text as an answer: an error, never a panic.
        #[test]
        fn arbitrary_answers(garbage in crate::fuzzing::any_text(20), bytes in proptest::collection::vec(any::<u8>(), 0..300), size in number(1000)) {
            for body in [garbage.as_bytes(), &bytes] {
                if let Ok(parsed) = parse_v1(body, size) {
                    check_terms(&parsed, size)?;
                }
                if let Ok(parsed) = parse_v2(body, size) {
                    check_terms(&parsed, size)?;
                }
            }
        }
    }
}
