//! The rows of the chunk index (`xet_files`, `xet_chunks`; migration 0005): packing, writes,
//! lookups. Plain functions over a [`Connection`]; [`crate::xet`] exposes them on the registry.
//!
//! The registry stores hashes as opaque 32-byte values (the Xet module of `larder` fixes their
//! byte order) and never computes them. Storage format and costs are described in
//! `migrations/0005_xet_chunks.sql`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256;

/// Bytes of one packed chunk entry: the 32-byte hash and a u32 length.
const ENTRY: usize = 36;

/// One chunk of a blob's Xet chunking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XetChunk {
    /// The chunk hash, 32 bytes.
    pub hash: [u8; 32],
    /// The chunk's length in bytes.
    pub length: u32,
}

/// A blob's Xet chunking as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetRecord {
    /// The blob (sha256, 64 lowercase hex); it must be recorded in `blobs` first.
    pub sha256: Sha256,
    /// The Xet file hash in its hex form (64 lowercase hex).
    pub xet_hash: String,
    /// The chunks in file order.
    pub chunks: Vec<XetChunk>,
}

impl XetRecord {
    /// The blob's size: the sum of the chunk lengths.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.length)).sum()
    }
}

/// Where the store holds a chunk's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLocation {
    /// The blob holding it.
    pub sha256: Sha256,
    /// Index of the chunk in that blob's chunk list.
    pub index: u32,
    /// Byte offset in the blob.
    pub offset: u64,
    /// Length in bytes.
    pub length: u32,
}

/// The lookup key of a chunk hash: its first four bytes as a signed 32-bit integer.
fn prefix(hash: &[u8; 32]) -> i64 {
    i64::from(i32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]))
}

fn pack(chunks: &[XetChunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * ENTRY);
    for chunk in chunks {
        out.extend_from_slice(&chunk.hash);
        out.extend_from_slice(&chunk.length.to_le_bytes());
    }
    out
}

/// Unpacks a chunk list; `None` when the bytes are not a whole number of entries.
fn unpack(bytes: &[u8]) -> Option<Vec<XetChunk>> {
    if !bytes.len().is_multiple_of(ENTRY) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(ENTRY)
            .map(|entry| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&entry[..32]);
                let length = u32::from_le_bytes([entry[32], entry[33], entry[34], entry[35]]);
                XetChunk { hash, length }
            })
            .collect(),
    )
}

/// Replaces the chunk index rows of `record.sha256` with `record`.
pub(crate) fn upsert(conn: &Connection, record: &XetRecord) -> rusqlite::Result<()> {
    remove(conn, &record.sha256)?;
    conn.prepare_cached(
        "INSERT INTO xet_files (sha256, xet_hash, chunk_count, chunks) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        record.sha256,
        record.xet_hash,
        record.chunks.len() as i64,
        pack(&record.chunks)
    ])?;
    let file = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO xet_chunks (prefix, file, idx) VALUES (?1, ?2, ?3)",
    )?;
    let mut seen = HashSet::with_capacity(record.chunks.len());
    for (index, chunk) in record.chunks.iter().enumerate() {
        if seen.insert(chunk.hash) {
            insert.execute(params![prefix(&chunk.hash), file, index as i64])?;
        }
    }
    Ok(())
}

/// Removes the chunk index rows of a blob (before the blob's own row goes).
pub(crate) fn remove(conn: &Connection, sha256: &Sha256) -> rusqlite::Result<()> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, chunks FROM xet_files WHERE sha256 = ?1")?
        .query_row([sha256], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((file, bytes)) = found else {
        return Ok(());
    };
    let mut delete =
        conn.prepare_cached("DELETE FROM xet_chunks WHERE prefix = ?1 AND file = ?2")?;
    let mut seen = HashSet::new();
    for chunk in unpack(&bytes).unwrap_or_default() {
        if seen.insert(chunk.hash) {
            delete.execute(params![prefix(&chunk.hash), file])?;
        }
    }
    conn.prepare_cached("DELETE FROM xet_files WHERE id = ?1")?
        .execute([file])?;
    Ok(())
}

/// A blob's chunking; `Ok(None)` when none is recorded, an error when the stored list is
/// malformed (its length is not a whole number of entries).
pub(crate) fn get(
    conn: &Connection,
    sha256: &Sha256,
) -> rusqlite::Result<Option<Result<XetRecord, usize>>> {
    conn.prepare_cached("SELECT xet_hash, chunks FROM xet_files WHERE sha256 = ?1")?
        .query_row([sha256], |row| {
            let xet_hash: String = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            Ok(match unpack(&bytes) {
                Some(chunks) => Ok(XetRecord {
                    sha256: sha256.to_owned(),
                    xet_hash,
                    chunks,
                }),
                None => Err(bytes.len()),
            })
        })
        .optional()
}

/// The blob, chunk list and offsets of a `xet_files` row, loaded once per lookup batch.
struct Candidate {
    sha256: Sha256,
    chunks: Vec<XetChunk>,
    offsets: Vec<u64>,
}

fn load_candidate(conn: &Connection, file: i64) -> rusqlite::Result<Option<Candidate>> {
    let row: Option<(Sha256, Vec<u8>)> = conn
        .prepare_cached("SELECT sha256, chunks FROM xet_files WHERE id = ?1")?
        .query_row([file], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(sha256, bytes)| {
        let chunks = unpack(&bytes)?;
        let mut offsets = Vec::with_capacity(chunks.len());
        let mut offset = 0u64;
        for chunk in &chunks {
            offsets.push(offset);
            offset += u64::from(chunk.length);
        }
        Some(Candidate {
            sha256,
            chunks,
            offsets,
        })
    }))
}

pub(crate) fn locate(
    conn: &Connection,
    hashes: &[[u8; 32]],
) -> rusqlite::Result<Vec<Option<ChunkLocation>>> {
    let mut candidates: HashMap<i64, Option<Candidate>> = HashMap::new();
    let mut query = conn.prepare_cached("SELECT file, idx FROM xet_chunks WHERE prefix = ?1")?;
    let mut found = Vec::with_capacity(hashes.len());
    for hash in hashes {
        let hits: Vec<(i64, i64)> = query
            .query_map([prefix(hash)], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut location = None;
        for (file, idx) in hits {
            if let Entry::Vacant(slot) = candidates.entry(file) {
                slot.insert(load_candidate(conn, file)?);
            }
            let Some(Some(candidate)) = candidates.get(&file) else {
                continue;
            };
            let Ok(index) = usize::try_from(idx) else {
                continue;
            };
            // The prefix only narrows the search: confirm the full hash.
            if let Some(chunk) = candidate.chunks.get(index)
                && chunk.hash == *hash
            {
                location = Some(ChunkLocation {
                    sha256: candidate.sha256,
                    index: index as u32,
                    offset: candidate.offsets[index],
                    length: chunk.length,
                });
                break;
            }
        }
        found.push(location);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips() {
        let chunks = vec![
            XetChunk {
                hash: [7; 32],
                length: 65536,
            },
            XetChunk {
                hash: [9; 32],
                length: 1,
            },
        ];
        let bytes = pack(&chunks);
        assert_eq!(bytes.len(), 72);
        assert_eq!(unpack(&bytes).unwrap(), chunks);
        assert!(unpack(&bytes[..71]).is_none());
    }
}
