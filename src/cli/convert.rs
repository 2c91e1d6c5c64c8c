//! `larder convert ORG/NAME[@REV] --to gguf --type TYPE` / `--to safetensors --dtype D`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use larder::Larder;
use larder::convert::{ConvertEvent, ConvertRequest, ConvertRunError, Target, convert};
use larder::hub::{RepoRef, RepoType};
use larder::interrupt::CancellationToken;
use larder::registry::RepoKind;
use larder::report::{Reporter, Silent};

use super::format;

/// Arguments of `larder convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The source: ORG/NAME[@REV], held in the store
    repo: RepoRef,
    /// Output format
    #[arg(long, value_parser = ["gguf", "safetensors"])]
    to: String,
    /// GGUF type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k iq4_nl iq4_xs mxfp4_moe (q2_k_s needs an importance matrix)
    #[arg(long = "type", value_name = "TYPE")]
    gguf_type: Option<String>,
    /// safetensors dtype: f16, bf16 or f32
    #[arg(long)]
    dtype: Option<String>,
    /// Also write the output here (a file for GGUF, a directory for safetensors)
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Derived repo name [default: ORG/NAME-GGUF or ORG/NAME-<DTYPE>]
    #[arg(long, value_name = "ORG/NAME")]
    name: Option<String>,
    /// Source repo type
    #[arg(long = "repo-type", default_value = "model", value_parser = ["model", "dataset"])]
    kind: String,
    /// Quantization threads [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat), used as llama-quantize --imatrix does
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    /// Queue the conversion as a job of the `larder serve` at URL (its store) and wait for it
    #[arg(long, value_name = "URL", env = "LARDER_DAEMON", conflicts_with_all = ["out", "threads", "imatrix"])]
    daemon: Option<String>,
}

impl ConvertArgs {
    /// The daemon to convert on, if any.
    pub fn daemon(&self) -> Option<&str> {
        self.daemon.as_deref()
    }
}

/// Run `larder convert --daemon URL`: a convert job through `POST /v1/jobs`, followed to its
/// end; the exit status is the job's.
pub async fn run_on_daemon(daemon: &str, args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let api = super::jobs::Api::new(daemon)?;
    let revision = args
        .repo
        .revision
        .as_ref()
        .map_or_else(|| "main".to_owned(), |r| r.as_str().to_owned());
    let mut spec = serde_json::json!({
        "kind": "convert",
        "repo": args.repo.id.as_str(),
        "revision": revision,
        "to": args.to,
    });
    for (key, value) in [
        ("type", &args.gguf_type),
        ("dtype", &args.dtype),
        ("name", &args.name),
    ] {
        if let Some(value) = value {
            spec[key] = serde_json::json!(value);
        }
    }
    let id = api.submit(&spec).await?;
    eprintln!(
        "queued job {id} on {}: convert {}@{revision}",
        api.base(),
        args.repo.id
    );
    loop {
        let job = api.job(id).await?;
        if job.state.is_final() {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else if let Some(error) = &job.error {
                super::printer::error(error);
            } else {
                eprintln!("job {id}: {}", job.state);
            }
            return Ok(super::job_exit_status(&job));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Run `larder convert`; cancelling `cancel` (Ctrl-C) stops it and removes its partial output.
pub async fn run(
    larder: &Larder,
    args: ConvertArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let target = match (args.to.as_str(), &args.gguf_type, &args.dtype) {
        ("gguf", Some(ty), None) => Target::Gguf(ty.parse().context("unknown --type")?),
        ("safetensors", None, Some(dtype)) => {
            Target::Safetensors(dtype.parse().context("unknown --dtype")?)
        }
        ("gguf", _, _) => bail!("--to gguf takes --type TYPE (and no --dtype)"),
        _ => bail!("--to safetensors takes --dtype f16|bf16|f32 (and no --type)"),
    };
    let revision = args
        .repo
        .revision
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "main".to_owned());
    let request = ConvertRequest {
        kind: RepoKind::from(args.kind.parse::<RepoType>()?),
        repo: args.repo.id.clone(),
        revision: revision.clone(),
        target,
        name: args.name,
        out: args.out,
        threads: args.threads,
        imatrix: args.imatrix,
        cancel,
    };
    let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "converting [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let reporter: Arc<dyn Reporter<ConvertEvent>> = match bar.clone() {
        Some(bar) => Arc::new(move |event: &ConvertEvent| match *event {
            ConvertEvent::Tensors { done, total } => {
                bar.set_length(total);
                bar.set_position(done);
            }
        }),
        None => Arc::new(Silent),
    };
    let result = convert(larder, &request, reporter).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(ConvertRunError::Interrupted(interrupted)) => {
            return Ok(super::interrupt::finish(
                "the conversion stopped before publishing anything and its partial output was \
                 removed; run the same command to convert again",
                Some(interrupted),
                args.json,
            ));
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("convert of {}@{revision} failed", args.repo.id)));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(ExitCode::SUCCESS);
    }
    for warning in &outcome.warnings {
        super::printer::warning(warning);
    }
    for (path, size, sha256) in &outcome.files {
        eprintln!("  {path}  {}  sha256 {sha256}", format::size(*size));
    }
    eprintln!(
        "converted {}@{} -> {}@{} in {:.1}s",
        outcome.source,
        &outcome.source_commit[..12],
        outcome.derived,
        &outcome.commit[..12],
        outcome.seconds
    );
    Ok(ExitCode::SUCCESS)
}
