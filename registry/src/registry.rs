//! [`Registry`], the handle the rest of Larder uses: it opens and migrates the database, owns
//! the writer thread and the read pool, and exposes every operation as an async method.
//!
//! Writes go through the single [`Writer`] thread in the order they are called; reads run in
//! `spawn_blocking` on the read-only pool (see `readers.rs`). A write is visible to every
//! read that starts after the write's future has resolved.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use crate::digest::{CommitId, Sha256};
use crate::error::{RegistryError, read_error, write_error};
use crate::licence::{AuditEntry, CommitLicence, LicenceRecord, LicenceSignalRecord};
use crate::readers::Readers;
use crate::types::{
    BlobRecord, BlobUse, CommitDetail, FileRow, RefObservation, RepoKind, RepoSummary,
    SnapshotRecord,
};
use crate::writer::Writer;
use crate::{blobs, connection, licence, migrate, queries, snapshot, validate};

/// A handle to the registry database. Cheap to clone; all clones share one writer thread and one
/// read pool. The writer thread stops once the last clone is dropped.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the database at `path` (creating the file if needed, not its directory), applies
    /// pending migrations and starts the writer thread.
    ///
    /// This blocks on disk I/O (and on another process's migration, up to the busy timeout), so
    /// async callers may want to run it in `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let mut conn = connection::open_write(path)?;
        migrate::ensure_supported(&conn, path)?;
        connection::enable_wal(&conn, path)?;
        migrate::migrate(&mut conn, path)?;
        let writer = Writer::spawn(conn)?;
        tracing::debug!(path = %path.display(), "opened registry");
        Ok(Registry {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer,
                readers: Readers::new(path.to_owned()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) async fn write<R, F>(&self, write: F) -> Result<R, RegistryError>
    where
        F: FnOnce(&mut Connection) -> Result<R, RegistryError> + Send + 'static,
        R: Send + 'static,
    {
        self.inner.writer.call(write).await
    }

    pub(crate) async fn read<R, F>(&self, read: F) -> Result<R, RegistryError>
    where
        F: FnOnce(&Connection) -> Result<R, RegistryError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.readers.run(read))
            .await
            .map_err(|source| RegistryError::ReadTask { source })?
    }

    // ---- writes ----------------------------------------------------------------------------

    /// Records that the store holds `blob` (insert, or replace the previous record of it).
    /// Call it after the blob is published, never before (blob first, then row).
    pub async fn record_blob(&self, blob: BlobRecord) -> Result<(), RegistryError> {
        self.write(move |conn| {
            blobs::upsert(conn, &blob)
                .map_err(write_error(|| format!("record blob {}", blob.sha256)))
        })
        .await
    }

    /// Records a group of blobs the store now holds, each with its Xet chunking when known, in
    /// one transaction: either every row of the group is written or none. A pull calls this
    /// once per group of files it published together (blob first, then row), so thousands of
    /// small files cost a few transactions, not thousands.
    pub async fn record_blobs(
        &self,
        group: Vec<(BlobRecord, Option<crate::chunk_index::XetRecord>)>,
    ) -> Result<(), RegistryError> {
        for (blob, xet) in &group {
            if let Some(xet) = xet {
                validate::xet_record(xet)?;
                if xet.sha256 != blob.sha256 {
                    return Err(RegistryError::InvalidInput {
                        field: "sha256",
                        value: xet.sha256.to_string(),
                        reason: "a Xet chunking must describe the blob it is recorded with",
                    });
                }
            }
        }
        if group.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                for (blob, xet) in &group {
                    blobs::upsert(&tx, blob)?;
                    if let Some(xet) = xet {
                        crate::chunk_index::upsert(&tx, xet)?;
                    }
                }
                tx.commit()
            };
            run(conn).map_err(write_error(|| {
                format!("record a group of {} blobs", group.len())
            }))
        })
        .await
    }

    /// Records one pull of one commit in one transaction, and returns the commit's row id:
    ///
    /// - the repo is inserted, or its `upstream`, `gated` and `private` updated;
    /// - the commit is inserted, or its `fetched_at` (= `seen_at`) and `card_json` replaced;
    /// - each ref in `refs` extends its latest observation if it already pointed at `commit`,
    ///   else starts a new one (the version history);
    /// - each file is upserted by path; a `None` sha256 never erases a known one (unless the
    ///   file's git oid changed). Files are not deleted: a commit's tree never changes;
    /// - the commit's card licence signals are replaced by `licence`.
    ///
    /// Whether files are held is not checked here: LFS files the user excluded have a known
    /// sha256 and no blob, which is fine. Use [`Registry::ensure_held`] to check what you
    /// downloaded.
    pub async fn record_snapshot(&self, s: SnapshotRecord) -> Result<i64, RegistryError> {
        snapshot::validate(&s)?;
        self.write(move |conn| {
            snapshot::record(conn, &s).map_err(write_error(|| {
                format!(
                    "record the snapshot of {} {} at {}",
                    s.kind, s.name, s.commit
                )
            }))
        })
        .await
    }

    /// Records the store's new `blobs` and the snapshot that uses them in one transaction (an
    /// import from a bundle or a folder): either the whole revision is registered, or nothing
    /// of it. Publish the blobs to the store first (blob first, then row). Returns the commit's
    /// row id; the snapshot is recorded exactly as by [`Registry::record_snapshot`].
    pub async fn record_snapshot_with_blobs(
        &self,
        s: SnapshotRecord,
        blobs: Vec<BlobRecord>,
    ) -> Result<i64, RegistryError> {
        snapshot::validate(&s)?;
        self.write(move |conn| {
            snapshot::record_with_blobs(conn, &s, &blobs).map_err(write_error(|| {
                format!(
                    "record the snapshot of {} {} at {} with {} blobs",
                    s.kind,
                    s.name,
                    s.commit,
                    blobs.len()
                )
            }))
        })
        .await
    }

    /// Sets the time a blob's digest was last re-verified.
    /// Fails with [`RegistryError::UnknownBlob`] if the blob is not recorded.
    pub async fn mark_blob_verified(&self, sha256: &Sha256, at: i64) -> Result<(), RegistryError> {
        let sha256 = *sha256;
        self.write(move |conn| {
            let found = blobs::mark_verified(conn, &sha256, at)
                .map_err(write_error(|| format!("mark blob {sha256} verified")));
            match found? {
                true => Ok(()),
                false => Err(RegistryError::UnknownBlob { sha256 }),
            }
        })
        .await
    }

    /// Records that each `(sha256, stamp)` blob's file matched its digest just now, while it
    /// looked like `stamp` (see migration 0009), at `at` (unix seconds); blobs not recorded
    /// are skipped.
    pub async fn stamp_blobs(
        &self,
        stamps: Vec<(Sha256, String)>,
        at: i64,
    ) -> Result<(), RegistryError> {
        if stamps.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                for (sha256, stamp) in &stamps {
                    blobs::set_stamp(&tx, sha256, stamp, at)?;
                }
                tx.commit()
            };
            run(conn).map_err(write_error(|| format!("stamp {} blobs", stamps.len())))
        })
        .await
    }

    /// Forgets a blob (e.g. when verification quarantines it). Files naming it stay, and are
    /// no longer held. Removing a blob that is not recorded is not an error.
    pub async fn remove_blob(&self, sha256: &Sha256) -> Result<(), RegistryError> {
        let sha256 = sha256.to_owned();
        self.write(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                blobs::remove(&tx, &sha256)?;
                tx.commit()
            };
            run(conn).map_err(write_error(|| format!("remove blob {sha256}")))
        })
        .await
    }

    // ---- reads -----------------------------------------------------------------------------

    /// The stamp of a blob's file when it was last found to match its digest.
    pub async fn blob_stamp(&self, sha256: &Sha256) -> Result<Option<String>, RegistryError> {
        let sha256 = sha256.to_owned();
        self.read(move |conn| {
            blobs::stamp(conn, &sha256)
                .map_err(read_error(|| format!("read the stamp of {sha256}")))
        })
        .await
    }

    /// The first blob after `after` in digest order not verified in the `min_age` seconds
    /// before `now`: what a scrub checks next.
    pub async fn next_to_scrub(
        &self,
        after: &str,
        now: i64,
        min_age: i64,
    ) -> Result<Option<Sha256>, RegistryError> {
        let after = after.to_owned();
        self.read(move |conn| {
            blobs::next_to_scrub(conn, &after, now, min_age)
                .map_err(read_error(|| "find a blob to scrub".to_owned()))
        })
        .await
    }

    /// The first held LFS blob after `after` (digest order) without a chunk index.
    pub async fn next_unindexed(&self, after: &str) -> Result<Option<Sha256>, RegistryError> {
        let after = after.to_owned();
        self.read(move |conn| {
            blobs::next_unindexed(conn, &after)
                .map_err(read_error(|| "find a blob to index".to_owned()))
        })
        .await
    }

    /// One blob's record.
    pub async fn blob(&self, sha256: &Sha256) -> Result<Option<BlobRecord>, RegistryError> {
        let sha256 = sha256.to_owned();
        self.read(move |conn| {
            blobs::get(conn, &sha256).map_err(read_error(|| format!("read blob {sha256}")))
        })
        .await
    }

    /// Every blob the store holds, by digest.
    pub async fn blobs(&self) -> Result<Vec<BlobRecord>, RegistryError> {
        self.read(|conn| blobs::all(conn).map_err(read_error(|| "list blobs".to_owned())))
            .await
    }

    /// Total size of the blobs the store holds.
    pub async fn blob_bytes(&self) -> Result<u64, RegistryError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT CAST(total(size) AS INTEGER) FROM blobs",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(read_error(|| "sum blob sizes".to_owned()))
        })
        .await
    }

    /// The sha256 of a held blob whose content has this git blob id (from any repo or commit),
    /// so a regular file already held need not be downloaded again.
    pub async fn sha256_for_git_oid(&self, git_oid: &str) -> Result<Option<Sha256>, RegistryError> {
        let git_oid = git_oid.to_owned();
        self.read(move |conn| {
            blobs::sha256_for_git_oid(conn, &git_oid)
                .map_err(read_error(|| format!("look up git oid {git_oid}")))
        })
        .await
    }

    /// The commit `revision` names: itself if it is the full sha of a held commit, else the sha
    /// the ref of that name was last observed at. `None` if the repo or revision is unknown.
    pub async fn resolve(
        &self,
        kind: RepoKind,
        name: &str,
        revision: &str,
    ) -> Result<Option<CommitId>, RegistryError> {
        let (name, revision) = (name.to_owned(), revision.to_owned());
        self.read(move |conn| {
            queries::resolve(conn, kind, &name, &revision).map_err(read_error(|| {
                format!("resolve {revision} of {kind} {name}")
            }))
        })
        .await
    }

    /// Every repo (models, then datasets, each by name) with its held revisions (most recently fetched first).
    pub async fn list_repos(&self) -> Result<Vec<RepoSummary>, RegistryError> {
        self.read(|conn| queries::list_repos(conn).map_err(read_error(|| "list repos".to_owned())))
            .await
    }

    /// Everything recorded about one held commit; `None` if the repo or commit is unknown.
    pub async fn commit_detail(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<Option<CommitDetail>, RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.read(move |conn| {
            let raw = queries::commit_detail(conn, kind, &name, &sha)
                .map_err(read_error(|| format!("read commit {sha} of {kind} {name}")))?;
            let Some(queries::RawCommitDetail {
                mut detail,
                card_text,
            }) = raw
            else {
                return Ok(None);
            };
            if let Some(text) = card_text {
                let card =
                    serde_json::from_str(&text).map_err(|source| RegistryError::StoredJson {
                        what: format!("card of {kind} {name} at {sha}"),
                        source,
                    })?;
                detail.card_json = Some(card);
            }
            Ok(Some(detail))
        })
        .await
    }

    /// One file of a held commit (with whether it is held); `None` if the repo, commit or path
    /// is unknown. This is what serving a `/resolve` request needs.
    pub async fn file(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
        path: &str,
    ) -> Result<Option<FileRow>, RegistryError> {
        let (name, sha, path) = (name.to_owned(), sha.to_owned(), path.to_owned());
        self.read(move |conn| {
            queries::file(conn, kind, &name, &sha, &path).map_err(read_error(|| {
                format!("read {path} of {kind} {name} at {sha}")
            }))
        })
        .await
    }

    /// Checks that every one of `paths` of a held commit is held, e.g. after a pull recorded
    /// what it downloaded. Fails with [`RegistryError::UnknownRepo`],
    /// [`RegistryError::UnknownCommit`], [`RegistryError::UnknownFile`] (path not in the tree)
    /// or [`RegistryError::MissingBlob`] for the first path that is not held.
    pub async fn ensure_held(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
        paths: Vec<String>,
    ) -> Result<(), RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.read(move |conn| {
            let failed = read_error(|| format!("check what is held of {kind} {name} at {sha}"));
            let checked = (|| {
                let Some(repo_id) = queries::repo_id(conn, kind, &name)? else {
                    return Ok(Err(RegistryError::UnknownRepo {
                        kind,
                        name: name.clone(),
                    }));
                };
                if !queries::commit_exists(conn, repo_id, &sha)? {
                    return Ok(Err(RegistryError::UnknownCommit {
                        kind,
                        name: name.clone(),
                        sha,
                    }));
                }
                for path in paths {
                    match queries::file(conn, kind, &name, &sha, &path)? {
                        None => {
                            return Ok(Err(RegistryError::UnknownFile {
                                kind,
                                name: name.clone(),
                                sha,
                                path,
                            }));
                        }
                        Some(file) if !file.held => {
                            return Ok(Err(RegistryError::MissingBlob {
                                sha256: file.sha256,
                                path,
                            }));
                        }
                        Some(_) => {}
                    }
                }
                Ok(Ok(()))
            })();
            checked.map_err(failed)?
        })
        .await
    }

    /// Where each ref of the repo pointed and when, in the order observed.
    /// Fails with [`RegistryError::UnknownRepo`] if the repo was never recorded.
    pub async fn ref_history(
        &self,
        kind: RepoKind,
        name: &str,
    ) -> Result<Vec<RefObservation>, RegistryError> {
        let name = name.to_owned();
        self.read(move |conn| {
            let failed = read_error(|| format!("read the ref history of {kind} {name}"));
            let history = (|| match queries::repo_id(conn, kind, &name)? {
                Some(repo_id) => queries::ref_history(conn, repo_id).map(Some),
                None => Ok(None),
            })();
            match history.map_err(failed)? {
                Some(history) => Ok(history),
                None => Err(RegistryError::UnknownRepo { kind, name }),
            }
        })
        .await
    }

    /// Every (repo, commit, path) whose content has this sha256, whether held or not.
    pub async fn commits_using_blob(&self, sha256: &Sha256) -> Result<Vec<BlobUse>, RegistryError> {
        let sha256 = sha256.to_owned();
        self.read(move |conn| {
            queries::commits_using_blob(conn, &sha256)
                .map_err(read_error(|| format!("find the uses of blob {sha256}")))
        })
        .await
    }

    // ---- licences --------------------------------------------------------------------------

    /// Replaces the licence detection of a held commit (its non-card signals and its
    /// resolution) in one transaction. Fails with [`RegistryError::UnknownCommit`] if the
    /// commit is not held.
    pub async fn record_licence(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
        record: LicenceRecord,
    ) -> Result<(), RegistryError> {
        validate::repo_name(name)?;
        let (name, sha) = (name.to_owned(), *sha);
        self.write(move |conn| {
            let found =
                licence::record(conn, kind, &name, &sha, &record).map_err(write_error(|| {
                    format!("record the licence of {kind} {name} at {sha}")
                }))?;
            if found {
                Ok(())
            } else {
                Err(RegistryError::UnknownCommit { kind, name, sha })
            }
        })
        .await
    }

    /// Every held commit of a repo with its licence resolution, in the order the commits were
    /// first recorded (the last is the newest revision mirrored). Empty if the repo is unknown.
    pub async fn licence_history(
        &self,
        kind: RepoKind,
        name: &str,
    ) -> Result<Vec<CommitLicence>, RegistryError> {
        let name = name.to_owned();
        self.read(move |conn| licence::history(conn, kind, &name))
            .await
    }

    /// Every licence signal recorded for a held commit (card fields included).
    pub async fn licence_signals(
        &self,
        kind: RepoKind,
        name: &str,
        sha: &CommitId,
    ) -> Result<Vec<LicenceSignalRecord>, RegistryError> {
        let (name, sha) = (name.to_owned(), sha.to_owned());
        self.read(move |conn| {
            licence::signals(conn, kind, &name, &sha).map_err(read_error(|| {
                format!("read the licence signals of {kind} {name} at {sha}")
            }))
        })
        .await
    }

    /// Appends an entry to the audit log (its `id` is ignored) and returns the new id.
    pub async fn log_audit(&self, entry: AuditEntry) -> Result<i64, RegistryError> {
        self.write(move |conn| {
            licence::log(conn, &entry).map_err(write_error(|| {
                format!("append `{}` to the audit log", entry.action)
            }))
        })
        .await
    }

    /// Audit log entries, oldest first; only those about `repo` (`kind:org/name`) when given.
    pub async fn audit_log(&self, repo: Option<&str>) -> Result<Vec<AuditEntry>, RegistryError> {
        let repo = repo.map(str::to_owned);
        self.read(move |conn| licence::audit_log(conn, repo.as_deref()))
            .await
    }
}
