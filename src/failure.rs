//! The vocabulary of failure kinds, and the [`Classify`] and [`Hint`] traits the typed errors
//! implement.
//!
//! A leaf: this module imports no other module of the crate. Each error type says its own kind
//! beside its definition (`impl Classify for PullError` lives in `fetch`); the walk over an error
//! chain lives with its consumers ([`crate::classify`], used by the daemon and the CLI). The
//! daemon records the kind with a failed job (`error_kind` in the jobs API) and the CLI turns it
//! into its exit status, so `larder pull` and `larder pull --daemon` end the same way for the same
//! failure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use larder_registry::RegistryError;

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The licence policy denies the revision.
    LicenceDenied,
    /// The disk (of the store, the registry or an output) is full.
    DiskFull,
    /// The repo, revision or file does not exist upstream, or the source is not held.
    NotFound,
    /// The upstream failed, refused (gated, disabled) or sent something unusable.
    Upstream,
    /// The request itself cannot be carried out as given (patterns, names, conversion target).
    Invalid,
    /// Anything else (the registry or local I/O failing otherwise, an internal error).
    Other,
    /// Not recorded: a job that failed before kinds were recorded, or a kind this version does
    /// not know.
    Unknown,
}

impl FailureKind {
    /// Every kind, in documentation order.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::LicenceDenied,
        FailureKind::DiskFull,
        FailureKind::NotFound,
        FailureKind::Upstream,
        FailureKind::Invalid,
        FailureKind::Other,
        FailureKind::Unknown,
    ];

    /// The name stored and shown (`licence_denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::LicenceDenied => "licence_denied",
            FailureKind::DiskFull => "disk_full",
            FailureKind::NotFound => "not_found",
            FailureKind::Upstream => "upstream",
            FailureKind::Invalid => "invalid",
            FailureKind::Other => "other",
            FailureKind::Unknown => "unknown",
        }
    }

    /// The kind stored with a job: `None` (a job from before kinds were recorded) and names
    /// this version does not know read as [`FailureKind::Unknown`].
    pub fn from_stored(stored: Option<&str>) -> FailureKind {
        stored
            .and_then(|name| name.parse().ok())
            .unwrap_or(FailureKind::Unknown)
    }
}

/// An error that can suggest what to do about it. The CLI prints the hint on a `hint:` line
/// after the error; the daemon stores only the error's own text (a job cannot act on advice
/// meant for a shell), so hints never go into `#[error]` strings.
pub trait Hint {
    /// What the user can do, if anything helps.
    fn hint(&self) -> Option<String>;
}

/// An error that knows which [`FailureKind`] it is.
pub trait Classify {
    /// The kind of this failure.
    fn failure_kind(&self) -> FailureKind;
}

/// A full disk, or something else local.
impl Classify for std::io::Error {
    fn failure_kind(&self) -> FailureKind {
        if self.kind() == std::io::ErrorKind::StorageFull || self.raw_os_error() == Some(28) {
            FailureKind::DiskFull
        } else {
            FailureKind::Other
        }
    }
}

impl Hint for RegistryError {
    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::SchemaTooNew { .. } => {
                Some("upgrade larder, or point LARDER_HOME at another directory".to_owned())
            }
            RegistryError::UnknownRepo { .. } => Some("`larder pull` it first".to_owned()),
            _ => None,
        }
    }
}

/// A registry on a full disk, or something else local.
impl Classify for RegistryError {
    fn failure_kind(&self) -> FailureKind {
        if self.is_disk_full() {
            FailureKind::DiskFull
        } else {
            FailureKind::Other
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a failure kind.
#[derive(Debug, thiserror::Error)]
#[error("unknown failure kind `{0}`")]
pub struct ParseFailureKindError(String);

impl FromStr for FailureKind {
    type Err = ParseFailureKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ParseFailureKindError(s.to_owned()))
    }
}

impl Serialize for FailureKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A kind added by a newer daemon reads as [`FailureKind::Unknown`] rather than failing the
/// whole job view.
impl<'de> Deserialize<'de> for FailureKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(FailureKind::from_stored(Some(&name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_read_as_unknown() {
        for kind in FailureKind::ALL {
            assert_eq!(kind.as_str().parse::<FailureKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), kind);
        }
        assert_eq!(FailureKind::from_stored(None), FailureKind::Unknown);
        assert_eq!(
            FailureKind::from_stored(Some("quota_exceeded")),
            FailureKind::Unknown
        );
        assert_eq!(
            serde_json::from_str::<FailureKind>("\"quota_exceeded\"").unwrap(),
            FailureKind::Unknown
        );
    }
}
