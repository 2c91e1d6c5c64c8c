//! The part file on disk: its slot (a lock on the part itself), opening or resuming it from
//! its state file, a part an earlier run left whole, and the checkpoints that make written
//! ranges durable.

use super::*;

/// The digests of a part an earlier run left whole but unpublished, when they match the
/// job's: a part of the right size without a resume state (a part with one resumes as usual).
/// Its bytes are re-read and hashed here, so nothing unverified is trusted.
pub(super) async fn whole_part(
    part_path: &Path,
    state_path: &Path,
    job: &FileJob,
    index_chunks: bool,
) -> Option<Digests> {
    if state_path.exists()
        || std::fs::metadata(part_path).map_or(true, |m| m.len() != job.size || job.size == 0)
    {
        return None;
    }
    let (part, git) = (part_path.to_path_buf(), job.sha256.is_none());
    let (digests, size) = tokio::task::spawn_blocking(move || {
        crate::fetch::digest::digest_file_as(&part, git, index_chunks)
    })
    .await
    .ok()?
    .ok()?;
    let matches = size == job.size
        && match &job.sha256 {
            Some(sha) => digests.sha256 == sha,
            None => digests.git_oid.as_deref() == Some(job.git_oid.as_str()),
        };
    matches.then_some(digests)
}

/// Claim the resumable part `<key>.part` for this writer by locking the part file itself;
/// when another process holds it (pulling the same content right now), use a private part
/// `<key>.<pid>.part` instead so the two never write one part. Returns the slot name and the
/// locked file, which must stay open until the part is published or given up. (No separate
/// lock file: creating and deleting one per file is most of what a filesystem spends on a
/// pull of many small files.) Every part is verified before publication in any case.
pub(super) fn claim_slot(tmp: &Path, key: &str) -> Result<(String, File), StoreError> {
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("could not create", path, e))
    };
    let part = tmp.join(format!("{key}.part"));
    for _ in 0..3 {
        let file = open(&part)?;
        if file.try_lock().is_err() {
            break;
        }
        // The lock counts only if the file is still the part at that path, not one its last
        // holder published (renamed away) between our open and our lock.
        if same_file(&file, &part) {
            return Ok((key.to_owned(), file));
        }
    }
    let slot = format!("{key}.{}", std::process::id());
    let file = open(&tmp.join(format!("{slot}.part")))?;
    Ok((slot, file))
}

/// Whether `file` is the file at `path`.
pub(super) fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Open the part for `fresh`, resuming when a matching state and part exist. A fresh part
/// gets a fresh state file when `save_fresh`; otherwise any old state is removed
/// (a deferred part writes a state only when a checkpoint has something to record).
pub(super) fn open_part(
    part: &Path,
    state_path: &Path,
    fresh: &PartState,
    save_fresh: bool,
) -> Result<(File, PartState), StoreError> {
    if let Some(state) = PartState::load(state_path, fresh)
        && let Ok(file) = OpenOptions::new().read(true).write(true).open(part)
        && file.metadata().is_ok_and(|m| m.len() == fresh.size)
    {
        return Ok((file, state));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(part)
        .map_err(|e| StoreError::io("could not create", part, e))?;
    if save_fresh {
        file.set_len(fresh.size)
            .map_err(|e| StoreError::io("could not allocate", part, e))?;
        fresh.save(state_path)?;
    } else {
        match std::fs::remove_file(state_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("could not remove", state_path, e)),
        }
        file.set_len(fresh.size)
            .map_err(|e| StoreError::io("could not allocate", part, e))?;
    }
    Ok((file, fresh.clone()))
}

/// Sync the part, then record what is written. Returns whether anything changed.
pub(super) fn checkpoint(
    shared: &Shared,
    state_path: &Path,
    last: &mut PartState,
) -> Result<bool, StoreError> {
    let closed = shared.state_io.lock().unwrap_or_else(|p| p.into_inner());
    if *closed {
        return Ok(false);
    }
    let done = shared.lock().done.clone();
    if done == last.done {
        return Ok(false);
    }
    shared
        .file
        .sync_data()
        .map_err(|e| StoreError::io("could not sync", state_path, e))?;
    last.done = done;
    last.save(state_path)?;
    Ok(true)
}

pub(super) async fn checkpoint_loop(
    shared: Arc<Shared>,
    state_path: PathBuf,
    mut last: PartState,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let shared2 = shared.clone();
        let path = state_path.clone();
        let mut snapshot = last.clone();
        match tokio::task::spawn_blocking(move || {
            checkpoint(&shared2, &path, &mut snapshot).map(|_| snapshot)
        })
        .await
        {
            Ok(Ok(saved)) => last = saved,
            Ok(Err(error)) => {
                let path = shared.job.path.clone();
                shared.fail(TransferError::store(&path, error));
                return;
            }
            Err(_) => return,
        }
    }
}
