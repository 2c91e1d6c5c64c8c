//! Licence catalog, detection, policy and reports for Larder.
//!
//! Larder records the licence of every model revision it mirrors. This crate is the pure
//! part of that feature — no I/O, no registry, no CLI:
//!
//! - [`catalog`]: the licence facts in `licence/licences.toml`, embedded at build time,
//!   and lookup by catalog key, Hub id, former Hub id or `license_name` alias.
//! - [`text`]: normalised fingerprints of licence texts.
//! - [`detect`](mod@detect): signals from licence files, card, tags, gate and lineage, resolved to one
//!   catalog key with a confidence, and conflicts flagged.
//! - [`policy`]: allow / review / deny rules, requirements and per-repo exceptions.
//! - [`report`]: audit rows (table, JSON, CSV), CycloneDX 1.6 and SPDX 3.0 BOMs, NOTICE
//!   text, and the relicensing check.
//!
//! ```
//! use larder_licence::{Catalog, Policy, RepoEvidence, detect};
//!
//! let catalog = Catalog::builtin();
//! let evidence = RepoEvidence {
//!     repo: "acme/model".into(),
//!     card: Some(serde_json::json!({ "license": "other", "license_name": "deepseek-license" })),
//!     ..RepoEvidence::default()
//! };
//! let detection = detect(&evidence, catalog);
//! assert_eq!(detection.licence.as_deref(), Some("deepseek_la_1_0"));
//! let policy = Policy::from_toml("default = \"deny\"\nallow = [\"deepseek\"]").unwrap();
//! let verdict = policy.evaluate("acme/model", &detection, catalog, &[]);
//! assert_eq!(verdict.verdict.as_str(), "allow");
//! ```

#![deny(missing_docs)]

pub mod catalog;
pub mod detect;
pub mod error;
pub mod normalise;
pub mod policy;
pub mod report;
pub mod text;

pub use catalog::{Catalog, CommercialUse, Evidence, Licence, LicenceKind};
pub use detect::{
    Confidence, Conflict, ConflictKind, Detection, Inherited, RepoEvidence, Signal, SignalSource,
    detect, is_licence_file,
};
pub use error::{CatalogError, PolicyError};
pub use policy::{Policy, PolicySpec, Verdict, VerdictKind};
pub use report::{AuditRow, Relicensing, audit_csv, audit_json, audit_table, relicensing};
