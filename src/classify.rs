//! What a whole error chain says, for the two places that end operations: its
//! [`FailureKind`] (a failed job's `error_kind` in the daemon, the exit status in the CLI) and
//! its hint (printed by the CLI only).
//!
//! Each walk asks the links of the chain that are the library's typed errors; each of those
//! classifies itself, and knows its hint, beside its definition ([`Classify`], [`Hint`]).

use crate::OpenError;
use crate::bundle::BundleError;
use crate::config::ConfigError;
use crate::convert::ConvertRunError;
use crate::failure::{Classify, FailureKind, Hint};
use crate::fetch::PullError;
use crate::fetch::transfer::TransferError;
use crate::gc::GcError;
use crate::hub::HubError;
use crate::licence::LicenceError;
use crate::manage::ManageError;
use crate::registry::RegistryError;
use crate::settings::ServeSettingsError;
use crate::store::StoreError;

/// The kind of any error, from the first link of its source chain that is one of the
/// library's typed errors; [`FailureKind::Other`] if none is.
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> FailureKind {
    std::iter::successors(Some(error), |link| link.source())
        .find_map(kind_of_link)
        .unwrap_or(FailureKind::Other)
}

/// The kind of one error, if it is one of the typed errors this walk knows.
fn kind_of_link(error: &(dyn std::error::Error + 'static)) -> Option<FailureKind> {
    fn kind<E: Classify + std::error::Error + 'static>(
        error: &(dyn std::error::Error + 'static),
    ) -> Option<FailureKind> {
        error.downcast_ref::<E>().map(Classify::failure_kind)
    }
    kind::<PullError>(error)
        .or_else(|| kind::<ConvertRunError>(error))
        .or_else(|| kind::<LicenceError>(error))
        .or_else(|| kind::<TransferError>(error))
        .or_else(|| kind::<HubError>(error))
        .or_else(|| kind::<StoreError>(error))
        .or_else(|| kind::<OpenError>(error))
        .or_else(|| kind::<RegistryError>(error))
        .or_else(|| kind::<std::io::Error>(error))
}

/// The first hint any typed link of the chain gives.
pub fn hint_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    fn hint<E: Hint + std::error::Error + 'static>(
        error: &(dyn std::error::Error + 'static),
    ) -> Option<String> {
        error.downcast_ref::<E>().and_then(Hint::hint)
    }
    std::iter::successors(Some(error), |link| link.source()).find_map(|link| {
        hint::<PullError>(link)
            .or_else(|| hint::<ConvertRunError>(link))
            .or_else(|| hint::<ManageError>(link))
            .or_else(|| hint::<GcError>(link))
            .or_else(|| hint::<ServeSettingsError>(link))
            .or_else(|| hint::<LicenceError>(link))
            .or_else(|| hint::<BundleError>(link))
            .or_else(|| hint::<OpenError>(link))
            .or_else(|| hint::<ConfigError>(link))
            .or_else(|| hint::<HubError>(link))
            .or_else(|| hint::<StoreError>(link))
            .or_else(|| hint::<RegistryError>(link))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(kind_of(wrapped.as_ref()), FailureKind::DiskFull);

        let enospc = std::io::Error::from_raw_os_error(28);
        let wrapped = anyhow::Error::from(enospc).context("writing the output");
        assert_eq!(kind_of(wrapped.as_ref()), FailureKind::DiskFull);

        let plain = anyhow::anyhow!("something else");
        assert_eq!(kind_of(plain.as_ref()), FailureKind::Other);

        let not_held = ConvertRunError::NotHeld {
            repo: "acme/x".into(),
            revision: "main".into(),
        };
        assert_eq!(not_held.failure_kind(), FailureKind::NotFound);
    }

    #[test]
    fn hints_are_found_through_transparent_wrappers_and_stay_out_of_the_text() {
        let hint = |error: anyhow::Error| {
            let text = format!("{error:#}");
            let hint = hint_of(error.as_ref()).expect("a hint");
            assert!(!text.contains(&hint), "the hint is not in the text: {text}");
            hint
        };
        // `#[error(transparent)]` hides the wrapped error from the chain; the wrapper asks it.
        let corrupt = PullError::Store(StoreError::Corrupt {
            sha256: crate::registry::Sha256::from_bytes(&[0; 32]),
            actual: "00".repeat(32),
        });
        assert!(hint(corrupt.into()).contains("larder verify"));
        let endpoint = LicenceError::Hub(HubError::Endpoint("ftp://x".into()));
        assert!(hint(endpoint.into()).contains("base URL"));
        let quota = ServeSettingsError::SharedQuota(GcError::SharedQuota);
        assert!(hint(anyhow::Error::from(quota).context("serve")).contains("lifecycle"));
        let busy = anyhow::Error::from(GcError::Busy).context("gc");
        assert!(hint(busy).contains("again when it is done"));
        let not_held = ConvertRunError::NotHeld {
            repo: "acme/x".into(),
            revision: "main".into(),
        };
        assert_eq!(hint(not_held.into()), "`larder pull acme/x@main` first");
    }
}
