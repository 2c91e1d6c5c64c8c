//! Whether a request may have what it asks for: gated and private repos (the client's token
//! checked upstream) and the licence policy (verdicts cached per commit for a minute).

use axum::http::HeaderMap;

use super::cache::RepoItemKey;
use super::errors::ServeError;
use super::{Mirror, Target, authorization};
use crate::registry::CommitDetail;

impl Mirror {
    /// May this request see the repo (`content`: its files' bytes, not only its metadata)?
    ///
    /// Public repos: always. Gated repos: metadata always (as on the Hub), content only with an
    /// `Authorization` the upstream accepted for this repo. Private repos: nothing without such
    /// an `Authorization`. Offline, nothing can be confirmed, so gated content and private repos
    /// are refused.
    pub(crate) async fn authorize(
        &self,
        target: &Target,
        detail: &CommitDetail,
        headers: &HeaderMap,
        content: bool,
    ) -> Result<(), ServeError> {
        if content {
            self.check_licence(target, detail).await?;
        }
        let gated = detail.gated.is_some();
        if !(detail.private || gated && content) {
            return Ok(());
        }
        let auth = authorization(headers);
        let refuse = |authenticated| {
            if detail.private {
                ServeError::RepoNotFound { authenticated }
            } else {
                ServeError::Gated {
                    repo: target.repo.clone(),
                    authenticated,
                }
            }
        };
        let Some(auth) = auth else {
            return Err(refuse(false));
        };
        match &self.pull {
            Some(pull)
                if pull
                    .check_access(target.kind, &target.repo, &detail.sha, auth)
                    .await =>
            {
                Ok(())
            }
            _ => Err(refuse(true)),
        }
    }

    /// Apply the licence policy to a commit whose files are about to be served. Verdicts are
    /// cached per commit for a minute (policy and audit-log acceptances change rarely).
    pub(super) async fn check_licence(
        &self,
        target: &Target,
        detail: &CommitDetail,
    ) -> Result<(), ServeError> {
        let Some(policy) = &self.options.policy else {
            return Ok(());
        };
        let key = RepoItemKey::new(target.kind, &target.repo, detail.sha);
        if let Some(denial) = self.licence_verdicts.get(&key) {
            return match denial {
                Some(reason) => Err(ServeError::LicenceDenied {
                    repo: target.repo.clone(),
                    reason: reason.clone(),
                }),
                None => Ok(()),
            };
        }
        let audited = crate::licence::audit(
            &self.larder,
            target.kind,
            &[(target.repo.clone(), Some(detail.sha.to_string()))],
            policy,
        )
        .await;
        let denial = match audited {
            Ok(rows) => rows.first().and_then(|audited| {
                (audited.row.verdict == larder_licence::VerdictKind::Deny.as_str()).then(|| {
                    format!(
                        "licence `{}` ({})",
                        audited.row.licence,
                        audited.row.reasons.join("; ")
                    )
                })
            }),
            Err(error) => {
                tracing::warn!(repo = %target.repo, %error, "licence check failed; denying");
                Some("its licence could not be determined".to_owned())
            }
        };
        self.licence_verdicts.insert(key, denial.clone());
        match denial {
            Some(reason) => Err(ServeError::LicenceDenied {
                repo: target.repo.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }
}
