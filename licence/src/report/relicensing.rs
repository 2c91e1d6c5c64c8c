//! The relicensing check: did the licence change between two revisions?

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::detect::Detection;

/// A licence change between the two latest revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relicensing {
    /// The repo.
    pub repo: String,
    /// The earlier commit and its licence id (`unknown` when unresolved).
    pub from: (String, String),
    /// The later commit and its licence id.
    pub to: (String, String),
    /// A sentence for logs and reports.
    pub message: String,
}

/// Compare the licences of two revisions (earlier, later); `Some` when they differ.
#[must_use]
pub fn relicensing(
    previous: (&str, &Detection),
    latest: (&str, &Detection),
    catalog: &Catalog,
) -> Option<Relicensing> {
    let describe = |detection: &Detection| match detection
        .licence
        .as_deref()
        .and_then(|key| catalog.get(key))
    {
        Some(licence) => licence.report_id().to_string(),
        None => detection
            .declared_unresolved
            .clone()
            .unwrap_or_else(|| "unknown".to_string()),
    };
    let (before, after) = (describe(previous.1), describe(latest.1));
    if before == after {
        return None;
    }
    let message = format!(
        "{} was relicensed: {before} at {} -> {after} at {}",
        latest.1.repo,
        short(previous.0),
        short(latest.0)
    );
    Some(Relicensing {
        repo: latest.1.repo.clone(),
        from: (previous.0.to_string(), before),
        to: (latest.0.to_string(), after),
        message,
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
