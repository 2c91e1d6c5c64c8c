//! Access to gated and private content: a client's `Authorization` is checked upstream once
//! and the answer remembered for a few minutes.

use sha2::{Digest, Sha256};

use super::PullThrough;
use crate::fetch::transfer::{self};
use crate::hub::RepoType;
use crate::registry::{CommitId, RepoKind};
use crate::serve::cache::RepoItemKey;

impl PullThrough {
    /// Whether the upstream accepts `authorization` for the repo (cached a few minutes).
    pub async fn check_access(
        &self,
        kind: RepoKind,
        repo: &str,
        commit: &CommitId,
        authorization: &str,
    ) -> bool {
        let token_key = hex::encode(Sha256::digest(authorization.as_bytes()));
        let key = RepoItemKey::new(kind, repo, token_key);
        if let Some(allowed) = self.access.get(&key) {
            return allowed;
        }
        let url = format!(
            "{}/{}{}/resolve/{}/.gitattributes",
            self.larder.client.endpoint().trim_end_matches('/'),
            RepoType::from(kind).url_prefix(),
            repo,
            commit
        );
        let allowed = match self
            .probe
            .head(&url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let code = response
                    .headers()
                    .get("x-error-code")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                status.is_success()
                    || status.is_redirection()
                    || (status.as_u16() == 404 && code == "EntryNotFound")
            }
            Err(error) => {
                tracing::warn!(repo, error = %transfer::error_chain(&error), "upstream access check failed");
                return false; // not cached: try again next time
            }
        };
        tracing::info!(repo, allowed, "upstream access check");
        self.access.insert(key, allowed);
        allowed
    }
}
