//! The chunk index on the [`Registry`]: each held blob's Xet file hash and chunk list, and a
//! lookup from a chunk hash to where the store holds those bytes (rows in `chunk_index.rs`).

use rusqlite::{Connection, OptionalExtension};

use crate::chunk_index::{ChunkLocation, XetRecord, get, locate, upsert};
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
    pub async fn xet(&self, sha256: &str) -> Result<Option<XetRecord>, RegistryError> {
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
    pub async fn xet_hash(&self, sha256: &str) -> Result<Option<String>, RegistryError> {
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
    pub async fn blobs_without_xet(&self) -> Result<Vec<String>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<String>> {
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
}
