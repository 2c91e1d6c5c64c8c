//! The chunk-index backfill: held LFS blobs that have no chunk index yet (pulled by
//! `larder pull` over plain HTTP, which skips the chunking unless `[pull] index_chunks` is set,
//! or stored before Larder kept an index) are chunked in the background, one at a time, so the
//! mirror can advertise and serve them over Xet. Until a blob is indexed, clients get it over
//! plain HTTP; a reconstruction asked for it meanwhile indexes it on the spot.
//!
//! The backfill rests as long as it worked after each blob, so it takes at most half of one
//! core and of the disk's time: on a mirror busy serving, clients come first.

use std::sync::Weak;
use std::time::Duration;

use super::super::Mirror;

/// How long the backfill rests once every held LFS blob is indexed, before looking again
/// (pulls by other processes add blobs at any time).
const IDLE: Duration = Duration::from_secs(30);

/// Index held LFS blobs that have none, in digest order, until the mirror stops.
pub fn spawn(mirror: Weak<Mirror>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = String::new();
        loop {
            let next = {
                let Some(mirror) = mirror.upgrade() else {
                    return;
                };
                mirror.larder.registry.next_unindexed(&cursor).await
            };
            let sha256 = match next {
                Ok(Some(sha256)) => sha256,
                Ok(None) => {
                    cursor.clear();
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "the chunk-index backfill could not read the registry");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            cursor = sha256.to_string();
            let Some(mirror) = mirror.upgrade() else {
                return;
            };
            let started = std::time::Instant::now();
            let indexed = crate::xet::index::chunking_of(&mirror.larder, &sha256).await;
            let worked = started.elapsed();
            match indexed {
                Ok(_) => {
                    tracing::debug!(%sha256, "indexed a held blob's Xet chunks");
                    if let Some(xet) = &mirror.xet {
                        // Commits' cached hash maps may lack this blob's hash.
                        xet.hashes.forget(|_| true);
                    }
                }
                // Removed meanwhile (gc), unreadable or damaged: the scrub and verify report
                // those; the next pass tries again.
                Err(error) => tracing::warn!(%error, %sha256, "could not index a held blob"),
            }
            drop(mirror);
            tokio::time::sleep(worked).await;
        }
    })
}
