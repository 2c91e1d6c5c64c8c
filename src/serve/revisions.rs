//! What a request names, checked and resolved: the repo type and id, the commit a revision
//! names (registry, shared store manifests, then the upstream with pull-through), commit details
//! cached briefly, and disabled repos refused as the Hub refuses them.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::cache::RepoItemKey;
use super::errors::{ServeError, internal};
use super::paths::{RevisionTail, UrlRepoType};
use super::{Mirror, Target, authorization};
use crate::registry::{CommitDetail, CommitId, RepoKind};

impl Mirror {
    /// Check the repo type and id.
    pub(crate) fn target(
        &self,
        repo_type: UrlRepoType,
        repo: &str,
        headers: &HeaderMap,
    ) -> Result<Target, ServeError> {
        let not_found = || ServeError::RepoNotFound {
            authenticated: authorization(headers).is_some(),
        };
        let kind = repo_type.kind().ok_or_else(not_found)?;
        crate::hub::RepoId::parse(repo).map_err(|_| not_found())?;
        Ok(Target {
            kind,
            repo: repo.to_owned(),
        })
    }

    /// The commit a revision names, from the registry (then a shared store's manifests, and,
    /// with pull-through, the upstream).
    pub(crate) async fn commit_for(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<Option<CommitId>, ServeError> {
        // Another node sharing the store may have recorded it: ask the store before the upstream.
        if self.larder.blobs.is_shared()
            && matches!(
                self.larder
                    .registry
                    .resolve(target.kind, &target.repo, revision)
                    .await,
                Ok(None)
            )
            && let Some(sha) = self.commit_in_store(target, revision).await
        {
            return Ok(Some(sha));
        }
        if let Some(pull) = &self.pull
            && let Some(sha) = pull
                .resolve(self, target.kind, &target.repo, revision, headers)
                .await?
        {
            return Ok(Some(sha));
        }
        self.larder
            .registry
            .resolve(target.kind, &target.repo, revision)
            .await
            .map_err(|e| internal("resolving a revision failed", &e))
    }

    /// The commit a revision names ([`Mirror::commit_for`]), or the error saying why there is
    /// none ([`Mirror::unknown_revision`]).
    pub(crate) async fn commit_named(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> Result<CommitId, ServeError> {
        match self.commit_for(target, revision, headers).await? {
            Some(sha) => Ok(sha),
            None => Err(self.unknown_revision(target, revision, headers).await),
        }
    }

    /// The error for a revision that resolved to nothing: the repo or the revision is unknown.
    pub(crate) async fn unknown_revision(
        &self,
        target: &Target,
        revision: &str,
        headers: &HeaderMap,
    ) -> ServeError {
        if self.is_disabled(target) {
            return ServeError::Disabled;
        }
        match self
            .larder
            .registry
            .ref_history(target.kind, &target.repo)
            .await
        {
            Ok(_) => ServeError::RevisionNotFound {
                revision: revision.to_owned(),
            },
            Err(crate::registry::RegistryError::UnknownRepo { .. }) => ServeError::RepoNotFound {
                authenticated: authorization(headers).is_some(),
            },
            Err(e) => internal("reading the ref history failed", &e),
        }
    }

    /// Resolve the revision at the head of `tail`, trying each way to split it. Returns
    /// `(revision, rest, commit)`.
    pub(crate) async fn resolve_tail(
        &self,
        target: &Target,
        tail: &RevisionTail,
        need_path: bool,
        headers: &HeaderMap,
    ) -> Result<(String, String, CommitId), ServeError> {
        let splits = tail.splits(need_path);
        // Local first for every split (cheap), then the upstream for the likely one only.
        for (revision, rest) in &splits {
            if let Some(sha) = self
                .larder
                .registry
                .resolve(target.kind, &target.repo, revision)
                .await
                .map_err(|e| internal("resolving a revision failed", &e))?
            {
                // A branch re-resolves upstream now and then; the local answer is the fallback.
                if self.pull.is_some()
                    && !crate::hub::is_commit_sha(revision)
                    && let Some(fresh) = self.commit_for(target, revision, headers).await?
                {
                    return Ok((revision.clone(), rest.clone(), fresh));
                }
                return Ok((revision.clone(), rest.clone(), sha));
            }
        }
        let (revision, rest) = tail.likely(need_path);
        if (self.pull.is_some() || self.larder.blobs.is_shared())
            && let Some(sha) = self.commit_for(target, &revision, headers).await?
        {
            return Ok((revision, rest, sha));
        }
        Err(self.unknown_revision(target, &revision, headers).await)
    }

    /// Whether the upstream has disabled the repo (known only with pull-through).
    pub(crate) fn is_disabled(&self, target: &Target) -> bool {
        self.pull
            .as_ref()
            .is_some_and(|pull| pull.is_disabled(target.kind, &target.repo))
    }

    /// Refuse a disabled repo's files and listings as the Hub does (403, no error code).
    pub(crate) fn refuse_disabled(&self, target: &Target) -> Result<(), ServeError> {
        if self.is_disabled(target) {
            Err(ServeError::Disabled)
        } else {
            Ok(())
        }
    }

    /// The commit `revision` names according to the shared store's manifests, recorded
    /// locally; `None` with the default store or when the store does not know it.
    pub(crate) async fn commit_in_store(
        &self,
        target: &Target,
        revision: &str,
    ) -> Option<CommitId> {
        if !self.larder.blobs.is_shared() {
            return None;
        }
        let found = if let Ok(commit) = CommitId::parse(revision) {
            crate::manifest::lookup_commit(&self.larder, target.kind, &target.repo, &commit)
                .await
                .map(|found| found.then_some(commit))
        } else {
            crate::manifest::lookup_ref(&self.larder, target.kind, &target.repo, revision).await
        };
        match found {
            Ok(Some(sha)) => {
                tracing::info!(
                    repo = target.repo,
                    revision,
                    %sha,
                    "revision found in the store"
                );
                self.forget(target.kind, &target.repo);
                Some(sha)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(
                    repo = target.repo, revision,
                    error = %crate::fetch::transfer::error_chain(&error),
                    "looking up a revision in the store failed"
                );
                None
            }
        }
    }

    /// A commit's detail, cached briefly.
    pub(crate) async fn detail(
        &self,
        target: &Target,
        sha: &CommitId,
        headers: &HeaderMap,
    ) -> Result<Arc<CommitDetail>, ServeError> {
        let key = RepoItemKey::new(target.kind, &target.repo, sha);
        if let Some(detail) = self.details.get(&key) {
            return Ok(detail);
        }
        let found = self
            .larder
            .registry
            .commit_detail(target.kind, &target.repo, sha)
            .await
            .map_err(|e| internal("reading a commit failed", &e))?;
        let detail = match found {
            Some(detail) => Arc::new(detail),
            None => {
                return Err(ServeError::RevisionNotFound {
                    revision: sha.to_string(),
                });
            }
        };
        let _ = headers;
        self.details.insert(key, detail.clone());
        Ok(detail)
    }

    /// Whether the repo is private as last seen (unknown repos and registry failures count as
    /// private, so nothing leaks).
    pub(crate) async fn is_private(&self, kind: RepoKind, repo: &str) -> bool {
        match self.larder.registry.list_repos().await {
            Ok(repos) => repos
                .iter()
                .any(|r| r.kind == kind && r.name == repo && r.private),
            Err(_) => true,
        }
    }

    /// Forget cached details of a repo (after pull-through recorded something new).
    pub(crate) fn forget(&self, kind: RepoKind, repo: &str) {
        self.details
            .forget(|key| key.kind == kind && key.repo == repo);
        self.upstream_info.forget(kind, repo);
    }
}
