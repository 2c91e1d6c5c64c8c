//! `larder serve`: run the Hub-compatible mirror.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use larder::Larder;
use larder::serve::{ServeOptions, start};

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
}

/// Run `larder serve` until Ctrl-C.
pub async fn run(
    larder: Larder,
    settings: &larder::settings::Settings,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let mut larder = larder;
    if let Some(upstream) = &args.upstream {
        let mut client_settings = larder::hub::ClientSettings::new(upstream.clone());
        client_settings.token = settings.token.clone();
        larder.client = larder::hub::HubClient::new(client_settings)?;
    }
    if let Some(url) = &args.public_url {
        url::Url::parse(url).with_context(|| format!("--public-url {url:?} is not a URL"))?;
    }
    let offline = args.offline;
    let mut options = ServeOptions::new(args.addr);
    options.public_url = args.public_url;
    options.pull_through = !args.offline;
    options.policy =
        larder::config::load_policy(&larder.home, args.policy.as_deref())?.map(std::sync::Arc::new);
    let config = larder::config::Config::load(&larder.home)?;
    options.access = config.serve.access_rules(&larder.home)?;
    options.jobs.apply_config(&config.daemon)?;
    if config.daemon.max_connections == Some(0) {
        anyhow::bail!("config key `daemon.max_connections`: must be at least 1");
    }
    options.max_connections = config.daemon.max_connections;
    if let Some(workers) = args.job_workers {
        options.jobs.workers = usize::from(workers);
    }
    if let Some(rate) = args.max_rate {
        options.jobs.rate_limit = Some(std::sync::Arc::new(larder::fetch::rate::RateLimiter::new(
            rate,
        )));
    }
    if let Some(quota) = args.quota {
        options.jobs.quota = Some(quota);
    }
    if let Some(n) = args.max_connections {
        options.max_connections = usize::try_from(n).ok();
    }
    if options.jobs.quota.is_some() && larder.blobs.is_shared() {
        return Err(larder::gc::GcError::SharedQuota.into());
    }
    if options.jobs.quota.is_some() && offline {
        eprintln!("larder: note: --offline runs no daemon, so the quota is not enforced");
    }
    options.redirect_to_store = args.redirect_to_store || config.serve.redirect_to_store;
    if options.redirect_to_store && !larder.blobs.is_shared() {
        anyhow::bail!("redirect_to_store needs a shared object store (--store s3://...)");
    }
    let rescan = (larder.blobs.is_shared() && args.rescan > 0).then(|| {
        let larder = larder.clone();
        let every = std::time::Duration::from_secs(args.rescan);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match larder::manifest::reindex(&larder).await {
                    Ok(summary) => tracing::info!(
                        manifests = summary.manifests,
                        blobs = summary.blobs,
                        "rescanned the store"
                    ),
                    Err(error) => tracing::warn!(error = %error, "rescanning the store failed"),
                }
            }
        })
    });
    let offline = args.offline;
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
    if let Some(rescan) = rescan {
        rescan.abort();
    }
    eprintln!("larder: stopping; finishing requests in flight");
    match tokio::time::timeout(std::time::Duration::from_secs(30), running.stop()).await {
        Ok(result) => result.context("the server failed")?,
        Err(_) => eprintln!("larder: downloads still running after 30 s; stopping anyway"),
    }
    Ok(ExitCode::SUCCESS)
}
