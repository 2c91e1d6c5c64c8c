//! Revisions looked up upstream: branch answers remembered for a minute, refusals for ten
//! seconds, renamed repos followed, disabled repos marked, and the upstream's health tracked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::{BRANCH_TTL, PullThrough, REFUSAL_TTL, UPSTREAM_TIMEOUT};
use crate::fetch::transfer::{self};
use crate::hub::{HubError, RepoId, RepoType, Revision, UpstreamReply};
use crate::record::{self};
use crate::registry::{CommitId, FileRecord, RepoKind, Sha256};
use crate::serve::Mirror;
use crate::serve::cache::RepoItemKey;
use crate::serve::errors::{ErrorKind, ServeError};

/// (kind, repo, sha256 of the `Authorization` value).
pub(super) type BranchSlot = Arc<tokio::sync::Mutex<Option<(Instant, Lookup)>>>;
/// (kind, repo).
pub(super) type RepoKey = (RepoKind, String);

/// What an upstream lookup of a revision said, as remembered for a while.
#[derive(Debug, Clone)]
pub(super) enum Lookup {
    /// The commit it names (`None`: the upstream could not be asked; use the store's answer).
    Commit(Option<CommitId>),
    /// The upstream refused for good (unknown repo or revision, gated, invalid request).
    Refused(UpstreamReply),
    /// The upstream redirected the repo to this name (renamed); the revision was recorded
    /// under it.
    Moved(String),
    /// The upstream could not be asked (down, hanging, garbage): its answer-to-be (502, 503
    /// or 504) and why, for a request the store cannot answer either.
    Unavailable { status: u16, why: String },
}

impl Lookup {
    /// How long the answer is reused: refusals briefly, so a repo or branch created upstream
    /// a moment ago shows up soon.
    fn ttl(&self) -> Duration {
        match self {
            Lookup::Commit(_) | Lookup::Unavailable { .. } | Lookup::Moved(_) => BRANCH_TTL,
            Lookup::Refused(_) => REFUSAL_TTL,
        }
    }
}

/// What an upstream lookup recorded.
struct FetchedRevision {
    /// The repo's name now (differs from the one asked when the upstream redirected).
    repo: String,
    /// The commit.
    sha: CommitId,
    /// Whether the upstream disabled the repo.
    disabled: bool,
}

impl PullThrough {
    /// Whether the upstream disabled the repo (as last seen, within the branch TTL; the
    /// mark is renewed or cleared by every lookup of the repo).
    pub fn is_disabled(&self, kind: RepoKind, repo: &str) -> bool {
        self.disabled
            .lock()
            .ok()
            .and_then(|map| map.get(&(kind, repo.to_owned())).copied())
            .is_some_and(|at| at.elapsed() < BRANCH_TTL)
    }

    fn mark_disabled(&self, kind: RepoKind, repo: &str, disabled: bool) {
        if let Ok(mut map) = self.disabled.lock() {
            let key = (kind, repo.to_owned());
            if disabled {
                if map.insert(key, Instant::now()).is_none() {
                    tracing::warn!(repo, "the upstream has disabled this repo; refusing it too");
                }
            } else {
                map.remove(&key);
            }
        }
    }

    /// The commit `revision` names upstream, recording the commit and the ref move. `None` when
    /// the local answer should stand: the branch was checked within the last minute, or the
    /// upstream failed (logged).
    pub async fn resolve(
        &self,
        mirror: &Mirror,
        kind: RepoKind,
        repo: &str,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<Option<CommitId>, ServeError> {
        let (Ok(repo_id), Ok(rev)) = (RepoId::parse(repo), Revision::parse(revision)) else {
            return Ok(None);
        };
        let held = |sha: &CommitId| {
            let (name, sha) = (repo.to_owned(), sha.to_owned());
            let registry = self.larder.registry.clone();
            async move { matches!(registry.commit_detail(kind, &name, &sha).await, Ok(Some(_))) }
        };
        if let Ok(commit) = CommitId::parse(revision)
            && held(&commit).await
        {
            return Ok(Some(commit));
        }
        let key = RepoItemKey::new(kind, repo, revision);
        let slot = {
            let Ok(mut map) = self.branches.lock() else {
                return Ok(None);
            };
            map.entry(key).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let lookup = match &*slot {
            Some((at, lookup)) if at.elapsed() < lookup.ttl() => lookup.clone(),
            _ => {
                let lookup = self.look_up(mirror, kind, &repo_id, &rev).await;
                *slot = Some((Instant::now(), lookup.clone()));
                lookup
            }
        };
        match lookup {
            Lookup::Commit(answer) => Ok(answer),
            Lookup::Moved(to) => Err(ServeError::Moved(to)),
            Lookup::Unavailable { status, why } => {
                let held = self.larder.registry.resolve(kind, repo, revision).await;
                if matches!(held, Ok(Some(_))) {
                    return Ok(None);
                }
                Err(ServeError::UpstreamUnavailable {
                    status,
                    endpoint: self.larder.client.endpoint(),
                    why,
                })
            }
            Lookup::Refused(reply) => {
                // What the store holds stays served (the upstream may only have lost it, or
                // refuse the mirror's own token); only a true miss gets the upstream's answer.
                let held = self.larder.registry.resolve(kind, repo, revision).await;
                if matches!(held, Ok(Some(_))) {
                    return Ok(None);
                }
                let authenticated = crate::serve::authorization(headers).is_some();
                Err(match reply.code.as_deref() {
                    // The Hub answers 401 anonymously and 404 with a token; follow the client's
                    // request, not the mirror's.
                    Some("RepoNotFound") => ServeError::RepoNotFound { authenticated },
                    _ => ServeError::UpstreamRefused {
                        status: reply.status,
                        code: reply.code,
                        message: reply.message,
                    },
                })
            }
        }
    }

    /// Ask the upstream which commit `rev` names (recording it); classify the failure.
    async fn look_up(
        &self,
        mirror: &Mirror,
        kind: RepoKind,
        repo_id: &RepoId,
        rev: &Revision,
    ) -> Lookup {
        let repo = repo_id.as_str();
        match self.fetch_revision(kind, repo_id, rev).await {
            Ok(fetched) => {
                mirror.forget(kind, &fetched.repo);
                self.mark_down(false);
                self.mark_disabled(kind, &fetched.repo, fetched.disabled);
                if fetched.repo != repo {
                    return Lookup::Moved(fetched.repo);
                }
                Lookup::Commit(Some(fetched.sha))
            }
            Err(error) => {
                if let HubError::Disabled { .. } = error {
                    self.mark_disabled(kind, repo, true);
                    self.mark_down(false);
                    return Lookup::Commit(None);
                }
                if let Some(reply) = error.refusal() {
                    self.mark_down(false);
                    tracing::info!(
                        repo, revision = %rev, status = reply.status, code = reply.code.as_deref(),
                        "upstream refused the lookup"
                    );
                    return Lookup::Refused(reply);
                }
                self.metrics.error(ErrorKind::UpstreamLookupFailed);
                if matches!(error, HubError::Network { .. } | HubError::Endpoint(_))
                    || error.is_transient()
                {
                    self.mark_down(true);
                }
                let why = transfer::error_chain(&error);
                tracing::warn!(
                    repo, revision = %rev, error = %why,
                    "upstream lookup failed; answering from the store"
                );
                let status = match &error {
                    HubError::Timeout { .. } => 504,
                    HubError::Network { .. } => 503,
                    HubError::Status {
                        status: 429 | 503, ..
                    } => 503,
                    _ => 502,
                };
                Lookup::Unavailable { status, why }
            }
        }
    }

    fn mark_down(&self, down: bool) {
        if let Ok(mut since) = self.down_since.lock() {
            match (down, *since) {
                (true, None) => *since = Some(Instant::now()),
                (false, _) => *since = None,
                _ => {}
            }
        }
    }

    /// Whether the last upstream lookup failed recently.
    pub(super) fn upstream_down(&self) -> bool {
        self.down_since
            .lock()
            .ok()
            .and_then(|since| *since)
            .is_some_and(|at| at.elapsed() < BRANCH_TTL)
    }

    /// Repo info (+ tree, for a commit not yet recorded) from upstream, recorded under the
    /// name the upstream gives the repo now (with `repo` as an old name, if it redirected).
    async fn fetch_revision(
        &self,
        kind: RepoKind,
        asked: &RepoId,
        revision: &Revision,
    ) -> Result<FetchedRevision, HubError> {
        let client = &self.larder.client;
        let rt = RepoType::from(kind);
        let timed = |what: &'static str, after: Duration| HubError::Timeout {
            url: format!("{} ({what})", client.endpoint()),
            what: "answer",
            after,
        };
        let fetched = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            client.repo_info_fetched(rt, asked, revision),
        )
        .await
        .map_err(|_| timed("repo info", UPSTREAM_TIMEOUT))??;
        let repo = &fetched.canonical;
        let info = &fetched.info;
        let sha = fetched.commit;
        let known = self
            .larder
            .registry
            .commit_detail(kind, repo.as_str(), &sha)
            .await
            .ok()
            .flatten();
        let refs = if revision.is_commit() {
            Vec::new()
        } else {
            vec![revision.to_string()]
        };
        let files = match known {
            Some(_) => Vec::new(), // the tree of a commit never changes; only the ref moves
            None => {
                let tree =
                    tokio::time::timeout(UPSTREAM_TIMEOUT * 4, client.list_files(rt, repo, &sha))
                        .await
                        .map_err(|_| timed("tree", UPSTREAM_TIMEOUT * 4))??;
                let mut files = Vec::with_capacity(tree.len());
                // The Xet hashes it lists, so the mirror can advertise Xet for files it has not
                // fetched yet (a hash is a function of the content, so the pair stays true).
                let listed: Vec<(Sha256, String)> = tree
                    .iter()
                    .filter_map(|f| Some((f.lfs_sha256?, f.xet_hash.clone()?)))
                    .collect();
                if let Err(error) = self.larder.registry.record_listed_xet(listed).await {
                    tracing::warn!(error = %transfer::error_chain(&error), "recording listed Xet hashes failed");
                }
                for f in tree {
                    let sha256 = match &f.lfs_sha256 {
                        Some(sha) => Some(*sha),
                        None => self
                            .larder
                            .registry
                            .sha256_for_git_oid(&f.git_oid)
                            .await
                            .ok()
                            .flatten(),
                    };
                    files.push(FileRecord {
                        lfs: f.is_lfs(),
                        path: f.path,
                        size: f.size,
                        git_oid: f.git_oid,
                        sha256,
                    });
                }
                files
            }
        };
        let record = record::upstream_snapshot(
            RepoType::from(kind),
            repo,
            client.endpoint(),
            info,
            &sha,
            refs,
            files,
        );
        match self.larder.registry.record_snapshot(record).await {
            Ok(_) => {
                crate::manifest::publish_logged(&self.larder, kind, repo.as_str(), &sha).await;
                if let Err(error) =
                    record::record_upstream_facts(&self.larder, rt, asked, &fetched, &sha).await
                {
                    tracing::error!(error = %transfer::error_chain(&error), "recording an upstream rename or info failed");
                }
            }
            Err(error) => {
                tracing::error!(error = %transfer::error_chain(&error), "recording an upstream revision failed");
            }
        }
        Ok(FetchedRevision {
            repo: repo.to_string(),
            sha,
            disabled: info.disabled,
        })
    }
}
