//! Pull-through: fetch what the store lacks from the upstream, once, while clients stream it.
//!
//! - **Revisions.** A commit the registry lacks is looked up upstream (repo info + tree) and
//!   recorded. A branch is re-resolved upstream at most once a minute per repo and branch; the
//!   lookups of one key are serialised, so a burst of clients on a cold repo makes one request.
//!   When the upstream cannot be reached the registry's answer stands and the failure is logged.
//!   When it refuses for good (RepoNotFound, RevisionNotFound, a 4xx) and the store holds
//!   nothing for the request, its status, `X-Error-Code` and message are passed on verbatim
//!   (remembered for ten seconds). A repo it reports disabled is refused by the mirror too,
//!   held or not, until a lookup finds it enabled again.
//! - **Renamed repos.** When the upstream redirects the repo (renamed, or another case), the
//!   revision is recorded under the name it redirected to, the old name is remembered as an
//!   alias, and the client gets the same redirect, to the mirror's own URL.
//! - **Files.** A miss starts — or joins — the one [`Flight`] of that content (keyed like the
//!   transfer engine's parts: sha256, or the git oid for regular files). The transfer runs in its
//!   own task: over the upstream's Xet storage when it listed a Xet hash for the content (and
//!   `[pull] xet` allows; terms the store already holds are copied, so a new revision of a held
//!   file costs only its changed chunks, and a chain of mirrors passes that on), else — or when
//!   that storage is unusable — over plain HTTP. Both report the part's contiguous prefix (the
//!   Xet one as terms land in order, the plain one as it is read back); every client streams
//!   from the part file up to that prefix and waits for it to grow. A client that disconnects does not cancel the transfer. The last byte of every
//!   answer is held back until the digest matched, so if verification fails every client stream
//!   is aborted with an error (the connection is reset, no client caches a wrong file) and
//!   nothing is published. Once it matched, clients get the last byte at once, while the part
//!   is synced and published (with an object store that upload can take minutes, longer than
//!   clients wait between bytes).
//! - **Access.** Gated and private content is served only to a request whose `Authorization`
//!   the upstream accepted for that repo (a `HEAD /resolve` with the client's header, without
//!   the mirror's own token), remembered for a few minutes.
//!
//! The pieces: [`revisions`] looks revisions up upstream and remembers the answers, [`access`]
//! checks a client's token upstream, [`flight`] runs one transfer that clients stream from and
//! records what it landed.

mod access;
mod flight;
mod revisions;

pub use flight::Flight;
use revisions::{BranchSlot, RepoKey};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::Larder;
use crate::serve::cache::{RepoItemKey, TtlCache};
use crate::serve::metrics::Metrics;

/// How long a branch's upstream answer is trusted.
const BRANCH_TTL: Duration = Duration::from_secs(60);
/// How long an upstream refusal (RepoNotFound, RevisionNotFound, ...) is reused.
const REFUSAL_TTL: Duration = Duration::from_secs(10);
/// How long an upstream access decision for a token is trusted.
const ACCESS_TTL: Duration = Duration::from_secs(300);

/// Most (repo, token) access answers remembered at once.
const ACCESS_CACHE_MAX: usize = 4096;
/// Upper bound on one upstream metadata exchange, so a dead upstream does not stall clients.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(8);
/// Connections shared by all pull-through transfers.
const CONNECTIONS: usize = 16;
/// How long an upstream CAS session (its token, refreshed as it expires, and its connections)
/// is kept for more files of the same commit.
const CAS_SESSION_TTL: Duration = Duration::from_secs(600);
/// Most CAS sessions kept at once.
const CAS_SESSION_MAX: usize = 256;

/// The pull-through machinery of a mirror.
pub struct PullThrough {
    larder: Larder,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    branches: Mutex<HashMap<RepoItemKey, BranchSlot>>,
    access: TtlCache<RepoItemKey, bool>,
    permits: Arc<Semaphore>,
    probe: reqwest::Client,
    /// When an upstream lookup last failed (cleared by the next success).
    down_since: Mutex<Option<Instant>>,
    /// Repos the upstream reported disabled, and when it last said so.
    disabled: Mutex<HashMap<RepoKey, Instant>>,
    /// The mirror's counters.
    metrics: Arc<Metrics>,
    /// Upstream CAS sessions by commit, for files fetched over Xet.
    cas: TtlCache<RepoItemKey, Arc<crate::xet::cas::CasSession>>,
}

impl PullThrough {
    /// Pull-through over `larder`'s upstream client, counting into `metrics`.
    pub fn new(larder: Larder, metrics: Arc<Metrics>) -> Self {
        let probe = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(UPSTREAM_TIMEOUT)
            .build()
            .unwrap_or_default();
        PullThrough {
            larder,
            flights: Arc::new(Mutex::new(HashMap::new())),
            branches: Mutex::new(HashMap::new()),
            access: TtlCache::new(ACCESS_TTL, ACCESS_CACHE_MAX),
            permits: Arc::new(Semaphore::new(CONNECTIONS)),
            probe,
            down_since: Mutex::new(None),
            disabled: Mutex::new(HashMap::new()),
            metrics,
            cas: TtlCache::new(CAS_SESSION_TTL, CAS_SESSION_MAX),
        }
    }
}
