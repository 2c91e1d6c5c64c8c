//! What a job is: the spec a client submits, and the view the API and CLI show.

use serde::{Deserialize, Serialize};

use crate::failure::{Classify, FailureKind};
use crate::fetch::PullOptions;
use crate::hub::{NameError, RepoId, RepoType, Revision};
use crate::registry::{CommitId, JobRecord, JobState};

/// The kind name of pull jobs.
pub const PULL: &str = "pull";
/// The kind name of conversion jobs.
pub const CONVERT: &str = "convert";
/// The kind name of garbage collections (`larder gc`).
pub const GC: &str = "gc";
/// The kind name of store verifications (`larder verify`).
pub const VERIFY: &str = "verify";

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
    #[error("unknown job kind `{0}`: use `pull`, `convert`, `gc` or `verify`")]
    UnknownKind(String),
    /// A name did not validate.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Too many or too long patterns.
    #[error("at most {MAX_PATTERNS} include/exclude patterns of {MAX_PATTERN_LEN} bytes each")]
    Patterns,
    /// The conversion target is not one `larder convert` knows.
    #[error("invalid conversion: {0}")]
    Convert(String),
    /// A gc or verify job's fields do not go together.
    #[error("invalid {kind} job: {why}")]
    Store {
        /// `gc` or `verify`.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The JSON did not have the expected shape.
    #[error("invalid job spec: {0}")]
    Json(#[from] serde_json::Error),
}

/// A job spec that does not validate is always invalid.
impl Classify for SpecError {
    fn failure_kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

/// A submitted job: `kind` plus the kind's fields.
#[derive(Debug, Clone, Deserialize)]
struct Submission {
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Value,
}

/// A conversion job as submitted: `{"kind":"convert","repo":"org/name","revision":"main",
/// "to":"gguf","type":"q4_k_m"}` or `{..., "to":"safetensors","dtype":"f16"}`; the source must
/// be held (pull it first, e.g. with a pull job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertSpec {
    /// Source `org/name` (a model).
    pub repo: String,
    /// Source revision held; default `main`.
    #[serde(default = "main")]
    pub revision: String,
    /// `gguf` or `safetensors`.
    pub to: String,
    /// GGUF type, with `to = gguf` (e.g. `q4_k_m`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub gguf_type: Option<String>,
    /// dtype, with `to = safetensors` (`f16`, `bf16`, `f32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Derived repo name; default `ORG/NAME-GGUF` or `ORG/NAME-<DTYPE>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ConvertSpec {
    /// The conversion these fields describe.
    pub fn request(&self) -> Result<crate::convert::ConvertRequest, SpecError> {
        use crate::convert::Target;
        let target = match (self.to.as_str(), &self.gguf_type, &self.dtype) {
            ("gguf", Some(ty), None) => Target::Gguf(
                ty.parse()
                    .map_err(|_| SpecError::Convert(format!("unknown GGUF type `{ty}`")))?,
            ),
            ("safetensors", None, Some(dtype)) => Target::Safetensors(
                dtype
                    .parse()
                    .map_err(|_| SpecError::Convert(format!("unknown dtype `{dtype}`")))?,
            ),
            ("gguf", _, _) => {
                return Err(SpecError::Convert(
                    "`to: gguf` takes `type` (and no `dtype`)".into(),
                ));
            }
            ("safetensors", _, _) => {
                return Err(SpecError::Convert(
                    "`to: safetensors` takes `dtype` (and no `type`)".into(),
                ));
            }
            (other, _, _) => {
                return Err(SpecError::Convert(format!(
                    "unknown output `{other}`: use gguf or safetensors"
                )));
            }
        };
        if let Some(name) = &self.name {
            RepoId::parse(name)?;
        }
        Ok(crate::convert::ConvertRequest {
            kind: crate::registry::RepoKind::Model,
            repo: RepoId::parse(&self.repo)?,
            revision: Revision::parse(&self.revision)?.as_str().to_owned(),
            target,
            name: self.name.clone(),
            out: None,
            threads: None,
            imatrix: None,
            // A cancelled job's future is dropped (see `daemon::worker`).
            cancel: Default::default(),
        })
    }
}

/// A garbage collection as submitted: `{"kind":"gc","dry_run":false,"all_parts":false}`, or
/// `{"kind":"gc","quota":"2TB"}` to evict down to a quota (as `larder gc --quota`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcSpec {
    /// Report what would go, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Also remove parts of transfers still in flight elsewhere.
    #[serde(default)]
    pub all_parts: bool,
    /// Evict least recently served revisions until the store fits this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
}

impl GcSpec {
    /// The quota in bytes, if one is asked for; an error for fields that do not go together.
    pub fn quota_bytes(&self) -> Result<Option<u64>, SpecError> {
        let invalid = |why: String| SpecError::Store { kind: GC, why };
        let Some(quota) = &self.quota else {
            return Ok(None);
        };
        if self.dry_run || self.all_parts {
            return Err(invalid(
                "quota cannot be combined with dry_run or all_parts".to_owned(),
            ));
        }
        crate::units::parse_size(quota)
            .map(Some)
            .map_err(|e| invalid(format!("quota: {e}")))
    }
}

/// A verification as submitted: `{"kind":"verify"}` for the whole store, or with `repo`
/// (`org/name`), `revision` and `type` for one repo or revision (as `larder verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// `org/name`; the whole store when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// A revision of `repo`; all of its held revisions when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `model` or `dataset`; default `model`.
    #[serde(default, rename = "type")]
    pub kind: crate::registry::RepoKind,
}

impl VerifySpec {
    /// Checks the fields go together.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.repo.is_none() && self.revision.is_some() {
            return Err(SpecError::Store {
                kind: VERIFY,
                why: "revision needs repo".to_owned(),
            });
        }
        if let Some(repo) = &self.repo {
            RepoId::parse(repo)?;
        }
        Ok(())
    }
}

/// A job of any kind, as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    /// A pull.
    Pull(PullSpec),
    /// A conversion.
    Convert(ConvertSpec),
    /// A garbage collection.
    Gc(GcSpec),
    /// A verification of held blobs.
    Verify(VerifySpec),
}

impl JobSpec {
    /// Parse and validate a submission body.
    pub fn from_submission(body: &[u8]) -> Result<JobSpec, SpecError> {
        let submission: Submission = serde_json::from_slice(body)?;
        match submission.kind.as_str() {
            PULL => {
                let spec: PullSpec = serde_json::from_value(submission.rest)?;
                spec.options()?;
                Ok(JobSpec::Pull(spec))
            }
            CONVERT => {
                let spec: ConvertSpec = serde_json::from_value(submission.rest)?;
                spec.request()?;
                Ok(JobSpec::Convert(spec))
            }
            GC => {
                let spec: GcSpec = serde_json::from_value(submission.rest)?;
                spec.quota_bytes()?;
                Ok(JobSpec::Gc(spec))
            }
            VERIFY => {
                let spec: VerifySpec = serde_json::from_value(submission.rest)?;
                spec.check()?;
                Ok(JobSpec::Verify(spec))
            }
            _ => Err(SpecError::UnknownKind(submission.kind)),
        }
    }

    /// The kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Pull(_) => PULL,
            JobSpec::Convert(_) => CONVERT,
            JobSpec::Gc(_) => GC,
            JobSpec::Verify(_) => VERIFY,
        }
    }

    /// The spec as stored (without `kind`).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            JobSpec::Pull(spec) => serde_json::to_value(spec),
            JobSpec::Convert(spec) => serde_json::to_value(spec),
            JobSpec::Gc(spec) => serde_json::to_value(spec),
            JobSpec::Verify(spec) => serde_json::to_value(spec),
        }
    }

    /// `org/name` and revision, for logs.
    pub fn target(&self) -> (&str, &str) {
        match self {
            JobSpec::Pull(spec) => (&spec.repo, &spec.revision),
            JobSpec::Convert(spec) => (&spec.repo, &spec.revision),
            JobSpec::Gc(_) => ("the store", ""),
            JobSpec::Verify(spec) => (
                spec.repo.as_deref().unwrap_or("the store"),
                spec.revision.as_deref().unwrap_or(""),
            ),
        }
    }
}

impl PullSpec {
    /// Parse and validate a submission body that must be a pull.
    pub fn from_submission(body: &[u8]) -> Result<PullSpec, SpecError> {
        match JobSpec::from_submission(body)? {
            JobSpec::Pull(spec) => Ok(spec),
            other => Err(SpecError::UnknownKind(other.kind().to_owned())),
        }
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
        // The queue belongs to a mirror, which serves Xet: index what lands as it lands.
        options.transfer.index_chunks = true;
        Ok(options)
    }
}

/// Bytes of a job's files held so far, of the total (for a conversion: tensor bytes converted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes held (reused, resumed or received).
    pub bytes: u64,
    /// Bytes of every selected file; 0 until the revision is resolved.
    pub total: u64,
    /// A pull's plan and the files in flight, once resolved (what `larder pull --daemon` draws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullProgress>,
    /// What a finished gc or verify job found: the report `larder gc --json` or
    /// `larder verify --json` prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// What a running pull is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// The commit the revision resolved to.
    pub commit: CommitId,
    /// Files selected.
    pub files: usize,
    /// Files to fetch (the rest were held).
    pub fetch_files: usize,
    /// Bytes to fetch, before resumption.
    pub fetch_bytes: u64,
    /// Files verified so far in this run.
    pub verified: usize,
    /// Files being transferred now.
    pub active: Vec<ActiveFile>,
}

/// A file being transferred.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFile {
    /// Path in the repo.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Bytes on disk so far.
    pub bytes: u64,
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
    /// Why it failed, as a kind (set on failed jobs only; `unknown` for a job that failed before
    /// kinds were recorded). Absent from the answers of older daemons.
    #[serde(default)]
    pub error_kind: Option<FailureKind>,
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
        let error_kind = (record.state == JobState::Failed)
            .then(|| FailureKind::from_stored(record.error_kind.as_deref()));
        JobView {
            id: record.id,
            kind: record.kind,
            state: record.state,
            progress,
            error: record.error,
            error_kind,
            spec: record.spec,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}
