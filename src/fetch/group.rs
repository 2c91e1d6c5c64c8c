//! Group commit of fetched files: verified parts are synced and published together, then the
//! whole group is recorded in one registry transaction.
//!
//! Files arrive on a channel as they are verified. Whatever arrived while the previous group
//! was being committed forms the next group (up to [`MAX_GROUP`] files), so groups are small
//! when files trickle in and large when they pour in, and no timer holds a file back. For each
//! group, in this order:
//! 1. every verified part is made read-only and synced, then renamed to its blob, then each
//!    directory the blobs landed in is synced once ([`crate::store::BlobStore::publish_group`]);
//! 2. the parts' resume state files (if a checkpoint wrote one) are removed and their locks
//!    let go;
//! 3. one transaction records every blob of the group (and its Xet chunking);
//! 4. only then is each file reported verified.
//!
//! Files a transfer already published one by one (large files, Xet) join the group only for
//! steps 3 and 4. Why a crash at any point of this is safe is argued in `docs/architecture.md`
//! ("Many small files").

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::sync::mpsc;

use super::PullError;
use super::progress::PullEvent;
use super::transfer::VerifiedPart;
use crate::Larder;
use crate::registry::Sha256;
use crate::report::Reporter;
use crate::xet::XetChunking;

/// Most files committed as one group.
pub const MAX_GROUP: usize = 256;
/// Content keys of regular files (named by their git oid, see [`super::plan::key_for`]).
const GIT_KEY_PREFIX: &str = "git-";

/// Which blobs hold the regular files a pull of one commit committed, noted in
/// `tmp/<commit>.held` (one `<git oid> <sha256>` line per file, appended a group at a time)
/// until the pull's snapshot records those files. The registry finds a regular file's blob
/// only through a snapshot's file rows, so without the notes a pull killed before its snapshot
/// would fetch every regular file it had committed again. A note is a hint, neither synced nor
/// trusted: [`HeldNotes::blob`] hashes the blob before naming it.
#[derive(Debug)]
pub struct HeldNotes {
    path: PathBuf,
    noted: HashMap<String, Sha256>,
}

impl HeldNotes {
    /// The notes an earlier pull of `commit` left.
    pub fn load(larder: &Larder, commit: &str) -> HeldNotes {
        let name: String = commit.chars().filter(char::is_ascii_alphanumeric).collect();
        let path = larder.local.tmp_dir().join(format!("{name}.held"));
        let noted = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter_map(|(oid, sha256)| Some((oid.to_owned(), Sha256::parse(sha256).ok()?)))
            .collect();
        HeldNotes { path, noted }
    }

    /// The blob noted for the regular file with `git_oid` and `size`, if the store holds it
    /// locally and its content hashes to that git oid.
    pub async fn blob(&self, larder: &Larder, git_oid: &str, size: u64) -> Option<Sha256> {
        let sha256 = *self.noted.get(git_oid)?;
        let path = larder.blobs.local_path(&sha256)?;
        let (digests, hashed) =
            tokio::task::spawn_blocking(move || super::digest::digest_file(&path, true))
                .await
                .ok()?
                .ok()?;
        let same = hashed == size
            && digests.sha256 == sha256
            && digests.git_oid.as_deref() == Some(git_oid);
        same.then_some(sha256)
    }

    fn append(&self, notes: &[(&str, &str)]) {
        use std::io::Write;
        if notes.is_empty() {
            return;
        }
        let text: String = notes
            .iter()
            .map(|(oid, sha256)| format!("{oid} {sha256}\n"))
            .collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(error) = written {
            tracing::debug!(%error, path = %self.path.display(), "could not note committed files");
        }
    }

    /// Forget the notes (the snapshot is recorded).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A file fetched and verified, on its way to the registry.
#[derive(Debug)]
pub struct FetchedFile {
    /// Path in the repo (for progress).
    pub path: String,
    /// Its content key (the plan's).
    pub key: String,
    /// Its sha256.
    pub sha256: Sha256,
    /// Size.
    pub size: u64,
    /// Bytes received from the upstream in this run.
    pub received: u64,
    /// Bytes copied from held blobs instead (Xet delta).
    pub reused: u64,
    /// Its Xet chunking, for the chunk index.
    pub chunking: Option<XetChunking>,
    /// The verified part still to publish; `None` when the transfer published it already.
    pub part: Option<VerifiedPart>,
}

/// What the committed groups add up to.
#[derive(Debug, Default)]
pub struct Committed {
    /// Content key → sha256 of every file recorded.
    pub fetched: HashMap<String, Sha256>,
    /// Bytes received for them.
    pub received: u64,
    /// Bytes reused for them (Xet delta).
    pub reused: u64,
}

/// Commit the files arriving on `files` group by group until the channel closes, then return
/// the totals. The first failure stops committing; the files not yet committed keep their
/// verified parts in `tmp/` (the next pull re-hashes and publishes them) and the caller sees
/// the error once it closes the channel.
pub async fn commit_groups(
    larder: &Larder,
    reporter: &dyn Reporter<PullEvent>,
    notes: &HeldNotes,
    mut files: mpsc::UnboundedReceiver<FetchedFile>,
) -> Result<Committed, PullError> {
    let mut committed = Committed::default();
    while let Some(first) = files.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match files.try_recv() {
                Ok(file) => group.push(file),
                Err(_) => break,
            }
        }
        commit(larder, reporter, notes, group, &mut committed).await?;
    }
    Ok(committed)
}

async fn commit(
    larder: &Larder,
    reporter: &dyn Reporter<PullEvent>,
    notes: &HeldNotes,
    group: Vec<FetchedFile>,
    committed: &mut Committed,
) -> Result<(), PullError> {
    // Noted before anything is published: a pull killed from here on finds each of these
    // regular files either still as a whole part or as a blob the note names (hashed before
    // use), instead of fetching it again. A note of a blob never published is just unused.
    let noted: Vec<(&str, &str)> = group
        .iter()
        .filter_map(|f| Some((f.key.strip_prefix(GIT_KEY_PREFIX)?, f.sha256.as_str())))
        .collect();
    notes.append(&noted);
    let parts: Vec<(PathBuf, Sha256)> = group
        .iter()
        .filter_map(|f| f.part.as_ref())
        .map(|p| (p.part_path.clone(), p.sha256))
        .collect();
    if !parts.is_empty() {
        larder.blobs.publish_group(&parts).await?;
    }
    let mut rows = Vec::with_capacity(group.len());
    let mut verified = Vec::new();
    for file in group {
        if let Some(part) = file.part {
            part.published();
            verified.push((file.path, file.sha256));
        }
        rows.push((file.sha256, file.size, file.chunking));
        committed.received += file.received;
        committed.reused += file.reused;
        committed.fetched.insert(file.key, file.sha256);
    }
    crate::record::record_verified_blobs(larder, &rows).await?;
    for (path, sha256) in verified {
        reporter.report(&PullEvent::FileVerified {
            path,
            sha256: Some(sha256),
        });
    }
    Ok(())
}
