//! Subcommands: clap arguments, calls into the library, rendering. No business logic here.

mod audit;
mod convert;
mod export;
mod format;
mod gc;
mod import;
mod interrupt;
mod jobs;
mod ls;
mod notice;
mod pin;
mod printer;
mod progress;
mod pull;
mod reindex;
mod remote_pull;
mod rm;
mod serve;
mod show;
mod track;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder::Larder;
use larder::daemon::jobs::JobView;
use larder::failure::FailureKind;
use larder::registry::JobState;
use larder::settings::Settings;

/// Exit status for verification failures (`larder verify` found bad blobs).
pub const EXIT_CORRUPT: u8 = 3;
/// Exit status when the disk filled up.
pub const EXIT_DISK_FULL: u8 = 4;
/// Exit status when the licence policy denied a pull.
pub const EXIT_LICENCE_DENIED: u8 = 5;

/// Larder: a model hub mirror and download manager.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about, propagate_version = true)]
pub struct Cli {
    /// Home directory holding the store and registry [default: $XDG_DATA_HOME/larder]
    #[arg(long, global = true, env = "LARDER_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Upstream Hub endpoint
    #[arg(
        long,
        global = true,
        env = "HF_ENDPOINT",
        value_name = "URL",
        default_value = "https://huggingface.co"
    )]
    endpoint: String,
    /// Where blobs and manifests live: file:///DIR or s3://BUCKET/PREFIX
    /// [default: `[store] url` of $LARDER_HOME/config.toml, else the home]
    #[arg(long, global = true, env = "LARDER_STORE", value_name = "URL")]
    store: Option<String>,
    /// More log output (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download a repo revision into the store, verified
    Pull(pull::PullArgs),
    /// List repos and revisions held
    Ls(ls::LsArgs),
    /// Show one revision: commit, refs, files
    Show(show::ShowArgs),
    /// Re-hash blobs; quarantine bad ones; exit non-zero if any
    Verify(verify::VerifyArgs),
    /// Convert a held safetensors checkpoint to GGUF or another dtype
    Convert(convert::ConvertArgs),
    /// Remove unreferenced blobs, stale parts and quarantined files
    Gc(gc::GcArgs),
    /// Serve the store as a Hub-compatible mirror (pull-through unless --offline)
    Serve(serve::ServeArgs),
    /// Write held revisions to a directory: a bundle, the HF cache layout, or plain files
    Export(export::ExportArgs),
    /// Import a bundle (verified), or a plain model folder with --as
    Import(import::ImportArgs),
    /// Licence audit of held repos: table, JSON, CSV, CycloneDX or SPDX
    Audit(audit::AuditArgs),
    /// The attribution and NOTICE text owed for held repos
    Notice(notice::NoticeArgs),
    /// Submit, list, show, wait for and cancel jobs of a running `larder serve`
    Jobs(jobs::JobsArgs),
    /// Have `larder serve` follow a branch or tag, pulling each new commit
    Track(track::TrackArgs),
    /// Stop following a branch or tag
    Untrack(track::UntrackArgs),
    /// Keep a held revision whatever the store quota
    Pin(pin::PinArgs),
    /// Let the store quota evict a pinned revision again
    Unpin(pin::PinArgs),
    /// Rebuild the registry from the revision manifests in a shared store
    Reindex(reindex::ReindexArgs),
    /// Forget a held revision (ORG/NAME@REV); `larder gc` then reclaims its blobs
    Rm(rm::RmArgs),
}

impl Command {
    /// The `--daemon URL` of a command that can run on a mirror instead of the local home.
    fn daemon(&self) -> Option<String> {
        let daemon = match self {
            Command::Pull(args) => args.daemon(),
            Command::Pin(args) | Command::Unpin(args) => args.daemon(),
            Command::Track(args) => args.daemon(),
            Command::Untrack(args) => args.daemon(),
            Command::Rm(args) => args.daemon(),
            Command::Gc(args) => args.daemon(),
            Command::Verify(args) => args.daemon(),
            Command::Convert(args) => args.daemon(),
            _ => None,
        };
        daemon.map(str::to_owned)
    }
}

/// Run a command on the mirror at `daemon` through its API (see [`Command::daemon`]).
async fn on_daemon(daemon: &str, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Pull(args) => pull::run_on_daemon(daemon, args).await,
        Command::Pin(args) => pin::run_on_daemon(daemon, args, true).await,
        Command::Unpin(args) => pin::run_on_daemon(daemon, args, false).await,
        Command::Track(args) => track::track_on_daemon(daemon, args).await,
        Command::Untrack(args) => track::untrack_on_daemon(daemon, args).await,
        Command::Rm(args) => rm::run_on_daemon(daemon, args).await,
        Command::Gc(args) => gc::run_on_daemon(daemon, args).await,
        Command::Verify(args) => verify::run_on_daemon(daemon, args).await,
        Command::Convert(args) => convert::run_on_daemon(daemon, args).await,
        _ => anyhow::bail!("this command does not take --daemon"),
    }
}

/// Set up logging on stderr; `RUST_LOG` overrides the level.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal, and never when NO_COLOR is set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Jobs talk to a daemon, possibly on another machine: no local home is opened.
    let Cli {
        home,
        endpoint,
        store,
        command,
        ..
    } = cli;
    let command = match command {
        Command::Jobs(args) => return jobs::run(args).await,
        command => match command.daemon() {
            // With `--daemon URL` the command runs on that mirror, through its `/v1` API.
            Some(daemon) => return on_daemon(&daemon, command).await,
            None => command,
        },
    };
    let settings = Settings::resolve(home, Some(endpoint));
    let larder = Larder::open_with_store(&settings, store.as_deref())?;
    match command {
        Command::Pull(args) => pull::run(&larder, args, interrupt::install()?).await,
        Command::Ls(args) => ls::run(&larder, args).await,
        Command::Show(args) => show::run(&larder, args).await,
        Command::Verify(args) => verify::run(&larder, args).await,
        Command::Convert(args) => convert::run(&larder, args, interrupt::install()?).await,
        Command::Gc(args) => gc::run(&larder, args).await,
        Command::Serve(args) => serve::run(larder, &settings, args).await,
        Command::Export(args) => export::run(&larder, args, interrupt::install()?).await,
        Command::Import(args) => import::run(&larder, args, interrupt::install()?).await,
        Command::Audit(args) => audit::run(&larder, args).await,
        Command::Notice(args) => notice::run(&larder, args).await,
        Command::Jobs(args) => jobs::run(args).await,
        Command::Track(args) => track::track(&larder, args).await,
        Command::Untrack(args) => track::untrack(&larder, args).await,
        Command::Pin(args) => pin::run(&larder, args, true).await,
        Command::Unpin(args) => pin::run(&larder, args, false).await,
        Command::Reindex(args) => reindex::run(&larder, args).await,
        Command::Rm(args) => rm::run(&larder, args).await,
    }
}

/// Exit status when a job was cancelled or the command interrupted (128 + SIGINT, as a shell
/// reports a process stopped by Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit status of a failure of this kind: the one table shared by local commands
/// ([`report_error`]) and jobs followed on a daemon ([`job_exit_status`]).
pub fn exit_status(kind: FailureKind) -> ExitCode {
    match kind {
        FailureKind::DiskFull => ExitCode::from(EXIT_DISK_FULL),
        FailureKind::LicenceDenied => ExitCode::from(EXIT_LICENCE_DENIED),
        FailureKind::NotFound
        | FailureKind::Upstream
        | FailureKind::Invalid
        | FailureKind::Other
        | FailureKind::Unknown => ExitCode::FAILURE,
    }
}

/// The exit status for a job that ended: 0 when done, 130 when cancelled, else the status of
/// its failure's kind (a daemon too old to record one counts as unknown).
pub fn job_exit_status(job: &JobView) -> ExitCode {
    match job.state {
        JobState::Done => ExitCode::SUCCESS,
        JobState::Cancelled => ExitCode::from(EXIT_INTERRUPTED),
        _ => exit_status(job.error_kind.unwrap_or(FailureKind::Unknown)),
    }
}

/// Print an error with its whole chain and a hint where one helps.
pub fn report_error(error: &anyhow::Error) -> ExitCode {
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    printer::error(&format!("{error:#}"));
    if let Some(hint) =
        larder::classify::hint_of(error.as_ref()).or_else(|| jobs::DaemonRefusal::hint_of(error))
    {
        printer::hint(&hint);
    }
    let kind = larder::classify::kind_of(error.as_ref());
    exit_status(kind)
}
