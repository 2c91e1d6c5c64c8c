//! Audit rows and their table, JSON and CSV renderings.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::detect::{Conflict, Detection};
use crate::policy::Verdict;

/// One signal as reports print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRow {
    /// Where (`file:LICENSE`, `card.license`, `tag`, …).
    pub source: String,
    /// What was found.
    pub value: String,
    /// Extra detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One audited repo revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// `org/name`.
    pub repo: String,
    /// The commit.
    pub commit: String,
    /// Catalog key, or `unknown`.
    pub licence: String,
    /// The Hub id where the licence has one, else the catalog key (or the card's own words).
    pub licence_id: String,
    /// Full name.
    pub licence_name: String,
    /// Catalog evidence level of the licence row (`unverified` rows need checking).
    pub evidence: String,
    /// Detection confidence.
    pub confidence: String,
    /// Combined over own and inherited licences: yes / no / conditional / unknown.
    pub commercial_use: String,
    /// User caps, own and inherited (`""` if none).
    pub user_cap: String,
    /// Revenue caps, own and inherited (`""` if none).
    pub revenue_cap: String,
    /// Duties owed, own and inherited.
    pub obligations: Vec<String>,
    /// allow / review / deny.
    pub verdict: String,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    pub reasons: Vec<String>,
    /// What was found where.
    pub signals: Vec<SignalRow>,
    /// Disagreements.
    pub conflicts: Vec<Conflict>,
}

impl AuditRow {
    /// Build a row.
    #[must_use]
    pub fn new(
        commit: &str,
        detection: &Detection,
        verdict: &Verdict,
        catalog: &Catalog,
    ) -> AuditRow {
        let own = detection
            .licence
            .as_deref()
            .and_then(|key| catalog.get(key));
        let mut obligations = Vec::new();
        let mut user_caps = Vec::new();
        let mut revenue_caps = Vec::new();
        for (key, via) in detection.effective_licences(catalog) {
            let Some(licence) = key.as_deref().and_then(|key| catalog.get(key)) else {
                continue;
            };
            let prefix = via
                .map(|base| format!("[{} via {base}] ", licence.report_id()))
                .unwrap_or_default();
            for duty in licence.obligations() {
                let line = format!("{prefix}{duty}");
                if !obligations.contains(&line) {
                    obligations.push(line);
                }
            }
            if licence.user_cap.is_set() {
                user_caps.push(format!(
                    "{}: {}",
                    licence.report_id(),
                    licence.user_cap.summary()
                ));
            }
            if licence.revenue_cap.is_set() {
                revenue_caps.push(format!(
                    "{}: {}",
                    licence.report_id(),
                    licence.revenue_cap.summary()
                ));
            }
        }
        let licence_id = match (own, &detection.declared_unresolved) {
            (Some(licence), _) => licence.report_id().to_string(),
            (None, Some(words)) => words.clone(),
            (None, None) => "unknown".to_string(),
        };
        AuditRow {
            repo: detection.repo.clone(),
            commit: commit.to_string(),
            licence: detection.licence_key().to_string(),
            licence_id,
            licence_name: own.map_or_else(String::new, |licence| licence.name.clone()),
            evidence: own
                .map_or("", |licence| licence.evidence.as_str())
                .to_string(),
            confidence: detection.confidence.as_str().to_string(),
            commercial_use: detection.commercial_use(catalog).as_str().to_string(),
            user_cap: user_caps.join("; "),
            revenue_cap: revenue_caps.join("; "),
            obligations,
            verdict: verdict.verdict.as_str().to_string(),
            rule: verdict.rule.clone(),
            reasons: verdict.reasons.clone(),
            signals: detection
                .signals
                .iter()
                .map(|signal| SignalRow {
                    source: signal.source.label(),
                    value: signal.value.clone(),
                    detail: signal.detail.clone(),
                })
                .collect(),
            conflicts: detection.conflicts.clone(),
        }
    }
}

/// Rows as a pretty JSON array.
///
/// # Errors
/// Only if serialisation fails, which plain rows cannot.
pub fn audit_json(rows: &[AuditRow]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(rows)
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Rows as RFC 4180 CSV with a header; list fields are joined with ` | `.
#[must_use]
pub fn audit_csv(rows: &[AuditRow]) -> String {
    let mut out = String::from(
        "repo,commit,licence,licence_id,licence_name,evidence,confidence,commercial_use,user_cap,revenue_cap,verdict,rule,obligations,reasons,signals,conflicts\r\n",
    );
    for row in rows {
        let signals: Vec<String> = row
            .signals
            .iter()
            .map(|signal| format!("{}={}", signal.source, signal.value))
            .collect();
        let conflicts: Vec<String> = row
            .conflicts
            .iter()
            .map(|conflict| conflict.message.clone())
            .collect();
        let fields = [
            row.repo.clone(),
            row.commit.clone(),
            row.licence.clone(),
            row.licence_id.clone(),
            row.licence_name.clone(),
            row.evidence.clone(),
            row.confidence.clone(),
            row.commercial_use.clone(),
            row.user_cap.clone(),
            row.revenue_cap.clone(),
            row.verdict.clone(),
            row.rule.clone(),
            row.obligations.join(" | "),
            row.reasons.join(" | "),
            signals.join(" | "),
            conflicts.join(" | "),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Rows as an aligned plain-text table (one line per row; conflicts counted).
#[must_use]
pub fn audit_table(rows: &[AuditRow]) -> String {
    let header = [
        "REPO",
        "COMMIT",
        "LICENCE",
        "COMMERCIAL",
        "CAP",
        "VERDICT",
        "RULE",
        "CONFLICTS",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|cell| (*cell).to_string()).collect()];
    for row in rows {
        let mut licence = row.licence_id.clone();
        if row.evidence == "unverified" {
            licence.push_str(" (unverified)");
        }
        cells.push(vec![
            row.repo.clone(),
            row.commit.chars().take(12).collect(),
            licence,
            row.commercial_use.clone(),
            if row.user_cap.is_empty() && row.revenue_cap.is_empty() {
                "-".to_string()
            } else {
                "yes".to_string()
            },
            row.verdict.clone(),
            row.rule.clone(),
            row.conflicts.len().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            cells
                .iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[column] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
