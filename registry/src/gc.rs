//! Queries for garbage collection: blobs no file of any held commit refers to.

use crate::error::{RegistryError, read_error};
use crate::registry::Registry;
use crate::types::BlobRecord;

impl Registry {
    /// Blobs recorded in the store that no `files` row of any commit refers to.
    pub async fn unreferenced_blobs(&self) -> Result<Vec<BlobRecord>, RegistryError> {
        self.read(|conn| {
            let query = || -> rusqlite::Result<Vec<BlobRecord>> {
                let mut statement = conn.prepare(
                    "SELECT b.sha256, b.size, b.location, b.stored_at, b.verified_at
                     FROM blobs b
                     WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = b.sha256)
                     ORDER BY b.sha256",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(BlobRecord {
                        sha256: row.get(0)?,
                        size: row.get(1)?,
                        location: row.get(2)?,
                        stored_at: row.get(3)?,
                        verified_at: row.get(4)?,
                    })
                })?;
                rows.collect()
            };
            query().map_err(read_error(|| "list unreferenced blobs".to_owned()))
        })
        .await
    }
}
