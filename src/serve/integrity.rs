//! Nothing damaged leaves the mirror: a held blob's bytes are checked against its digest before
//! they are served from a file that may have changed since it was last hashed, and a slow
//! background scrub re-hashes the store to find decay.
//!
//! A blob file that still carries the stamp recorded when its bytes were last hashed
//! ([`crate::store::stamp`]) is trusted and goes out by `sendfile`. Any other — written,
//! replaced, chmod-ed or re-linked since, or never stamped (held before stamps existed) — is
//! hashed on its way out: a whole-file `GET` streams while it is hashed, and its last piece is
//! held back until the digest matches, so a damaged file ends in a cut connection (the client
//! sees a short body and retries), never a complete `200`; a range waits until the whole file is
//! hashed (once, however many clients ask). A match records the new stamp; a mismatch moves the
//! file to `quarantine/`, forgets the blob (its files are no longer held, so pull-through fetches
//! them again) and is counted in `larder_quarantined_blobs_total`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use sha2::Digest;
use tokio::sync::OnceCell;

use super::Mirror;
use crate::Larder;
use crate::fetch::rate::RateLimiter;
use crate::registry::Sha256;
use crate::store::stamp;

/// Bytes read at a time, serving and scrubbing.
const PIECE: usize = 256 << 10;
/// A blob is scrubbed again at most this often.
const SCRUB_AGAIN_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the scrub rests when every blob was checked recently.
const SCRUB_IDLE: Duration = Duration::from_secs(600);

/// Who found a damaged blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// Hashing it as it was served.
    Serve,
    /// The background scrub.
    Scrub,
}

impl FoundBy {
    /// Both, in metric order.
    pub const ALL: [FoundBy; 2] = [FoundBy::Serve, FoundBy::Scrub];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            FoundBy::Serve => "serve",
            FoundBy::Scrub => "scrub",
        }
    }
}

/// Whether a held blob's file may be sent as it is.
#[derive(Debug)]
pub enum Trust {
    /// It carries the stamp of its last good hash.
    Trusted,
    /// It must be hashed first (or as it is sent).
    Unchecked,
}

/// The outcome of hashing a held blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The bytes match.
    Good,
    /// They do not; the blob was quarantined and forgotten.
    Damaged,
    /// The file could not be read (gone, or an I/O error); nothing was decided.
    Unreadable(String),
}

/// The mirror's memory of the blobs it has checked, and the hashes running.
#[derive(Debug, Default)]
pub struct Integrity {
    /// Blob → the stamp its file had when this process (or the registry) last found it good.
    trusted: Mutex<HashMap<Sha256, String>>,
    /// Whole-file hashes running, so that many range requests wait on one.
    hashing: Mutex<HashMap<Sha256, Arc<OnceCell<Checked>>>>,
    /// Blobs quarantined, by who found them.
    quarantined: [std::sync::atomic::AtomicU64; 2],
    /// Bytes the scrub has hashed.
    scrubbed: std::sync::atomic::AtomicU64,
}

impl Integrity {
    /// Quarantined blobs found by `by`.
    pub fn quarantined(&self, by: FoundBy) -> u64 {
        self.quarantined[by as usize].load(Ordering::Relaxed)
    }

    /// Bytes the scrub has hashed since the mirror started.
    pub fn scrubbed_bytes(&self) -> u64 {
        self.scrubbed.load(Ordering::Relaxed)
    }

    /// Whether `sha256`'s file at `path` carries the stamp of its last good hash.
    pub async fn trust(&self, larder: &Larder, sha256: &Sha256, path: &Path) -> Trust {
        let Ok(now) = stamp::stamp(path) else {
            return Trust::Unchecked;
        };
        if self.remembered(sha256).as_deref() == Some(now.as_str()) {
            return Trust::Trusted;
        }
        match larder.registry.blob_stamp(sha256).await {
            Ok(Some(recorded)) if recorded == now => {
                self.remember(sha256, now);
                Trust::Trusted
            }
            _ => Trust::Unchecked,
        }
    }

    fn remembered(&self, sha256: &Sha256) -> Option<String> {
        self.trusted.lock().ok()?.get(sha256).cloned()
    }

    fn remember(&self, sha256: &Sha256, stamp: String) {
        if let Ok(mut trusted) = self.trusted.lock() {
            trusted.insert(sha256.to_owned(), stamp);
        }
    }

    fn forget(&self, sha256: &Sha256) {
        if let Ok(mut trusted) = self.trusted.lock() {
            trusted.remove(sha256);
        }
    }

    /// Whether `sha256`'s file at `path` may be sent: trusted by its stamp, or hashed whole now.
    pub async fn verified(&self, larder: &Larder, sha256: &Sha256, path: &Path) -> Checked {
        match self.trust(larder, sha256, path).await {
            Trust::Trusted => Checked::Good,
            Trust::Unchecked => self.check_whole(larder, sha256, path).await,
        }
    }

    /// Hash the whole of `sha256`'s file at `path`, once however many callers wait.
    pub async fn check_whole(&self, larder: &Larder, sha256: &Sha256, path: &Path) -> Checked {
        let cell = {
            let Ok(mut hashing) = self.hashing.lock() else {
                return Checked::Unreadable("a lock was poisoned".to_owned());
            };
            hashing.entry(sha256.to_owned()).or_default().clone()
        };
        let checked = cell
            .get_or_init(|| async {
                let (sha, file) = (sha256.to_owned(), path.to_path_buf());
                let hashed =
                    tokio::task::spawn_blocking(move || hash_file(&file, &sha, None)).await;
                let hashed = hashed.unwrap_or_else(|e| Err(e.to_string()));
                self.settle(larder, sha256, hashed, FoundBy::Serve).await
            })
            .await
            .clone();
        if let Ok(mut hashing) = self.hashing.lock() {
            hashing.remove(sha256);
        }
        checked
    }

    /// Act on a hash of a blob: remember a good one, quarantine a damaged one.
    async fn settle(
        &self,
        larder: &Larder,
        sha256: &Sha256,
        hashed: Result<Hashed, String>,
        by: FoundBy,
    ) -> Checked {
        match hashed {
            Err(why) => Checked::Unreadable(why),
            Ok(Hashed::Good { stamp: Some(stamp) }) => {
                let stamps = vec![(sha256.to_owned(), stamp.clone())];
                if let Err(error) = larder.registry.stamp_blobs(stamps, crate::now_unix()).await {
                    tracing::warn!(%error, %sha256, "recording a blob's stamp failed");
                }
                self.remember(sha256, stamp);
                Checked::Good
            }
            // Changed while it was read: good bytes, but no stamp to trust the file by.
            Ok(Hashed::Good { stamp: None }) => Checked::Good,
            Ok(Hashed::Damaged { actual }) => {
                self.quarantine(larder, sha256, &actual, by).await;
                Checked::Damaged
            }
        }
    }

    async fn quarantine(&self, larder: &Larder, sha256: &Sha256, actual: &str, by: FoundBy) {
        self.forget(sha256);
        self.quarantined[by as usize].fetch_add(1, Ordering::Relaxed);
        let moved = larder.local.quarantine(sha256);
        let removed = larder.registry.remove_blob(sha256).await;
        tracing::error!(
            %sha256,
            actual,
            found_by = by.label(),
            quarantined_to = ?moved.as_ref().map(|p| p.display().to_string()),
            "a held blob does not match its digest; it was quarantined and its files are no \
             longer held (pull-through fetches them again; else pull the revision again)"
        );
        if let Err(error) = removed {
            tracing::warn!(%error, %sha256, "forgetting a damaged blob failed");
        }
    }
}

/// What hashing a file found.
#[derive(Debug)]
enum Hashed {
    /// The digest matches; `stamp` is the file's stamp when it did not change while read.
    Good { stamp: Option<String> },
    /// It does not.
    Damaged { actual: String },
}

/// Hash `path`, expecting `sha256`; with `rate`, no faster than it (the scrub).
fn hash_file(path: &Path, sha256: &Sha256, rate: Option<&RateGate>) -> Result<Hashed, String> {
    let before = stamp::stamp(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(rate) = rate {
            rate.wait(n)?;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if *sha256 != actual {
        return Ok(Hashed::Damaged { actual });
    }
    Ok(Hashed::Good {
        stamp: stamp::unchanged(path, Some(&before)),
    })
}

/// A body that sends `sha256`'s file while hashing it, holding its last piece back until the
/// digest matches: a damaged file ends the response short (the connection is cut) and is
/// quarantined. `size` is the length recorded for the blob.
pub fn checked_body(
    larder: Larder,
    integrity: Arc<Integrity>,
    sha256: &Sha256,
    path: PathBuf,
    size: u64,
) -> Body {
    struct State {
        larder: Larder,
        integrity: Arc<Integrity>,
        sha256: Sha256,
        file: Option<tokio::fs::File>,
        path: PathBuf,
        hasher: sha2::Sha256,
        sent: u64,
        size: u64,
        before: Option<String>,
        held_back: Option<Bytes>,
    }
    let state = State {
        larder,
        integrity,
        sha256: sha256.to_owned(),
        file: None,
        before: stamp::stamp(&path).ok(),
        path,
        hasher: sha2::Sha256::new(),
        sent: 0,
        size,
        held_back: None,
    };
    let stream = futures::stream::try_unfold(state, |mut st| async move {
        use tokio::io::AsyncReadExt;
        if st.file.is_none() && st.sent == 0 && st.held_back.is_none() {
            st.file = Some(tokio::fs::File::open(&st.path).await?);
        }
        let Some(file) = st.file.as_mut() else {
            return Ok(None);
        };
        loop {
            let mut buf = vec![0u8; PIECE];
            let n = file.read(&mut buf).await?;
            buf.truncate(n);
            if n > 0 {
                st.hasher.update(&buf);
                st.sent += n as u64;
                if st.sent > st.size {
                    break;
                }
                // Send the previous piece; keep this one until the next read says more follows.
                let previous = st.held_back.replace(Bytes::from(buf));
                if let Some(piece) = previous {
                    return Ok(Some((piece, st)));
                }
                continue;
            }
            break;
        }
        // End of file (or past the recorded size): decide on the whole.
        st.file = None;
        let actual = hex::encode(std::mem::take(&mut st.hasher).finalize());
        let (integrity, larder) = (&st.integrity, &st.larder);
        if st.sent == st.size && actual == st.sha256 {
            let stamp = stamp::unchanged(&st.path, st.before.as_deref());
            integrity
                .settle(
                    larder,
                    &st.sha256,
                    Ok(Hashed::Good { stamp }),
                    FoundBy::Serve,
                )
                .await;
            return Ok(st.held_back.take().map(|piece| (piece, st)));
        }
        let found = Hashed::Damaged {
            actual: format!("{actual} ({} bytes)", st.sent),
        };
        integrity
            .settle(larder, &st.sha256, Ok(found), FoundBy::Serve)
            .await;
        Err(std::io::Error::other(format!(
            "held blob {} does not match its digest; cut and quarantined",
            st.sha256
        )))
    });
    Body::from_stream(stream)
}

/// A rate for the scrub's reads, blocking (it runs on a blocking thread).
struct RateGate {
    limiter: Arc<RateLimiter>,
    runtime: tokio::runtime::Handle,
    mirror: Weak<Mirror>,
}

impl RateGate {
    /// Wait until `bytes` more may be read; an error once the mirror has stopped.
    fn wait(&self, bytes: usize) -> Result<(), String> {
        if self.mirror.strong_count() == 0 {
            return Err("the mirror stopped".to_owned());
        }
        self.runtime.block_on(self.limiter.take(bytes));
        Ok(())
    }
}

/// Re-hash the store's blobs in the background, in digest order, skipping those verified in
/// the last week, at most `bytes_per_second`. Stops with the mirror.
pub fn spawn_scrub(mirror: Weak<Mirror>, bytes_per_second: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let limiter = Arc::new(RateLimiter::new(bytes_per_second));
        let mut cursor = String::new();
        loop {
            let next = {
                let Some(mirror) = mirror.upgrade() else {
                    return;
                };
                let min_age = SCRUB_AGAIN_AFTER.as_secs() as i64;
                let registry = &mirror.larder.registry;
                match registry
                    .next_to_scrub(&cursor, crate::now_unix(), min_age)
                    .await
                {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::warn!(%error, "the scrub could not read the registry");
                        None
                    }
                }
            };
            let Some(sha256) = next else {
                // A pass is complete: start over after a rest.
                cursor.clear();
                tokio::time::sleep(SCRUB_IDLE).await;
                continue;
            };
            cursor = sha256.to_string();
            let Some(path) = mirror
                .upgrade()
                .and_then(|mirror| mirror.larder.blobs.local_path(&sha256))
            else {
                continue;
            };
            let gate = RateGate {
                limiter: limiter.clone(),
                runtime: tokio::runtime::Handle::current(),
                mirror: mirror.clone(),
            };
            let (sha, file) = (sha256, path.clone());
            let hashed = tokio::task::spawn_blocking(move || hash_file(&file, &sha, Some(&gate)))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let Some(mirror) = mirror.upgrade() else {
                return;
            };
            if hashed.is_ok() {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                mirror.integrity.scrubbed.fetch_add(size, Ordering::Relaxed);
            }
            let larder = &mirror.larder;
            // A good file unchanged while read is stamped by `settle`, which marks it verified;
            // one that changed meanwhile gets no stamp, but its bytes were good just now.
            let unstamped = matches!(hashed, Ok(Hashed::Good { stamp: None }));
            match mirror
                .integrity
                .settle(larder, &sha256, hashed, FoundBy::Scrub)
                .await
            {
                Checked::Good => {
                    if unstamped {
                        let _ = larder
                            .registry
                            .mark_blob_verified(&sha256, crate::now_unix())
                            .await;
                    }
                }
                Checked::Damaged => {}
                Checked::Unreadable(why) => {
                    tracing::warn!(%sha256, why, "the scrub could not read a blob; skipped");
                }
            }
        }
    })
}
