//! Why an operation failed, as one of a few machine-readable kinds.
//!
//! The daemon records the kind with a failed job (`error_kind` in the jobs API) and the CLI
//! turns it into its exit status, so `larder pull` and `larder pull --daemon` end the same way
//! for the same failure. Every typed error a pull or a conversion can end with maps to exactly
//! one kind here; nothing else decides it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::convert::ConvertRunError;
use crate::daemon::jobs::SpecError;
use crate::fetch::PullError;
use crate::fetch::transfer::TransferError;
use crate::hub::HubError;
use crate::licence::LicenceError;
use crate::manifest::ManifestError;
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::store::materialize::MaterializeError;

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

    /// The kind of any error, from the first link of its source chain that is one of the
    /// library's typed errors; [`FailureKind::Other`] if none is.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> FailureKind {
        std::iter::successors(Some(error), |link| link.source())
            .find_map(of_link)
            .unwrap_or(FailureKind::Other)
    }
}

/// The kind of one error, if it is one of the typed errors this module knows.
fn of_link(error: &(dyn std::error::Error + 'static)) -> Option<FailureKind> {
    if let Some(e) = error.downcast_ref::<PullError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<ConvertRunError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<LicenceError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<TransferError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<HubError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<StoreError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<RegistryError>() {
        return Some(registry_kind(e));
    }
    if let Some(e) = error.downcast_ref::<SpecError>() {
        return Some(e.failure_kind());
    }
    if let Some(e) = error.downcast_ref::<std::io::Error>() {
        return Some(io_kind(e));
    }
    None
}

/// A registry on a full disk, or something else local.
fn registry_kind(error: &RegistryError) -> FailureKind {
    if error.is_disk_full() {
        FailureKind::DiskFull
    } else {
        FailureKind::Other
    }
}

/// A full disk, or something else local.
fn io_kind(error: &std::io::Error) -> FailureKind {
    if error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(28) {
        FailureKind::DiskFull
    } else {
        FailureKind::Other
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

impl PullError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            PullError::Hub(e) => e.failure_kind(),
            PullError::Pattern(_) | PullError::NothingSelected { .. } => FailureKind::Invalid,
            PullError::Transfer(e) => e.failure_kind(),
            PullError::Registry(e) => registry_kind(e),
            PullError::Store(e) => e.failure_kind(),
            PullError::Materialize(MaterializeError::Path(_)) => FailureKind::Upstream,
            PullError::Materialize(MaterializeError::Io { source, .. }) => io_kind(source),
            PullError::Licence(e) => e.failure_kind(),
            PullError::Manifest(ManifestError::Store(e)) => e.failure_kind(),
            PullError::Manifest(ManifestError::Registry(e)) => registry_kind(e),
            PullError::Manifest(_) => FailureKind::Other,
        }
    }
}

impl TransferError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            TransferError::Hub { source, .. } => source.failure_kind(),
            TransferError::Exhausted { .. }
            | TransferError::Mismatch { .. }
            | TransferError::Protocol { .. } => FailureKind::Upstream,
            TransferError::Store { source, .. } => source.failure_kind(),
        }
    }
}

impl HubError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            HubError::RepoNotFound { .. }
            | HubError::RevisionNotFound { .. }
            | HubError::EntryNotFound { .. } => FailureKind::NotFound,
            HubError::Endpoint(_) => FailureKind::Invalid,
            HubError::Client(_) => FailureKind::Other,
            HubError::Network { .. }
            | HubError::Gated { .. }
            | HubError::Disabled { .. }
            | HubError::Status { .. }
            | HubError::Json { .. }
            | HubError::TooLarge { .. }
            | HubError::TreeEntry { .. }
            | HubError::MissingCommit { .. }
            | HubError::Redirect { .. }
            | HubError::Name(_) => FailureKind::Upstream,
        }
    }
}

impl StoreError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            StoreError::DiskFull { .. } => FailureKind::DiskFull,
            _ => FailureKind::Other,
        }
    }
}

impl LicenceError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            LicenceError::Denied(_) => FailureKind::LicenceDenied,
            LicenceError::Corrupt { .. } => FailureKind::Upstream,
            LicenceError::UnknownAccepted { .. } => FailureKind::Invalid,
            LicenceError::NotHeld { .. } => FailureKind::NotFound,
            LicenceError::Store { source, .. } => source.failure_kind(),
            LicenceError::Registry(_) | LicenceError::StoredDetection { .. } => FailureKind::Other,
        }
    }
}

impl ConvertRunError {
    /// The kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        use larder_convert::ConvertError;
        match self {
            ConvertRunError::NotHeld { .. } => FailureKind::NotFound,
            ConvertRunError::Incomplete { .. } | ConvertRunError::Name(_) => FailureKind::Invalid,
            ConvertRunError::Convert { source, .. } => match source {
                ConvertError::Io { source, .. } | ConvertError::Write(source) => io_kind(source),
                ConvertError::ThreadPool(_) => FailureKind::Other,
                // The checkpoint (or the requested type) is not one the converter takes.
                _ => FailureKind::Invalid,
            },
            ConvertRunError::Store(e) => e.failure_kind(),
            ConvertRunError::Out { source, .. } => io_kind(source),
            ConvertRunError::Registry(e) => registry_kind(e),
            ConvertRunError::Task(_) => FailureKind::Other,
        }
    }
}

impl SpecError {
    /// The kind of this failure: a job spec that does not validate is always invalid.
    pub fn failure_kind(&self) -> FailureKind {
        FailureKind::Invalid
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

    #[test]
    fn the_first_typed_link_of_a_chain_decides() {
        let full = PullError::Transfer(TransferError::Store {
            path: "a.bin".into(),
            source: StoreError::DiskFull {
                path: "/srv/larder/tmp".into(),
            },
        });
        assert_eq!(full.failure_kind(), FailureKind::DiskFull);
        let wrapped = anyhow::Error::from(full).context("pull acme/x");
        assert_eq!(FailureKind::of(wrapped.as_ref()), FailureKind::DiskFull);

        let enospc = std::io::Error::from_raw_os_error(28);
        let wrapped = anyhow::Error::from(enospc).context("writing the output");
        assert_eq!(FailureKind::of(wrapped.as_ref()), FailureKind::DiskFull);

        let plain = anyhow::anyhow!("something else");
        assert_eq!(FailureKind::of(plain.as_ref()), FailureKind::Other);

        let not_held = ConvertRunError::NotHeld {
            repo: "acme/x".into(),
            revision: "main".into(),
        };
        assert_eq!(not_held.failure_kind(), FailureKind::NotFound);
    }
}
