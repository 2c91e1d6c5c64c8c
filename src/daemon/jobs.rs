//! What a job is: the spec a client submits, and the view the API and CLI show.

use serde::{Deserialize, Serialize};

use crate::fetch::PullOptions;
use crate::hub::{NameError, RepoId, RepoType, Revision};
use crate::registry::{JobRecord, JobState};

/// The kind name of pull jobs.
pub const PULL: &str = "pull";

/// The most include/exclude patterns a job may carry.
const MAX_PATTERNS: usize = 256;
/// The longest pattern accepted.
const MAX_PATTERN_LEN: usize = 1024;

/// A pull job as submitted: `{"kind":"pull","repo":"org/name","revision":"main",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSpec {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit; default `main`.
    #[serde(default = "main")]
    pub revision: String,
    /// `model` or `dataset`; default `model`.
    #[serde(default, rename = "type")]
    pub repo_type: RepoType,
    /// Only files matching one of these globs.
    #[serde(default)]
    pub include: Vec<String>,
    /// Skip files matching one of these globs.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn main() -> String {
    "main".to_owned()
}

/// Why a submitted job is refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The kind is not one this daemon runs.
    #[error("unknown job kind `{0}`: only `pull` is supported")]
    UnknownKind(String),
    /// A name did not validate.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Too many or too long patterns.
    #[error("at most {MAX_PATTERNS} include/exclude patterns of {MAX_PATTERN_LEN} bytes each")]
    Patterns,
    /// The JSON did not have the expected shape.
    #[error("invalid job spec: {0}")]
    Json(#[from] serde_json::Error),
}

/// A submitted job: `kind` plus the kind's fields.
#[derive(Debug, Clone, Deserialize)]
struct Submission {
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Value,
}

impl PullSpec {
    /// Parse and validate a submission body.
    pub fn from_submission(body: &[u8]) -> Result<PullSpec, SpecError> {
        let submission: Submission = serde_json::from_slice(body)?;
        if submission.kind != PULL {
            return Err(SpecError::UnknownKind(submission.kind));
        }
        let spec: PullSpec = serde_json::from_value(submission.rest)?;
        spec.options()?;
        Ok(spec)
    }

    /// The pull these fields describe.
    pub fn options(&self) -> Result<PullOptions, SpecError> {
        let patterns = self.include.iter().chain(&self.exclude);
        if self.include.len() + self.exclude.len() > MAX_PATTERNS
            || patterns.clone().any(|p| p.len() > MAX_PATTERN_LEN)
        {
            return Err(SpecError::Patterns);
        }
        let mut options = PullOptions::new(
            self.repo_type,
            RepoId::parse(&self.repo)?,
            Revision::parse(&self.revision)?,
        );
        options.include = self.include.clone();
        options.exclude = self.exclude.clone();
        Ok(options)
    }
}

/// Bytes of a job's files held so far, of the total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes held (reused, resumed or received).
    pub bytes: u64,
    /// Bytes of every selected file; 0 until the revision is resolved.
    pub total: u64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Id.
    pub id: i64,
    /// `pull`.
    pub kind: String,
    /// queued, running, done, failed or cancelled.
    pub state: JobState,
    /// Progress so far.
    pub progress: Progress,
    /// Why it failed.
    pub error: Option<String>,
    /// The submitted fields.
    pub spec: serde_json::Value,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        let progress = record
            .progress
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        JobView {
            id: record.id,
            kind: record.kind,
            state: record.state,
            progress,
            error: record.error,
            spec: record.spec,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}
