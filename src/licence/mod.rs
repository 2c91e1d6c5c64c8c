//! Licence glue: wires the pure `larder-licence` crate into pulls, the registry and reports.
//!
//! - [`evidence`]: what detection reads, gathered from upstream before a pull's transfers
//!   (card, tags, gate from the repo info; licence files fetched small and first) or from the
//!   registry and store for commits already held; base-model licences come from the registry.
//! - [`decide`](mod@decide): policy verdicts with `--accept-licence` overrides and accepted licences
//!   recorded in the audit log.
//! - [`gate`]: [`PullGate`], the hook `pull()` runs before any transfer (deny = nothing is
//!   downloaded or registered) and after the snapshot is recorded (signals and resolution are
//!   stored per commit, acceptances appended to the audit log).
//! - [`report`]: audit rows, relicensing, licence history, BOM and NOTICE inputs read back
//!   from the registry.

use crate::registry::CommitId;

pub mod decide;
mod error;
pub mod evidence;
pub mod gate;
pub mod report;

pub use decide::{Decision, accepted_keys, decide};
pub use error::{Denial, LicenceError};
pub use gate::{PullGate, PullLicence};
pub use report::{Audited, HistoryEntry, audit, licence_history, licence_keys, load_detection};

/// `kind:org/name`, the form the audit log names repos in.
pub fn audit_repo_name(kind: crate::registry::RepoKind, name: &str) -> String {
    format!("{kind}:{name}")
}

/// The `audit_log.action` of an accepted licence.
pub const ACCEPT_ACTION: &str = "accept_licence";

/// The audit-log action of a licence review from the console or `/v1/licence-reviews`
/// (`detail.decision` is `accept` or `deny`, `detail.commit` the revision reviewed).
pub const REVIEW_ACTION: &str = "review_licence";

/// Detect and record the licence of a commit already held (imported, converted), the same way
/// a pull does, from its card, licence files and held base models. Best effort: a failure is
/// logged, never fatal to the import or conversion that recorded the commit.
pub async fn record_held_detection(
    larder: &crate::Larder,
    kind: crate::registry::RepoKind,
    name: &str,
    sha: &CommitId,
) {
    let result = async {
        let Some(detail) = larder.registry.commit_detail(kind, name, sha).await? else {
            return Ok(());
        };
        let evidence =
            evidence::held_evidence(&larder.registry, larder.blobs.as_ref(), &detail).await?;
        let detection = larder_licence::detect(&evidence, larder_licence::Catalog::builtin());
        larder
            .registry
            .record_licence(kind, name, sha, gate::licence_record(&detection))
            .await?;
        Ok::<(), LicenceError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(repo = name, commit = %sha, %error, "could not record the licence detection");
    }
}
