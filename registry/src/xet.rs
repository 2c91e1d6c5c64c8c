//! The chunk index on the [`Registry`]: each held blob's Xet file hash and chunk list, and a
//! lookup from a chunk hash to where the store holds those bytes (rows in `chunk_index.rs`).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use crate::chunk_index::{ChunkLocation, XetRecord, get, locate, upsert};
use crate::digest::Sha256;
use crate::error::{RegistryError, read_error, write_error};
use crate::registry::Registry;
use crate::validate;

impl Registry {
    /// Records a blob's Xet chunking, replacing any earlier record of it. The blob must be
    /// recorded first ([`Registry::record_blob`]); one transaction.
    pub async fn record_xet(&self, record: XetRecord) -> Result<(), RegistryError> {
        validate::xet_record(&record)?;
        self.write(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                upsert(&tx, &record)?;
                tx.commit()
            };
            run(conn).map_err(write_error(|| {
                format!("record the Xet chunking of blob {}", record.sha256)
            }))
        })
        .await
    }

    /// A blob's Xet chunking, `None` when none is recorded (a blob stored by an older Larder:
    /// `larder verify` computes it). A stored chunk list that cannot be read is reported as
    /// [`RegistryError::CorruptXetIndex`].
    pub async fn xet(&self, sha256: &Sha256) -> Result<Option<XetRecord>, RegistryError> {
        let sha256 = sha256.to_owned();
        self.read(move |conn| {
            let found = get(conn, &sha256).map_err(read_error(|| {
                format!("read the Xet chunking of blob {sha256}")
            }))?;
            match found {
                None => Ok(None),
                Some(Ok(record)) => Ok(Some(record)),
                Some(Err(bytes)) => Err(RegistryError::CorruptXetIndex { sha256, bytes }),
            }
        })
        .await
    }

    /// A blob's Xet file hash (hex), without its chunk list.
    pub async fn xet_hash(&self, sha256: &Sha256) -> Result<Option<String>, RegistryError> {
        let sha256 = sha256.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT xet_hash FROM xet_files WHERE sha256 = ?1")
                .and_then(|mut s| s.query_row([&sha256], |row| row.get(0)).optional())
                .map_err(read_error(|| format!("read the Xet hash of blob {sha256}")))
        })
        .await
    }

    /// Where the store holds each chunk of `hashes` (same order; `None` where no held blob has
    /// it). Every hit is confirmed against the full hash.
    pub async fn locate_chunks(
        &self,
        hashes: Vec<[u8; 32]>,
    ) -> Result<Vec<Option<ChunkLocation>>, RegistryError> {
        self.read(move |conn| {
            locate(conn, &hashes).map_err(read_error(|| "look up chunks".to_owned()))
        })
        .await
    }

    /// Held blobs with no Xet chunking recorded (stored before the chunk index existed).
    pub async fn blobs_without_xet(&self) -> Result<Vec<Sha256>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<Sha256>> {
                conn.prepare_cached(
                    "SELECT b.sha256 FROM blobs b
                     WHERE NOT EXISTS (SELECT 1 FROM xet_files x WHERE x.sha256 = b.sha256)
                     ORDER BY b.sha256",
                )?
                .query_map([], |row| row.get(0))?
                .collect()
            };
            query().map_err(read_error(|| {
                "list blobs without a Xet chunking".to_owned()
            }))
        })
        .await
    }

    /// Remembers the Xet hash the upstream listed for content not held yet (`sha256`,
    /// `xet_hash` pairs, both 64 lowercase hex), so the mirror can advertise Xet before it has
    /// fetched the content. One transaction.
    pub async fn record_listed_xet(
        &self,
        pairs: Vec<(Sha256, String)>,
    ) -> Result<(), RegistryError> {
        for (_, xet_hash) in &pairs {
            validate_hex64("xet_hash", xet_hash)?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO xet_listed (sha256, xet_hash) VALUES (?1, ?2)
                         ON CONFLICT (sha256) DO UPDATE SET xet_hash = excluded.xet_hash",
                    )?;
                    for (sha256, xet_hash) in &pairs {
                        insert.execute(rusqlite::params![sha256, xet_hash])?;
                    }
                }
                tx.commit()
            };
            run(conn).map_err(write_error(|| "record listed Xet hashes".to_owned()))
        })
        .await
    }

    /// The Xet hash of each of `sha256s` that has one: computed from the held bytes (the chunk
    /// index) or, for content not held, as the upstream listed it.
    pub async fn known_xet_hashes(
        &self,
        sha256s: Vec<Sha256>,
    ) -> Result<HashMap<Sha256, String>, RegistryError> {
        self.read(move |conn| {
            let query = || -> rusqlite::Result<HashMap<Sha256, String>> {
                let mut held =
                    conn.prepare_cached("SELECT xet_hash FROM xet_files WHERE sha256 = ?1")?;
                let mut listed =
                    conn.prepare_cached("SELECT xet_hash FROM xet_listed WHERE sha256 = ?1")?;
                let mut found = HashMap::new();
                for sha256 in sha256s {
                    let hash: Option<String> =
                        match held.query_row([sha256], |row| row.get(0)).optional()? {
                            Some(hash) => Some(hash),
                            None => listed.query_row([sha256], |row| row.get(0)).optional()?,
                        };
                    if let Some(hash) = hash {
                        found.insert(sha256, hash);
                    }
                }
                Ok(found)
            };
            query().map_err(read_error(|| "read Xet hashes".to_owned()))
        })
        .await
    }

    /// The held blob whose Xet hash is `xet_hash`, if any.
    pub async fn blob_with_xet_hash(
        &self,
        xet_hash: &str,
    ) -> Result<Option<Sha256>, RegistryError> {
        let xet_hash = xet_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT sha256 FROM xet_files WHERE xet_hash = ?1 LIMIT 1")
                .and_then(|mut s| s.query_row([&xet_hash], |row| row.get(0)).optional())
                .map_err(read_error(|| format!("look up Xet hash {xet_hash}")))
        })
        .await
    }

    /// The content (sha256) the upstream listed with Xet hash `xet_hash`, not necessarily held.
    pub async fn listed_with_xet_hash(
        &self,
        xet_hash: &str,
    ) -> Result<Option<Sha256>, RegistryError> {
        let xet_hash = xet_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT sha256 FROM xet_listed WHERE xet_hash = ?1 LIMIT 1")
                .and_then(|mut s| s.query_row([&xet_hash], |row| row.get(0)).optional())
                .map_err(read_error(|| format!("look up listed Xet hash {xet_hash}")))
        })
        .await
    }
}

fn validate_hex64(field: &'static str, value: &str) -> Result<(), RegistryError> {
    if !crate::digest::is_lower_hex(value, 64) {
        return Err(RegistryError::InvalidInput {
            field,
            value: value.to_owned(),
            reason: "expected 64 lowercase hex digits",
        });
    }
    Ok(())
}
