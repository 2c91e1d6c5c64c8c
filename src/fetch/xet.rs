//! One file over Xet (`../shared/docs/xet.md`): reconstruction terms from the CAS, each either
//! copied from a blob the store already holds (the delta) or decoded from a fetched xorb range,
//! written at its file offset into a part, then verified (sha256 and Xet hash) and published.
//!
//! - Delta: a term (chunks `[a, b)` of a xorb) found in the registry's `xet_terms` is copied
//!   from the blob holding it. Terms of one fetch range are fetched once.
//! - Transfer: fetch ranges go in parallel under the pull's connection permits, at most
//!   `connections_per_file` at once, through the rate limiter; a range that delivers nothing for
//!   the stall timeout is dropped and asked again without spending a retry; transient failures
//!   are retried with the pull's backoff (honouring `Retry-After`).
//! - Resume: the part `<sha256>.xet.part` and its state `<sha256>.xet.state` record each term
//!   that landed (with its chunk lengths, for the Xet hash); the state is written after the part
//!   is synced, every checkpoint interval and when the transfer stops for any reason (error,
//!   Ctrl-C). A later pull keeps those terms and fetches the rest.
//! - Nothing unverified is published: the part's sha256 is computed by reading it back in order as
//!   its gap-free prefix grows, its Xet hash from the hashes of the chunks as they were written
//!   (or, for resumed and copied terms, as read back); a mismatch discards the part.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::prefix_digest::PrefixDigest;
use super::progress::PullEvent;
use super::transfer::{FileJob, PartProgress, PrefixHook, TransferEnv};
use crate::failure::{Classify, FailureKind, Hint};
use crate::hub::HubError;
use crate::registry::{HeldTerm, Registry, Sha256};
use crate::store::StoreError;
use crate::xet::MerkleHash;
use crate::xet::cas::{CasError, CasSession, shown_url};
use crate::xet::reconstruction::{FetchRange, Term};
use crate::xet::xorb::{ChunkStream, XorbError};

const STATE_VERSION: u32 = 1;

/// What the Xet path needs beyond the plain transfer's environment.
#[derive(Clone)]
pub struct XetEnv {
    /// Where held terms are looked up and learnt ones recorded.
    pub registry: Registry,
    /// The CAS session of the pulled commit (its token is shared by every file).
    pub session: Arc<CasSession>,
}

/// A file fetched over Xet, verified and published.
#[derive(Debug, Clone)]
pub struct XetFetched {
    /// Its sha256.
    pub sha256: Sha256,
    /// Xorb bytes received in this run.
    pub fetched: u64,
    /// File bytes copied from held blobs.
    pub reused: u64,
    /// File bytes found in the part from an earlier run.
    pub resumed: u64,
    /// Its Xet chunking (for the chunk index).
    pub chunking: crate::xet::XetChunking,
}

/// Why a file could not be fetched over Xet.
#[derive(Debug, thiserror::Error)]
pub enum XetTransferError {
    /// The token route or the CAS failed or refused.
    #[error("`{path}`: Xet storage of {upstream} failed")]
    Cas {
        /// File path.
        path: String,
        /// The upstream (Hub endpoint).
        upstream: String,
        /// Cause.
        #[source]
        source: CasError,
    },
    /// A xorb range did not decode.
    #[error("`{path}`: {url} (Xet storage of {upstream}) sent a bad xorb range")]
    Xorb {
        /// File path.
        path: String,
        /// The upstream.
        upstream: String,
        /// The xorb URL (no query).
        url: String,
        /// Cause.
        #[source]
        source: XorbError,
    },
    /// A term decoded to another length than the reconstruction said.
    #[error(
        "`{path}`: term {index} of the reconstruction from {upstream} holds {actual} bytes, it says {expected}"
    )]
    TermLength {
        /// File path.
        path: String,
        /// The upstream.
        upstream: String,
        /// Term index.
        index: usize,
        /// Length promised.
        expected: u64,
        /// Length decoded.
        actual: u64,
    },
    /// The assembled bytes do not match the file's digests.
    #[error(
        "`{path}` assembled from the Xet storage of {upstream} failed verification: {what} should be {expected}, is {actual}"
    )]
    Mismatch {
        /// File path.
        path: String,
        /// The upstream.
        upstream: String,
        /// `sha256` or `Xet hash`.
        what: &'static str,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// Transient CAS failures kept happening.
    #[error("gave up on `{path}` over Xet after {attempts} failed attempts in a row")]
    Exhausted {
        /// File path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: CasError,
    },
    /// The part could not be written.
    #[error("could not write `{path}`")]
    Store {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
}

impl XetTransferError {
    /// Whether plain HTTP should be tried instead: the upstream does not serve Xet, or its CAS
    /// keeps failing. Hostile answers and refused tokens are not retried another way.
    pub fn falls_back(&self) -> bool {
        match self {
            XetTransferError::Cas { source, .. } => source.falls_back(),
            XetTransferError::Exhausted { .. } => true,
            _ => false,
        }
    }
}

impl Classify for XetTransferError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            XetTransferError::Store { source, .. } => source.failure_kind(),
            _ => FailureKind::Upstream,
        }
    }
}

impl Hint for XetTransferError {
    fn hint(&self) -> Option<String> {
        match self {
            XetTransferError::Cas {
                source: CasError::TokenDenied { had_token, .. },
                ..
            } => Some(if *had_token {
                "the Hub refused your token for this repo's Xet storage: accept the repo's terms on its page, or set HF_TOKEN to a token with read access".to_owned()
            } else {
                "this repo's Xet storage needs your Hub token: set HF_TOKEN (gated repos also need their terms accepted on the Hub); `--no-xet` uses plain HTTP".to_owned()
            }),
            XetTransferError::Store { .. } => None,
            _ => Some(
                "nothing was stored; `larder pull --no-xet` fetches the file over plain HTTP instead".to_owned(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DoneTerm {
    xorb: String,
    chunk_start: u32,
    chunk_end: u32,
    offset: u64,
    lengths: Vec<u32>,
    /// The chunks' Xet hashes when this run computed them from the bytes it wrote (kept in
    /// memory for the digest; a resumed or copied term has none and is hashed from the part).
    #[serde(skip)]
    hashes: Vec<MerkleHash>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct XetState {
    version: u32,
    size: u64,
    sha256: Sha256,
    xet_hash: String,
    /// By term index.
    done: BTreeMap<usize, DoneTerm>,
}

impl XetState {
    /// File bytes of the terms recorded as landed.
    fn landed_bytes(&self) -> u64 {
        self.done.values().map(|d| bytes_of(&d.lengths)).sum()
    }

    fn save(&self, path: &Path) -> Result<(), StoreError> {
        let tmp = path.with_extension("state.tmp");
        let json = serde_json::to_vec(self).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_data()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| StoreError::io("could not write resume state", path, e))
    }
}

/// Bytes of chunks of these lengths.
fn bytes_of(lengths: &[u32]) -> u64 {
    lengths.iter().map(|&l| u64::from(l)).sum()
}

fn matches(done: &DoneTerm, term: &Term) -> bool {
    done.xorb == term.xorb
        && done.chunk_start == term.chunk_start
        && done.chunk_end == term.chunk_end
        && done.offset == term.offset
        && done.lengths.len() == term.chunks() as usize
        && bytes_of(&done.lengths) == term.len
}

/// The part and its state. The state is saved (after syncing the part) by a checkpoint task
/// off the async workers, and when the part is dropped unless disarmed, so an abandoned transfer
/// (error, Ctrl-C) keeps what landed.
struct Part {
    file: File,
    path: PathBuf,
    state_path: PathBuf,
    state: Mutex<XetState>,
    /// Held across a save (sync, then write the state), so saves never interleave, and by
    /// [`Part::disarm`]: once it returns, no save writes the state again. `false` once disarmed.
    armed: Mutex<bool>,
}

impl Part {
    fn lock(&self) -> std::sync::MutexGuard<'_, XetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Syncs the part, then records every term that had landed before the sync (blocking: run
    /// it off the async workers).
    fn save(&self) -> Result<(), StoreError> {
        let armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        if !*armed {
            return Ok(());
        }
        let snapshot = self.lock().clone();
        self.file
            .sync_data()
            .map_err(|e| StoreError::io("could not sync", &self.path, e))?;
        snapshot.save(&self.state_path)
    }

    /// Stops every later save and removes the state (the part was published or discarded).
    fn disarm(&self) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        *armed = false;
        let _ = std::fs::remove_file(&self.state_path);
    }

    /// Records a landed term (the next checkpoint saves it).
    fn landed(&self, index: usize, done: DoneTerm) {
        self.lock().done.insert(index, done);
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), StoreError> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| StoreError::io("could not write", &self.path, e))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let _ = self.save();
    }
}

/// Saves `part`'s state every `every` until aborted or the part is gone, each save on a
/// blocking thread (a sync of a large part takes a while and must not hold up the transfer).
/// It holds the part only during a save, so the transfer's own handle is the last one as soon
/// as the transfer ends, and the part's final save (on drop) happens then, not whenever the
/// aborted task is reaped.
async fn checkpoint_loop(part: std::sync::Weak<Part>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(part) = part.upgrade() else {
            return;
        };
        match tokio::task::spawn_blocking(move || part.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not save the Xet part's resume state; a later pull may fetch more again");
            }
            Err(_) => return,
        }
    }
}

/// Aborts the checkpoint task when the transfer ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// File bytes the resume state of `sha256`'s Xet part records as landed (0 without one).
pub fn kept(tmp: &Path, sha256: &Sha256) -> u64 {
    std::fs::read(tmp.join(format!("{sha256}.xet.state")))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<XetState>(&bytes).ok())
        .map_or(0, |state| state.landed_bytes())
}

fn open_part(
    tmp: &Path,
    job: &FileJob,
    sha256: &Sha256,
    xet_hash: &str,
    terms: &[Term],
) -> Result<Part, StoreError> {
    let path = tmp.join(format!("{sha256}.xet.part"));
    let state_path = tmp.join(format!("{sha256}.xet.state"));
    let fresh = XetState {
        version: STATE_VERSION,
        size: job.size,
        sha256: sha256.to_owned(),
        xet_hash: xet_hash.to_owned(),
        done: BTreeMap::new(),
    };
    let resumed = std::fs::read(&state_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<XetState>(&bytes).ok())
        .filter(|s| {
            s.version == STATE_VERSION
                && s.size == fresh.size
                && s.sha256 == fresh.sha256
                && s.xet_hash == fresh.xet_hash
        })
        .and_then(|mut state| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.len() == job.size))?;
            state
                .done
                .retain(|&index, done| terms.get(index).is_some_and(|t| matches(done, t)));
            Some((file, state))
        });
    let (file, state) = match resumed {
        Some(found) => found,
        None => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| StoreError::io("could not create", &path, e))?;
            file.set_len(job.size)
                .map_err(|e| StoreError::io("could not allocate", &path, e))?;
            fresh.save(&state_path)?;
            (file, fresh)
        }
    };
    Ok(Part {
        file,
        path,
        state_path,
        state: Mutex::new(state),
        armed: Mutex::new(true),
    })
}

struct Ctx<'a> {
    env: &'a TransferEnv,
    xet: &'a XetEnv,
    job: &'a FileJob,
    /// `job.path`, shared with every progress event rather than copied into each.
    shown_path: Arc<str>,
    upstream: String,
    part: Arc<Part>,
    hook: Option<PrefixHook>,
    /// How far the contiguous prefix reached at the last report: terms only ever land, so the
    /// next report resumes from here and reporting stays linear in the number of terms.
    prefix: std::sync::Mutex<PrefixCursor>,
    /// Hashes the part as its prefix grows.
    digest: PrefixDigest,
    /// The file's Xet hash (to ask for a fresh reconstruction when signed URLs expire).
    xet_hash: &'a str,
    /// The last fresh reconstruction asked for because xorb URLs were refused, and when:
    /// concurrent ranges whose URLs expired together share one.
    renewed: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<Term>>)>>,
}

impl Ctx<'_> {
    /// Records a term as landed and extends the prefix over it when it continues it.
    fn landed(&self, index: usize, done: DoneTerm) {
        self.part.landed(index, done);
        self.advance_prefix();
    }

    /// Extends the contiguous prefix over the terms that continue it: they go to the digest,
    /// and the hook hears how far the part is now written without a gap.
    fn advance_prefix(&self) {
        let prefix = {
            let mut part = self.part.lock();
            let mut cursor = self.prefix.lock().unwrap_or_else(|p| p.into_inner());
            // Fed under the cursor's lock, so stretches reach the digest in file order.
            cursor.advance_with(&mut part.done, |offset, lengths, hashes| {
                self.digest.feed(offset, lengths.to_vec(), hashes);
            })
        };
        if let Some(hook) = &self.hook {
            hook(&self.part.path, PartProgress::Prefix(prefix));
        }
    }

    /// Whether chunk `k` of term `index` is in the prefix already: the digest may have read it,
    /// so it is never written again (a retried range skips it).
    fn in_prefix(&self, index: usize, k: usize) -> bool {
        self.prefix
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .holds(index, k)
    }

    /// Term `term` has the chunks `lengths` (with `hashes`) written from its start, before it
    /// has landed: the ones that continue the prefix go to the digest at once, so hashing
    /// follows the transfer chunk by chunk instead of waiting for whole terms (a term can be a
    /// whole xorb).
    fn advance_within(&self, term: &Term, lengths: &[u32], hashes: &[MerkleHash]) {
        let grown = {
            let mut cursor = self.prefix.lock().unwrap_or_else(|p| p.into_inner());
            cursor.advance_within(
                term.index,
                term.offset,
                lengths,
                hashes,
                |offset, lengths, hashes| {
                    self.digest.feed(offset, lengths.to_vec(), hashes);
                },
            )
        };
        if let (Some(prefix), Some(hook)) = (grown, &self.hook) {
            hook(&self.part.path, PartProgress::Prefix(prefix));
        }
    }

    fn store_error(&self, source: StoreError) -> XetTransferError {
        XetTransferError::Store {
            path: self.job.path.clone(),
            source,
        }
    }

    fn cas_error(&self, source: CasError) -> XetTransferError {
        XetTransferError::Cas {
            path: self.job.path.clone(),
            upstream: self.upstream.clone(),
            source,
        }
    }
}

/// Fetch `job` (whose Xet hash is `xet_hash`) over Xet into the store.
pub async fn fetch_file(
    env: &TransferEnv,
    xet: &XetEnv,
    job: &FileJob,
    xet_hash: &str,
) -> Result<XetFetched, XetTransferError> {
    fetch_file_with_hook(env, xet, job, xet_hash, None).await
}

/// [`fetch_file`], telling `hook` how far the part is written without a gap as terms land (so a
/// mirror can stream that prefix to plain-HTTP clients meanwhile) and when it is verified.
pub async fn fetch_file_with_hook(
    env: &TransferEnv,
    xet: &XetEnv,
    job: &FileJob,
    xet_hash: &str,
    hook: Option<PrefixHook>,
) -> Result<XetFetched, XetTransferError> {
    let upstream = env.client.endpoint();
    let path = job.path.clone();
    let Some(sha256) = job.sha256 else {
        return Err(XetTransferError::Cas {
            path,
            upstream,
            source: CasError::NoXet {
                route: "a file without a sha256".to_owned(),
            },
        });
    };
    let terms = with_retries(env, &path, || {
        xet.session.reconstruction(xet_hash, job.size)
    })
    .await
    .map_err(|e| match e {
        Retried::Fatal(source) => XetTransferError::Cas {
            path: path.clone(),
            upstream: upstream.clone(),
            source,
        },
        Retried::Exhausted(attempts, source) => XetTransferError::Exhausted {
            path: path.clone(),
            attempts,
            source,
        },
    })?;
    let part =
        open_part(&env.store.tmp_dir(), job, &sha256, xet_hash, &terms).map_err(|source| {
            XetTransferError::Store {
                path: path.clone(),
                source,
            }
        })?;
    let part = Arc::new(part);
    let resumed = part.lock().landed_bytes();
    env.reporter.report(&PullEvent::FileStarted {
        path: path.clone(),
        size: job.size,
        resumed,
    });
    let hashing = part.file.try_clone().map_err(|e| XetTransferError::Store {
        path: path.clone(),
        source: StoreError::io("could not reopen", &part.path, e),
    })?;
    let ctx = Ctx {
        shown_path: Arc::from(job.path.as_str()),
        env,
        xet,
        job,
        upstream,
        part,
        hook,
        prefix: std::sync::Mutex::default(),
        digest: PrefixDigest::start(hashing),
        xet_hash,
        renewed: tokio::sync::Mutex::default(),
    };
    ctx.advance_prefix();
    let _checkpoints = AbortOnDrop(
        tokio::spawn(checkpoint_loop(
            Arc::downgrade(&ctx.part),
            env.settings.checkpoint_interval,
        ))
        .abort_handle(),
    );

    // The delta: terms the store holds are copied.
    let mut reused = 0;
    let mut missing: Vec<&Term> = Vec::new();
    for term in &terms {
        if ctx.part.lock().done.contains_key(&term.index) {
            continue;
        }
        match copy_held(&ctx, term).await? {
            Some(done) => {
                reused += term.len;
                env.reporter.report(&PullEvent::FileProgress {
                    path: ctx.shown_path.clone(),
                    bytes: term.len,
                });
                ctx.landed(term.index, done);
            }
            None => missing.push(term),
        }
    }

    // The rest, one request per fetch range.
    let mut groups: HashMap<FetchRange, Vec<Term>> = HashMap::new();
    for term in missing {
        groups
            .entry(term.fetch.clone())
            .or_default()
            .push(term.clone());
    }
    let mut groups: Vec<(FetchRange, Vec<Term>)> = groups.into_iter().collect();
    groups.sort_by_key(|(_, terms)| terms[0].offset);
    let mut fetched = 0;
    {
        // Collected first (the futures are lazy) so the stream holds no borrowing closure.
        let jobs: Vec<_> = groups
            .into_iter()
            .map(|(fetch, terms)| fetch_group(&ctx, fetch, terms))
            .collect();
        let mut stream =
            futures::stream::iter(jobs).buffer_unordered(env.settings.connections_per_file.max(1));
        while let Some(result) = stream.next().await {
            fetched += result?;
        }
    }

    // Verify everything (the digest has followed the prefix; only the tail is left), then
    // publish.
    let (actual_sha, chunking) = ctx
        .digest
        .finish()
        .await
        .map_err(|e| ctx.store_error(StoreError::io("could not hash", &ctx.part.path, e)))?;
    for (what, expected, actual) in [
        ("sha256", sha256.as_str(), actual_sha.as_str()),
        ("Xet hash", xet_hash, chunking.hex().as_str()),
    ] {
        if expected != actual {
            ctx.part.disarm();
            let _ = std::fs::remove_file(&ctx.part.path);
            return Err(XetTransferError::Mismatch {
                path: path.clone(),
                upstream: ctx.upstream.clone(),
                what,
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            });
        }
    }
    if let Some(hook) = &ctx.hook {
        hook(&ctx.part.path, PartProgress::Verified);
    }
    let synced = {
        let part = ctx.part.clone();
        tokio::task::spawn_blocking(move || part.file.sync_all())
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())))
    };
    synced.map_err(|e| ctx.store_error(StoreError::io("could not sync", &ctx.part.path, e)))?;
    env.blobs
        .publish(&ctx.part.path, &sha256)
        .await
        .map_err(|e| ctx.store_error(e))?;
    ctx.part.disarm();

    // Learn the terms for later deltas.
    let held: Vec<HeldTerm> = ctx
        .part
        .lock()
        .done
        .values()
        .map(|d| HeldTerm {
            xorb: d.xorb.clone(),
            chunk_start: d.chunk_start,
            chunk_end: d.chunk_end,
            blob: sha256,
            offset: d.offset,
            lengths: d.lengths.clone(),
        })
        .collect();
    if let Err(error) = xet.registry.record_xet_terms(held).await {
        tracing::warn!(%error, path = %path, "could not record the file's Xet terms; later updates will fetch them again");
    }
    env.reporter.report(&PullEvent::FileDelta {
        path: path.clone(),
        fetched,
        reused,
    });
    Ok(XetFetched {
        sha256,
        fetched,
        reused,
        resumed,
        chunking,
    })
}

/// The part written without a gap from its start: the terms landed in order from the first
/// (terms are numbered in file order and each starts where the one before ends), then the
/// chunks of the next term written in order from its start. A chunk in the prefix has been fed
/// to the digest and is never written again.
#[derive(Debug, Default, Clone, Copy)]
struct PrefixCursor {
    /// The first term not wholly in the prefix.
    next: usize,
    /// Chunks of term `next` already in the prefix.
    partial: usize,
    /// Where the prefix ends.
    end: u64,
}

impl PrefixCursor {
    /// Extend the prefix over the terms in `done` that continue it; returns its length.
    #[cfg(test)]
    fn advance(&mut self, done: &mut BTreeMap<usize, DoneTerm>) -> u64 {
        self.advance_with(done, |_, _, _| {})
    }

    /// [`PrefixCursor::advance`], handing each stretch that joins the prefix to `joined` as
    /// (offset, chunk lengths, chunk hashes if known). A term's hashes are handed over, not
    /// kept: once hashed they are the digest's, and a huge file's terms would otherwise hold
    /// 32 bytes per chunk until the end.
    fn advance_with(
        &mut self,
        done: &mut BTreeMap<usize, DoneTerm>,
        mut joined: impl FnMut(u64, &[u32], Vec<MerkleHash>),
    ) -> u64 {
        for (index, term) in done.range_mut(self.next..) {
            let partial = term.lengths.get(..self.partial).unwrap_or_default();
            let fed = bytes_of(partial);
            if *index != self.next || term.offset + fed != self.end {
                break;
            }
            let rest = &term.lengths[partial.len()..];
            let mut hashes = std::mem::take(&mut term.hashes);
            let hashes = if hashes.len() == term.lengths.len() {
                hashes.split_off(partial.len())
            } else {
                Vec::new()
            };
            if !rest.is_empty() {
                joined(self.end, rest, hashes);
            }
            self.end += bytes_of(rest);
            self.next += 1;
            self.partial = 0;
        }
        self.end
    }

    /// Whether chunk `k` of term `index` is already in the prefix (so it must not be written
    /// again).
    fn holds(&self, index: usize, k: usize) -> bool {
        index < self.next || (index == self.next && k < self.partial)
    }

    /// Term `index` (at `offset`) has its chunks `lengths` (with `hashes`) written, in order
    /// from its first: those that continue the prefix join it and go to `joined`. Returns the new
    /// end when the prefix grew.
    fn advance_within(
        &mut self,
        index: usize,
        offset: u64,
        lengths: &[u32],
        hashes: &[MerkleHash],
        joined: impl FnOnce(u64, &[u32], Vec<MerkleHash>),
    ) -> Option<u64> {
        if index != self.next || lengths.len() <= self.partial {
            return None;
        }
        let fed = bytes_of(&lengths[..self.partial]);
        if offset + fed != self.end {
            return None;
        }
        let rest = &lengths[self.partial..];
        joined(
            self.end,
            rest,
            hashes.get(self.partial..).unwrap_or_default().to_vec(),
        );
        self.end += bytes_of(rest);
        self.partial = lengths.len();
        Some(self.end)
    }
}

/// Copies `term` from a held blob, if the registry knows one that holds it.
async fn copy_held(ctx: &Ctx<'_>, term: &Term) -> Result<Option<DoneTerm>, XetTransferError> {
    let held = match ctx
        .xet
        .registry
        .xet_terms_holding(&term.xorb, term.chunk_start, term.chunk_end)
        .await
    {
        Ok(held) => held,
        Err(error) => {
            tracing::warn!(%error, "Xet term lookup failed; fetching the term");
            return Ok(None);
        }
    };
    for candidate in held {
        let total = bytes_of(&candidate.lengths);
        if total != term.len {
            continue;
        }
        let Some(blob_path) = ctx.env.blobs.local_path(&candidate.blob) else {
            continue;
        };
        let Ok(blob) = File::open(&blob_path) else {
            continue;
        };
        if blob
            .metadata()
            .map_or(true, |m| m.len() < candidate.offset + total)
        {
            continue;
        }
        let (source, target) = match ctx.part.file.try_clone() {
            Ok(target) => (blob, target),
            Err(e) => {
                return Err(ctx.store_error(StoreError::io("could not reopen", &ctx.part.path, e)));
            }
        };
        let (from, to) = (candidate.offset, term.offset);
        tokio::task::spawn_blocking(move || {
            crate::store::copy_range(&source, from, &target, to, total)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|copied| copied)
        .map_err(|e| {
            ctx.store_error(StoreError::io(
                "could not copy a held blob's bytes into",
                &ctx.part.path,
                e,
            ))
        })?;
        return Ok(Some(DoneTerm {
            xorb: term.xorb.clone(),
            chunk_start: term.chunk_start,
            chunk_end: term.chunk_end,
            offset: term.offset,
            lengths: candidate.lengths,
            hashes: Vec::new(),
        }));
    }
    Ok(None)
}

enum Retried {
    Fatal(CasError),
    Exhausted(u32, CasError),
}

async fn with_retries<T, F, Fut>(env: &TransferEnv, path: &str, mut op: F) -> Result<T, Retried>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CasError>>,
{
    let mut failures = 0;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() => {
                failures += 1;
                if failures > env.settings.retry.max_retries {
                    return Err(Retried::Exhausted(failures, error));
                }
                let wait = env.settings.retry.delay(failures, error.retry_after());
                env.reporter.report(&PullEvent::Retrying {
                    path: path.to_owned(),
                    attempt: failures,
                    error: super::transfer::error_chain(&error),
                    wait_ms: wait.as_millis() as u64,
                });
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(Retried::Fatal(error)),
        }
    }
}

/// Why one attempt at a fetch range ended.
enum RangeFailure {
    /// No byte came for the stall timeout (asked again, not counted as a failure).
    Stalled,
    /// The CAS failed; retried when transient.
    Cas(CasError),
    /// The range is not a valid run of chunks (not retried: the upstream sends garbage).
    Xorb(XorbError),
    /// A term's chunks add up to another length than the reconstruction said.
    TermLength {
        index: usize,
        expected: u64,
        actual: u64,
    },
    /// Writing the part failed.
    Store(StoreError),
}

impl From<XorbError> for RangeFailure {
    fn from(error: XorbError) -> Self {
        RangeFailure::Xorb(error)
    }
}

/// Fetch one xorb range (retrying), decoding it as it arrives and writing each term it serves
/// into the part. Returns the xorb bytes received by the attempt that finished.
async fn fetch_group(
    ctx: &Ctx<'_>,
    fetch: FetchRange,
    terms: Vec<Term>,
) -> Result<u64, XetTransferError> {
    let mut fetch = fetch;
    let env = ctx.env;
    let path = &ctx.job.path;
    let mut failures = 0;
    let mut renewals = 0;
    // Terms landed by an earlier attempt are never written again: the prefix digest may
    // already have read them.
    let mut landed = vec![false; terms.len()];
    loop {
        let attempt = {
            let _permit = env.permits.acquire().await;
            fetch_range(ctx, &fetch, &terms, &mut landed).await
        };
        match attempt {
            Ok(received) => return Ok(received),
            Err(RangeFailure::Stalled) => {
                tracing::warn!(path = %path, url = %shown_url(&fetch), "xorb range stalled; asking again");
            }
            // Signed xorb URLs expire (a long pull outlives them): a refusal gets the range's
            // URL from a fresh reconstruction, twice at most.
            Err(RangeFailure::Cas(CasError::Http(HubError::Status {
                status: 401 | 403, ..
            }))) if renewals < MAX_URL_RENEWALS && !terms.is_empty() => {
                renewals += 1;
                tracing::info!(path = %path, url = %shown_url(&fetch), "xorb URL refused (expired?); asking for fresh URLs");
                fetch = renewed_range(ctx, &terms[0], &fetch).await?;
            }
            Err(RangeFailure::Cas(error)) if error.is_transient() => {
                failures += 1;
                if failures > env.settings.retry.max_retries {
                    return Err(XetTransferError::Exhausted {
                        path: path.clone(),
                        attempts: failures,
                        source: error,
                    });
                }
                let wait = env.settings.retry.delay(failures, error.retry_after());
                env.reporter.report(&PullEvent::Retrying {
                    path: path.clone(),
                    attempt: failures,
                    error: super::transfer::error_chain(&error),
                    wait_ms: wait.as_millis() as u64,
                });
                tokio::time::sleep(wait).await;
            }
            Err(RangeFailure::Cas(error)) => return Err(ctx.cas_error(error)),
            Err(RangeFailure::Xorb(source)) => {
                return Err(XetTransferError::Xorb {
                    path: path.clone(),
                    upstream: ctx.upstream.clone(),
                    url: shown_url(&fetch),
                    source,
                });
            }
            Err(RangeFailure::TermLength {
                index,
                expected,
                actual,
            }) => {
                return Err(XetTransferError::TermLength {
                    path: path.clone(),
                    upstream: ctx.upstream.clone(),
                    index,
                    expected,
                    actual,
                });
            }
            Err(RangeFailure::Store(error)) => return Err(ctx.store_error(error)),
        }
    }
}

/// Writes the chunks of one attempt at a fetch range into the terms they serve, landing each
/// term when its last chunk is written.
struct TermWriter<'c, 'a> {
    ctx: &'c Ctx<'a>,
    /// The range's first chunk index in its xorb.
    first_chunk: u32,
    terms: &'c [Term],
    landed: &'c mut [bool],
    /// Bytes written into each term by this attempt.
    written: Vec<u64>,
    /// Lengths of the range's chunks so far.
    lengths: Vec<u32>,
    /// Their Xet hashes, from the bytes as received and written (so the digest thread, which
    /// must run sha256 over the file in order, is spared them).
    hashes: Vec<MerkleHash>,
}

impl TermWriter<'_, '_> {
    fn chunk(&mut self, index: usize, bytes: &[u8]) -> Result<(), RangeFailure> {
        let chunk = self.first_chunk + index as u32;
        self.lengths.push(bytes.len() as u32);
        self.hashes.push(crate::xet::chunk_hash(bytes));
        for (t, term) in self.terms.iter().enumerate() {
            if self.landed[t] || chunk < term.chunk_start || chunk >= term.chunk_end {
                continue;
            }
            let at = self.written[t];
            if at + bytes.len() as u64 > term.len {
                return Err(RangeFailure::TermLength {
                    index: term.index,
                    expected: term.len,
                    actual: at + bytes.len() as u64,
                });
            }
            let k = (chunk - term.chunk_start) as usize;
            let from = (term.chunk_start - self.first_chunk) as usize;
            // A chunk an earlier attempt put in the prefix stays as the digest read it.
            if !self.ctx.in_prefix(term.index, k) {
                self.ctx
                    .part
                    .write_at(bytes, term.offset + at)
                    .map_err(RangeFailure::Store)?;
                self.ctx.env.reporter.report(&PullEvent::FileProgress {
                    path: self.ctx.shown_path.clone(),
                    bytes: bytes.len() as u64,
                });
            }
            self.written[t] += bytes.len() as u64;
            if chunk + 1 < term.chunk_end {
                self.ctx
                    .advance_within(term, &self.lengths[from..], &self.hashes[from..]);
            } else {
                if self.written[t] != term.len {
                    return Err(RangeFailure::TermLength {
                        index: term.index,
                        expected: term.len,
                        actual: self.written[t],
                    });
                }
                let done = DoneTerm {
                    xorb: term.xorb.clone(),
                    chunk_start: term.chunk_start,
                    chunk_end: term.chunk_end,
                    offset: term.offset,
                    lengths: self.lengths[from..].to_vec(),
                    hashes: self.hashes[from..].to_vec(),
                };
                self.ctx.landed(term.index, done);
                self.landed[t] = true;
            }
        }
        Ok(())
    }
}

/// Most times one fetch range asks for fresh URLs after its URL was refused.
const MAX_URL_RENEWALS: u32 = 2;
/// A fresh reconstruction younger than this is shared by ranges whose URLs were refused.
const RENEWAL_REUSE: Duration = Duration::from_secs(60);

/// The fetch range of a fresh reconstruction that serves the same chunks of `term`'s xorb as
/// `old` (whose signed URL was refused).
async fn renewed_range(
    ctx: &Ctx<'_>,
    term: &Term,
    old: &FetchRange,
) -> Result<FetchRange, XetTransferError> {
    let terms = {
        let mut renewed = ctx.renewed.lock().await;
        match &*renewed {
            Some((at, terms)) if at.elapsed() < RENEWAL_REUSE && !terms.is_empty() => terms.clone(),
            _ => {
                let fresh = with_retries(ctx.env, &ctx.job.path, || {
                    ctx.xet.session.reconstruction(ctx.xet_hash, ctx.job.size)
                })
                .await
                .map_err(|e| match e {
                    Retried::Fatal(source) => ctx.cas_error(source),
                    Retried::Exhausted(attempts, source) => XetTransferError::Exhausted {
                        path: ctx.job.path.clone(),
                        attempts,
                        source,
                    },
                })?;
                let fresh = Arc::new(fresh);
                *renewed = Some((std::time::Instant::now(), fresh.clone()));
                fresh
            }
        }
    };
    terms
        .iter()
        .map(|t| &t.fetch)
        .zip(terms.iter().map(|t| &t.xorb))
        .find(|(fetch, xorb)| {
            **xorb == term.xorb
                && fetch.chunk_start == old.chunk_start
                && fetch.chunk_end == old.chunk_end
                && fetch.len() == old.len()
        })
        .map(|(fetch, _)| fetch.clone())
        .ok_or_else(|| XetTransferError::Cas {
            path: ctx.job.path.clone(),
            upstream: ctx.upstream.clone(),
            source: CasError::Reconstruction {
                cas: ctx.xet.session.cas_url(),
                source: crate::xet::reconstruction::ReconstructionError::Changed,
            },
        })
}

/// One GET of a fetch range, read whole (bounded to its length) under the stall watchdog and
/// One attempt at a fetch range: its bytes are decoded as they arrive ([`ChunkStream`]) and
/// written into the terms they serve, so memory stays at about one chunk. Returns the bytes
/// received; more or fewer than the range's length, or chunks that do not add up, fail it.
async fn fetch_range(
    ctx: &Ctx<'_>,
    fetch: &FetchRange,
    terms: &[Term],
    landed: &mut [bool],
) -> Result<u64, RangeFailure> {
    let stall = ctx.env.settings.stall_timeout;
    let mut response = match tokio::time::timeout(stall, ctx.xet.session.start_range(fetch)).await {
        Err(_) => return Err(RangeFailure::Stalled),
        Ok(result) => result.map_err(RangeFailure::Cas)?,
    };
    let expected = fetch.len();
    let count = (fetch.chunk_end - fetch.chunk_start) as usize;
    let mut stream = ChunkStream::new(count, expected as usize);
    let mut writer = TermWriter {
        ctx,
        first_chunk: fetch.chunk_start,
        terms,
        landed,
        written: vec![0; terms.len()],
        lengths: Vec::with_capacity(count),
        hashes: Vec::with_capacity(count),
    };
    let mut received = 0u64;
    loop {
        let piece = match tokio::time::timeout(stall, response.chunk()).await {
            Err(_) => return Err(RangeFailure::Stalled),
            Ok(Err(source)) => {
                return Err(RangeFailure::Cas(CasError::Transient(
                    crate::hub::HubError::Network {
                        url: shown_url(fetch),
                        source,
                    },
                )));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(piece))) => piece,
        };
        if let Some(limiter) = &ctx.env.rate_limit {
            limiter.take(piece.len()).await;
        }
        received += piece.len() as u64;
        if received > expected {
            break;
        }
        stream.feed(&piece, |index, bytes| writer.chunk(index, bytes))?;
    }
    if received != expected {
        return Err(RangeFailure::Cas(CasError::RangeLength {
            url: shown_url(fetch),
            expected,
            actual: received,
        }));
    }
    stream.finish()?;
    // The reconstruction was checked to put every term inside its fetch range, so each has
    // landed by now; a term left short is refused rather than left as a hole in the file.
    if let Some(t) = (0..terms.len()).find(|&t| !writer.landed[t]) {
        return Err(RangeFailure::TermLength {
            index: terms[t].index,
            expected: terms[t].len,
            actual: writer.written[t],
        });
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(offset: u64, len: u32) -> DoneTerm {
        DoneTerm {
            xorb: String::new(),
            chunk_start: 0,
            chunk_end: 1,
            offset,
            lengths: vec![len],
            hashes: Vec::new(),
        }
    }

    #[test]
    fn prefix_stops_at_the_first_gap() {
        let mut done = BTreeMap::new();
        let mut cursor = PrefixCursor::default();
        assert_eq!(cursor.advance(&mut done), 0);
        done.insert(1, term(100, 50));
        assert_eq!(cursor.advance(&mut done), 0, "term 0 has not landed");
        done.insert(0, term(0, 100));
        assert_eq!(cursor.advance(&mut done), 150);
        done.insert(3, term(200, 10));
        assert_eq!(cursor.advance(&mut done), 150, "term 2 is missing");
        done.insert(2, term(150, 50));
        assert_eq!(cursor.advance(&mut done), 210);
        assert_eq!(cursor.advance(&mut done), 210, "nothing new");
        // A fresh cursor over the same terms agrees.
        assert_eq!(PrefixCursor::default().advance(&mut done), 210);
    }

    #[test]
    fn prefix_follows_the_chunks_of_the_term_it_reaches() {
        let h = |n: u8| MerkleHash::from([u64::from(n); 4]);
        let mut fed = Vec::new();
        let mut cursor = PrefixCursor::default();
        let mut feed = |offset: u64, lengths: &[u32], hashes: Vec<MerkleHash>| {
            fed.push((offset, lengths.to_vec(), hashes))
        };
        // Term 1's chunks wait for term 0.
        assert_eq!(
            cursor.advance_within(1, 100, &[10], &[h(9)], &mut feed),
            None
        );
        assert_eq!(
            cursor.advance_within(0, 0, &[40], &[h(1)], &mut feed),
            Some(40)
        );
        let two = [h(1), h(2)];
        assert_eq!(
            cursor.advance_within(0, 0, &[40, 30], &two, &mut feed),
            Some(70)
        );
        assert!(cursor.holds(0, 1) && !cursor.holds(0, 2) && !cursor.holds(1, 0));
        // A retry writing the same chunks again adds nothing.
        assert_eq!(cursor.advance_within(0, 0, &[40], &[h(1)], &mut feed), None);
        // Term 0 lands: only its last chunk is left to feed, then term 1 (landed, resumed from
        // an earlier run, so without hashes) follows.
        let mut done = BTreeMap::new();
        done.insert(
            0,
            DoneTerm {
                lengths: vec![40, 30, 30],
                hashes: vec![h(1), h(2), h(3)],
                ..term(0, 0)
            },
        );
        done.insert(1, term(100, 10));
        assert_eq!(cursor.advance_with(&mut done, &mut feed), 110);
        assert!(cursor.holds(1, 0));
        assert!(
            done[&0].hashes.is_empty(),
            "fed hashes are handed over, not kept"
        );
        assert_eq!(
            fed,
            vec![
                (0, vec![40], vec![h(1)]),
                (40, vec![30], vec![h(2)]),
                (70, vec![30], vec![h(3)]),
                (100, vec![10], vec![])
            ]
        );
    }
}
