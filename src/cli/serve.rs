//! `larder serve`: run the Hub-compatible mirror.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use larder::Larder;
use larder::serve::start;
use larder::settings::{ResolvedServe, ServeFlags, Settings, resolve_serve};

/// Arguments of `larder serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080", env = "LARDER_SERVE_ADDR")]
    addr: SocketAddr,
    /// Upstream to pull missing repos and files from [default: the global --endpoint]
    #[arg(long, value_name = "URL", conflicts_with = "offline")]
    upstream: Option<String>,
    /// Serve only what the store holds; never contact an upstream
    #[arg(long)]
    offline: bool,
    /// The URL clients reach the mirror at, when behind a reverse proxy (used in `Link` headers)
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Jobs (queued pulls and conversions) run at once [default: `[daemon] job_workers`, else 2]
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=16))]
    job_workers: Option<u16>,
    /// Total upstream download rate (jobs and pull-through), e.g. 100MB/s [default: `[daemon]
    /// max_rate`, else none]
    #[arg(long, value_name = "RATE", value_parser = larder::fetch::rate::parse_rate)]
    max_rate: Option<u64>,
    /// Store quota, e.g. 2TB: above it the least recently served unpinned revisions are
    /// evicted [default: `[daemon] quota`, else none]
    #[arg(long, value_name = "SIZE", value_parser = larder::units::parse_size)]
    quota: Option<u64>,
    /// Client connections open at once; more wait [default: `[daemon] max_connections`, else none]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_connections: Option<u64>,
    /// Licence policy applied to the files served [default: `[policy]` of $LARDER_HOME/config.toml]
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// With a shared object store: redirect content downloads to presigned store URLs
    /// [default: `[serve] redirect_to_store` of $LARDER_HOME/config.toml]
    #[arg(long)]
    redirect_to_store: bool,
    /// With a shared store: re-read its manifests this often to pick up revisions other nodes
    /// recorded (0 = only on a miss)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    rescan: u64,
    /// Hide Xet: no Xet headers or `xetHash`, no CAS API, so every client downloads over plain
    /// HTTP [default: `[serve] xet` of $LARDER_HOME/config.toml, else Xet is served]
    #[arg(long)]
    no_xet: bool,
    /// A file with a shared secret (>= 32 bytes, e.g. `openssl rand -hex 32`) that signs Xet
    /// tokens and xorb URLs, so that several nodes behind one address accept each other's
    /// [default: `[serve] xet_key_file` of $LARDER_HOME/config.toml, else a key per start]
    #[arg(long, value_name = "FILE")]
    xet_key_file: Option<std::path::PathBuf>,
}

/// Run `larder serve` until Ctrl-C.
pub async fn run(
    mut larder: Larder,
    settings: &Settings,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let flags = ServeFlags {
        addr: args.addr,
        upstream: args.upstream,
        offline: args.offline,
        public_url: args.public_url,
        job_workers: args.job_workers,
        max_rate: args.max_rate,
        quota: args.quota,
        max_connections: args.max_connections,
        policy: args.policy,
        redirect_to_store: args.redirect_to_store,
        rescan_seconds: args.rescan,
        no_xet: args.no_xet,
        xet_key_file: args.xet_key_file,
    };
    let ResolvedServe { options, notes } = resolve_serve(&mut larder, settings, flags)?;
    for note in &notes {
        super::printer::note(note);
    }
    let offline = !options.pull_through;
    let endpoint = larder.client.endpoint();
    let store = if larder.blobs.is_shared() {
        larder.blobs.describe()
    } else {
        larder.home.display().to_string()
    };
    let running = start(larder, options)
        .await
        .with_context(|| format!("could not listen on {}", args.addr))?;
    if offline {
        eprintln!("larder: serving {} offline at {}", store, running.url());
    } else {
        eprintln!(
            "larder: serving {} at {} (pull-through from {endpoint})",
            store,
            running.url()
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("larder: stopping; finishing requests in flight");
    match tokio::time::timeout(std::time::Duration::from_secs(30), running.stop()).await {
        Ok(result) => result.context("the server failed")?,
        Err(_) => eprintln!("larder: downloads still running after 30 s; stopping anyway"),
    }
    Ok(ExitCode::SUCCESS)
}
