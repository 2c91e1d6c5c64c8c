//! [`LicenceError`]: why licence detection, a policy decision or a report failed.

use crate::failure::{Classify, FailureKind, Hint};
use crate::hub::HubError;
use crate::registry::{CommitId, RegistryError};
use crate::store::StoreError;

/// A pull the policy refused, with what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `org/name`.
    pub repo: String,
    /// The commit.
    pub commit: CommitId,
    /// The resolved licence (Hub id or catalog key, `unknown`).
    pub licence: String,
    /// Its full name, if known.
    pub licence_name: String,
    /// The rule that denied.
    pub rule: String,
    /// Every consideration.
    pub reasons: Vec<String>,
    /// Licence ids `--accept-licence` would have to name to pull anyway; empty when no
    /// acceptance can override (a per-repo exception).
    pub acceptable: Vec<String>,
}

fn denial_message(denial: &Denial) -> String {
    let name = if denial.licence_name.is_empty() {
        String::new()
    } else {
        format!(" ({})", denial.licence_name)
    };
    let mut message = format!(
        "the licence policy denies `{}` at {}: licence {}{name}, rule `{}`; nothing was downloaded",
        denial.repo, denial.commit, denial.licence, denial.rule
    );
    for reason in &denial.reasons {
        message.push_str(&format!("\n  - {reason}"));
    }
    message
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LicenceError {
    /// The policy denies the repo.
    #[error("{}", denial_message(.0))]
    Denied(Box<Denial>),
    /// A licence file's bytes do not match the git blob id upstream listed.
    #[error(
        "licence file `{path}` of `{repo}` does not match its git blob id {expected} (got {actual})"
    )]
    Corrupt {
        /// The repo.
        repo: String,
        /// The file.
        path: String,
        /// The listed oid.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// `--accept-licence` names something the catalog does not know.
    #[error("`--accept-licence {id}` names no licence in the catalog")]
    UnknownAccepted {
        /// As given.
        id: String,
    },
    /// The repo (or revision) is not held.
    #[error("`{repo}` is not held")]
    NotHeld {
        /// `org/name[@rev]`.
        repo: String,
    },
    /// The Hub refused or failed while the licence files were fetched.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A held licence file could not be read from the store.
    #[error("could not read held licence file `{path}`")]
    Store {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// A stored detection did not parse (written by an incompatible Larder).
    #[error("the stored licence detection of `{repo}` at {commit} is unreadable")]
    StoredDetection {
        /// The repo.
        repo: String,
        /// The commit.
        commit: CommitId,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for LicenceError {
    fn failure_kind(&self) -> FailureKind {
        match self {
            LicenceError::Denied(_) => FailureKind::LicenceDenied,
            LicenceError::Corrupt { .. } => FailureKind::Upstream,
            LicenceError::UnknownAccepted { .. } => FailureKind::Invalid,
            LicenceError::NotHeld { .. } => FailureKind::NotFound,
            LicenceError::Store { source, .. } => source.failure_kind(),
            LicenceError::Hub(e) => e.failure_kind(),
            LicenceError::Registry(e) => e.failure_kind(),
            LicenceError::StoredDetection { .. } => FailureKind::Other,
        }
    }
}

impl Hint for LicenceError {
    fn hint(&self) -> Option<String> {
        match self {
            LicenceError::Denied(denial) if denial.acceptable.is_empty() => {
                Some("a policy exception denies this repo; change the policy to pull it".to_owned())
            }
            LicenceError::Denied(denial) => {
                let flags: Vec<String> = denial
                    .acceptable
                    .iter()
                    .map(|id| format!("--accept-licence {id}"))
                    .collect();
                Some(format!(
                    "to pull it anyway, accept the licence with `{}` (recorded in the audit log)",
                    flags.join(" ")
                ))
            }
            LicenceError::UnknownAccepted { .. } => Some(
                "use a Hub licence id (e.g. `cc-by-nc-4.0`, `llama3.1`), a `license_name` value, \
                 a catalog key, or `unknown`"
                    .to_owned(),
            ),
            LicenceError::NotHeld { repo } => Some(format!("run `larder pull {repo}` first")),
            LicenceError::Registry(e) => e.hint(),
            LicenceError::Hub(e) => e.hint(),
            _ => None,
        }
    }
}

impl LicenceError {
    /// Whether this is a policy denial (the CLI's exit code 5).
    pub fn is_denied(&self) -> bool {
        matches!(self, LicenceError::Denied(_))
    }
}
