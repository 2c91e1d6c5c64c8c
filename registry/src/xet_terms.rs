//! The `xet_terms` table: which Xet xorb chunk ranges the store holds, as bytes of which blob.
//!
//! Learnt from the reconstructions of Xet pulls (a term is a run of consecutive chunks of one
//! xorb); a later pull looks each of its terms up here and copies it from the blob instead of
//! fetching it. The copied bytes are verified with the whole file, so a stale row can cost a
//! refetch, never a wrong byte.

use rusqlite::params;

use crate::digest::Sha256;
use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;

/// Chunks `[chunk_start, chunk_end)` of xorb `xorb` are the bytes of blob `blob` from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTerm {
    /// The xorb hash (64 hex, the Hub's spelling).
    pub xorb: String,
    /// First chunk index.
    pub chunk_start: u32,
    /// One past the last chunk index.
    pub chunk_end: u32,
    /// The blob holding the bytes (sha256).
    pub blob: Sha256,
    /// Where the first chunk starts in the blob.
    pub offset: u64,
    /// Each chunk's length, in order.
    pub lengths: Vec<u32>,
}

fn xorb_key(xorb: &str) -> Result<Vec<u8>, RegistryError> {
    let invalid = || RegistryError::InvalidInput {
        field: "Xet xorb hash",
        value: xorb.to_owned(),
        reason: "not 64 hex digits",
    };
    if xorb.len() != 64 || !xorb.is_ascii() {
        return Err(invalid());
    }
    (0..32)
        .map(|i| u8::from_str_radix(&xorb[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())
}

impl Registry {
    /// Records terms of one blob (replacing what was known of those terms in that blob).
    pub async fn record_xet_terms(&self, terms: Vec<HeldTerm>) -> Result<(), RegistryError> {
        let mut rows = Vec::with_capacity(terms.len());
        for term in terms {
            if term.chunk_end <= term.chunk_start
                || term.lengths.len() != (term.chunk_end - term.chunk_start) as usize
            {
                return Err(RegistryError::InvalidInput {
                    field: "Xet term",
                    value: format!("{}[{}..{}]", term.xorb, term.chunk_start, term.chunk_end),
                    reason: "empty, or not one length per chunk",
                });
            }
            let lengths: Vec<u8> = term.lengths.iter().flat_map(|l| l.to_le_bytes()).collect();
            rows.push((xorb_key(&term.xorb)?, term, lengths));
        }
        self.write(move |conn| {
            let tx = conn
                .transaction()
                .map_err(write_error(|| "record Xet terms".to_owned()))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO xet_terms
                           (xorb, chunk_start, chunk_end, blob, offset, lengths)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(write_error(|| "record Xet terms".to_owned()))?;
                for (key, term, lengths) in &rows {
                    insert
                        .execute(params![
                            key,
                            term.chunk_start,
                            term.chunk_end,
                            term.blob,
                            term.offset as i64,
                            lengths
                        ])
                        .map_err(write_error(|| "record Xet terms".to_owned()))?;
                }
            }
            tx.commit()
                .map_err(write_error(|| "record Xet terms".to_owned()))
        })
        .await
    }

    /// Held terms of `xorb` that contain chunks `[chunk_start, chunk_end)`, narrowed to exactly
    /// those chunks (offset and lengths adjusted). Several blobs may hold them.
    pub async fn xet_terms_holding(
        &self,
        xorb: &str,
        chunk_start: u32,
        chunk_end: u32,
    ) -> Result<Vec<HeldTerm>, RegistryError> {
        let key = xorb_key(xorb)?;
        let xorb = xorb.to_ascii_lowercase();
        self.read(move |conn| {
            let query = || -> rusqlite::Result<Vec<HeldTerm>> {
                let mut statement = conn.prepare_cached(
                    "SELECT chunk_start, chunk_end, blob, offset, lengths FROM xet_terms
                     WHERE xorb = ?1 AND chunk_start <= ?2 AND chunk_end >= ?3",
                )?;
                let rows = statement.query_map(params![key, chunk_start, chunk_end], |row| {
                    let start: u32 = row.get(0)?;
                    let end: u32 = row.get(1)?;
                    let blob: Sha256 = row.get(2)?;
                    let offset: i64 = row.get(3)?;
                    let raw: Vec<u8> = row.get(4)?;
                    Ok((start, end, blob, offset as u64, raw))
                })?;
                let mut held = Vec::new();
                for row in rows {
                    let (start, end, blob, offset, raw) = row?;
                    let lengths: Vec<u32> = raw
                        .chunks_exact(4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    if lengths.len() != (end - start) as usize {
                        continue;
                    }
                    let skip = (chunk_start - start) as usize;
                    let take = (chunk_end - chunk_start) as usize;
                    let before: u64 = lengths[..skip].iter().map(|&l| u64::from(l)).sum();
                    held.push(HeldTerm {
                        xorb: xorb.clone(),
                        chunk_start,
                        chunk_end,
                        blob,
                        offset: offset + before,
                        lengths: lengths[skip..skip + take].to_vec(),
                    });
                }
                Ok(held)
            };
            query().map_err(read_error(|| "look up Xet terms".to_owned()))
        })
        .await
    }
}
