//! `larder jobs`: submit, list, show, wait for and cancel jobs of a running `larder serve`.
//!
//! Everything goes through the daemon's `/v1/jobs` API (never the registry directly), so the
//! same commands work against a daemon on another machine.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use larder::daemon::jobs::JobView;
use larder::hub::RepoRef;
use larder::registry::JobState;
use serde_json::json;

use super::format;

/// Arguments of `larder jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The daemon's URL
    #[arg(
        long,
        global = true,
        env = "LARDER_DAEMON",
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    daemon: String,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Queue a job
    Add {
        #[command(subcommand)]
        job: AddJob,
    },
    /// List jobs
    Ls {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one job
    Show {
        /// Job id
        id: i64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Wait until a job ends; exit 0 when done, 130 when cancelled, else as `larder pull` would
    Wait {
        /// Job id
        id: i64,
    },
    /// Cancel a queued or running job (a running pull keeps its parts for later)
    Cancel {
        /// Job id
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum AddJob {
    /// Pull a repo revision into the daemon's store
    Pull {
        /// ORG/NAME[@REV]
        repo: RepoRef,
        /// Repo type
        #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset"])]
        kind: String,
        /// Only files matching this glob (repeatable)
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Skip files matching this glob (repeatable)
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Convert a revision held by the daemon (as `larder convert` does)
    Convert {
        /// ORG/NAME[@REV], held in the daemon's store
        repo: RepoRef,
        /// Output format
        #[arg(long, value_parser = ["gguf", "safetensors"])]
        to: String,
        /// GGUF type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_s q4_k_m q5_k_s q5_k_m q6_k
        #[arg(long = "type", value_name = "TYPE")]
        gguf_type: Option<String>,
        /// safetensors dtype: f16, bf16 or f32
        #[arg(long)]
        dtype: Option<String>,
        /// Derived repo name [default: ORG/NAME-GGUF or ORG/NAME-<DTYPE>]
        #[arg(long, value_name = "ORG/NAME")]
        name: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// The client side of the daemon's `/v1/jobs` API (also used by `larder pull --daemon`).
pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub(crate) fn new(daemon: &str) -> anyhow::Result<Api> {
        let url = url::Url::parse(daemon).with_context(|| format!("--daemon {daemon:?}"))?;
        // A mirror with `[serve] admin_tokens` (or access tokens) wants one on every request.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = std::env::var("LARDER_DAEMON_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .context("LARDER_DAEMON_TOKEN is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .context("could not build an HTTP client")?;
        Ok(Api {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    pub(crate) async fn submit(&self, spec: &serde_json::Value) -> anyhow::Result<i64> {
        let body = self
            .send(
                self.client
                    .post(format!("{}/v1/jobs", self.base))
                    .json(spec),
            )
            .await?;
        body.get("id")
            .and_then(|id| id.as_i64())
            .context("the daemon answered without a job id")
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `POST` a JSON body to `path`; the answer's JSON.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `POST` for work that takes as long as the store is big (gc, verify): no 30 s limit.
    pub(crate) async fn post_long(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .timeout(Duration::from_secs(24 * 3600))
                .json(body),
        )
        .await
    }

    /// `DELETE` `path`; the answer's JSON.
    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// `TYPE/ORG/NAME/REV` of a revision, as the API's paths take it (the revision
    /// percent-encoded, so a `/` in it stays one segment).
    pub(crate) fn revision_path(&self, target: &larder::manage::Target) -> String {
        let segment = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let (org, name) = target
            .repo
            .split_once('/')
            .unwrap_or(("", target.repo.as_str()));
        format!(
            "{}/{}/{}/{}",
            target.kind,
            segment(org),
            segment(name),
            segment(&target.revision)
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("could not reach the daemon at {}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("the daemon answered {status} with no JSON"))?;
        if !status.is_success() {
            let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            return Err(DaemonRefusal {
                status,
                message: text("error").unwrap_or_else(|| "no message".to_owned()),
                hint: text("hint"),
            }
            .into());
        }
        Ok(body)
    }

    /// What a `POST /v1/gc` or `/v1/verify` answered, followed to its report: a queued job
    /// (`{"id", "job"}`) is waited for and its report returned; a report is returned as it is.
    pub(crate) async fn report_of(
        &self,
        answer: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let Some(id) = answer
            .get("job")
            .and(answer.get("id"))
            .and_then(serde_json::Value::as_i64)
        else {
            return Ok(answer);
        };
        loop {
            let job = self.job(id).await?;
            match job.state {
                JobState::Done => {
                    return job.progress.report.with_context(|| {
                        format!("job {id} on {} ended without a report", self.base)
                    });
                }
                JobState::Failed => bail!(
                    "job {id} on {} failed: {}",
                    self.base,
                    job.error.as_deref().unwrap_or("no message")
                ),
                JobState::Cancelled => bail!("job {id} on {} was cancelled", self.base),
                JobState::Queued | JobState::Running => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    pub(crate) async fn job(&self, id: i64) -> anyhow::Result<JobView> {
        let body = self
            .send(self.client.get(format!("{}/v1/jobs/{id}", self.base)))
            .await?;
        serde_json::from_value(body).context("unexpected job JSON from the daemon")
    }
}

/// Run `larder jobs`.
pub async fn run(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.daemon)?;
    match args.command {
        JobsCommand::Add {
            job:
                AddJob::Pull {
                    repo,
                    kind,
                    include,
                    exclude,
                    json,
                },
        } => {
            let revision = repo
                .revision
                .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned());
            let spec = json!({
                "kind": "pull",
                "repo": repo.id.as_str(),
                "revision": revision,
                "type": kind,
                "include": include,
                "exclude": exclude,
            });
            let id = api.submit(&spec).await?;
            if json {
                println!("{}", json!({ "id": id }));
            } else {
                println!("queued job {id}: pull {}@{revision}", repo.id.as_str());
            }
        }
        JobsCommand::Add {
            job:
                AddJob::Convert {
                    repo,
                    to,
                    gguf_type,
                    dtype,
                    name,
                    json,
                },
        } => {
            let revision = repo
                .revision
                .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned());
            let mut spec = json!({
                "kind": "convert",
                "repo": repo.id.as_str(),
                "revision": revision,
                "to": to,
            });
            for (key, value) in [("type", gguf_type), ("dtype", dtype), ("name", name)] {
                if let Some(value) = value {
                    spec[key] = json!(value);
                }
            }
            let id = api.submit(&spec).await?;
            if json {
                println!("{}", json!({ "id": id }));
            } else {
                println!(
                    "queued job {id}: convert {}@{revision} to {to}",
                    repo.id.as_str()
                );
            }
        }
        JobsCommand::Ls { json } => {
            let body = api
                .send(api.client.get(format!("{}/v1/jobs", api.base)))
                .await?;
            let jobs: Vec<JobView> =
                serde_json::from_value(body).context("unexpected job list from the daemon")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                let rows: Vec<Vec<String>> = jobs.iter().map(row).collect();
                print!(
                    "{}",
                    format::table(
                        &["ID", "KIND", "STATE", "REPO", "PROGRESS", "UPDATED"],
                        &rows
                    )
                );
            }
        }
        JobsCommand::Show { id, json } => {
            let job = api.job(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                show(&job);
            }
        }
        JobsCommand::Wait { id } => loop {
            let job = api.job(id).await?;
            if job.state.is_final() {
                show(&job);
                return Ok(super::job_exit_status(&job));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        },
        JobsCommand::Cancel { id } => {
            let body = api
                .send(api.client.delete(format!("{}/v1/jobs/{id}", api.base)))
                .await?;
            let job: JobView =
                serde_json::from_value(body).context("unexpected job JSON from the daemon")?;
            println!("job {id}: {}", job.state);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn repo_of(job: &JobView) -> String {
    let field = |name: &str| {
        job.spec
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    match (field("repo").as_str(), field("revision").as_str()) {
        // gc, and verify of the whole store.
        ("", _) => "the store".to_owned(),
        (repo, "") => repo.to_owned(),
        (repo, revision) => format!("{repo}@{revision}"),
    }
}

fn progress_of(job: &JobView) -> String {
    let p = &job.progress;
    if p.total == 0 {
        return "-".to_owned();
    }
    format!(
        "{} / {} ({}%)",
        format::size(p.bytes),
        format::size(p.total),
        p.bytes.saturating_mul(100) / p.total
    )
}

fn row(job: &JobView) -> Vec<String> {
    vec![
        job.id.to_string(),
        job.kind.clone(),
        state_of(job),
        repo_of(job),
        progress_of(job),
        format::time(job.updated_at),
    ]
}

/// The state, with the kind of failure of a failed job: `failed (licence_denied)`.
fn state_of(job: &JobView) -> String {
    match job.error_kind {
        Some(kind) => format!("{} ({kind})", job.state),
        None => job.state.to_string(),
    }
}

fn show(job: &JobView) {
    println!("job {}: {} {}", job.id, job.kind, repo_of(job));
    println!("  state:    {}", state_of(job));
    println!("  progress: {}", progress_of(job));
    if let Some(error) = &job.error {
        println!("  error:    {error}");
    }
}

/// The management API's error answer (`{"error", "hint"}`): the error is the daemon's text,
/// the hint is printed on its own `hint:` line, as for a local command.
#[derive(Debug, thiserror::Error)]
#[error("the daemon answered {status}: {message}")]
pub(crate) struct DaemonRefusal {
    status: reqwest::StatusCode,
    message: String,
    hint: Option<String>,
}

impl DaemonRefusal {
    /// The hint of a daemon refusal anywhere in `error`'s chain.
    pub(crate) fn hint_of(error: &anyhow::Error) -> Option<String> {
        error
            .chain()
            .find_map(|link| link.downcast_ref::<DaemonRefusal>())
            .and_then(|refusal| refusal.hint.clone())
    }
}
