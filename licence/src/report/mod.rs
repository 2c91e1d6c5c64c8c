//! Reports: pure functions over rows the caller builds from the registry.
//!
//! [`AuditRow::new`] joins a [`Detection`](crate::Detection), a [`Verdict`](crate::Verdict)
//! and the catalog into the row every format prints: [`audit_json`], [`audit_csv`],
//! [`audit_table`]. The bill-of-materials formats live in [`cyclonedx`](mod@cyclonedx) and [`spdx`](mod@spdx), the owed
//! attribution in [`notice`](mod@notice), and the relicensing check in [`relicensing`](mod@relicensing).

pub mod audit;
pub mod cyclonedx;
pub mod notice;
pub mod relicensing;
pub mod spdx;

pub use audit::{AuditRow, SignalRow, audit_csv, audit_json, audit_table};
pub use cyclonedx::{BomFile, BomModel, cyclonedx};
pub use notice::notice;
pub use relicensing::{Relicensing, relicensing};
pub use spdx::spdx;
