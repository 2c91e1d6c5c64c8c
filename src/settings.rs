//! Resolved settings: where the home is, which endpoint to use, which token to send, and how
//! `larder serve` runs.
//!
//! Precedence everywhere: command-line flag, then environment (`LARDER_HOME`, `HF_ENDPOINT`,
//! `HF_TOKEN`), then files (`config.toml` of the home, `$HF_TOKEN_PATH` or `$HF_HOME/token`),
//! then defaults. The CLI only parses flags into the plain structs here; every merge and check
//! happens in this module.

use std::env;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::Larder;
use crate::config::{ConfigError, ConfigValueError};
use crate::fetch::rate::RateLimiter;
use crate::hub::{ClientSettings, HubClient, HubError};
use crate::serve::ServeOptions;
use crate::serve::xet::grant::{MIN_SECRET_BYTES, XetKey};

/// The background scrub's default pace: a 10 TB store in about a week.
const DEFAULT_SCRUB_RATE: u64 = 16 << 20;
use crate::serve::access::{AccessRules, TokenEntryError, TokenSet};

/// The default upstream.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Everything a command needs to open a [`crate::Larder`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The home directory (`LARDER_HOME`).
    pub home: PathBuf,
    /// Upstream endpoint (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Token for the upstream.
    pub token: Option<String>,
}

impl Settings {
    /// Resolve from explicit values (flags, which clap already merged with the environment)
    /// and the remaining environment.
    pub fn resolve(home: Option<PathBuf>, endpoint: Option<String>) -> Self {
        Settings {
            home: home.unwrap_or_else(default_home),
            endpoint: endpoint
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            token: token_from_env(),
        }
    }
}

/// `$XDG_DATA_HOME/larder`, else `~/.local/share/larder`, else `./.larder`.
pub fn default_home() -> PathBuf {
    if let Some(data) = env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("larder");
    }
    if let Some(home) = env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Path::new(&home).join(".local/share/larder");
    }
    PathBuf::from(".larder")
}

/// The token the way huggingface_hub finds it: `HF_TOKEN`, the legacy
/// `HUGGING_FACE_HUB_TOKEN`, then the file at `HF_TOKEN_PATH` or `$HF_HOME/token`.
pub fn token_from_env() -> Option<String> {
    for name in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Ok(value) = env::var(name) {
            let value = value.trim().to_owned();
            if !value.is_empty() {
                return Some(value);
            }
        }
    }
    let path = env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| hf_home().map(|h| h.join("token")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim().to_owned();
    (!token.is_empty()).then_some(token)
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> Option<PathBuf> {
    if let Some(v) = env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    if let Some(v) = env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v).join("huggingface"));
    }
    env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
}

/// The flags of `larder serve`, as given (`None`: not given, the config file or the default
/// decides).
#[derive(Debug, Clone)]
pub struct ServeFlags {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Upstream other than the global endpoint.
    pub upstream: Option<String>,
    /// Serve only what the store holds.
    pub offline: bool,
    /// The URL clients reach the mirror at.
    pub public_url: Option<String>,
    /// Jobs run at once.
    pub job_workers: Option<u16>,
    /// Total upstream download rate, bytes per second.
    pub max_rate: Option<u64>,
    /// Store quota in bytes.
    pub quota: Option<u64>,
    /// Client connections open at once.
    pub max_connections: Option<u64>,
    /// A licence policy file instead of `[policy]`.
    pub policy: Option<PathBuf>,
    /// Redirect content downloads to presigned store URLs.
    pub redirect_to_store: bool,
    /// With a shared store: seconds between re-reads of its manifests (0 = only on a miss).
    pub rescan_seconds: u64,
    /// Hide Xet from clients (`--no-xet`).
    pub no_xet: bool,
    /// The shared secret that signs Xet tokens and xorb URLs (`--xet-key-file`).
    pub xet_key_file: Option<PathBuf>,
}

/// Why `larder serve`'s settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ServeSettingsError {
    /// The config file or the policy is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value of `[daemon]` is invalid.
    #[error(transparent)]
    Value(#[from] ConfigValueError),
    /// A token list entry in `[serve]` is malformed.
    #[error("[serve] {key} in {} is invalid", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Cause.
        #[source]
        source: TokenEntryError,
    },
    /// The upstream URL is unusable.
    #[error(transparent)]
    Upstream(#[from] HubError),
    /// `--public-url` is not a URL.
    #[error("--public-url {0:?} is not a URL")]
    PublicUrl(String),
    /// A flag that needs a shared object store, without one.
    #[error("{0} needs a shared object store (--store s3://...)")]
    NeedsSharedStore(&'static str),
    /// `--quota` with a shared store (each node would evict what others serve).
    #[error(transparent)]
    SharedQuota(#[from] crate::gc::GcError),
}

impl crate::failure::Hint for ServeSettingsError {
    fn hint(&self) -> Option<String> {
        match self {
            // Transparent wrappers: the wrapped error is not a link of the chain of its own.
            ServeSettingsError::Config(e) => e.hint(),
            ServeSettingsError::SharedQuota(e) => e.hint(),
            ServeSettingsError::Upstream(e) => e.hint(),
            _ => None,
        }
    }
}

/// What `larder serve` runs with: the options, and notes for the user about how flags combine.
#[derive(Debug)]
pub struct ResolvedServe {
    /// The mirror's options.
    pub options: ServeOptions,
    /// Things worth telling the user (a flag that has no effect in this combination).
    pub notes: Vec<String>,
}

/// Merge `flags` over `config.toml` and `settings` into the mirror's options; points `larder`'s
/// client at `--upstream` when given.
pub fn resolve_serve(
    larder: &mut Larder,
    settings: &Settings,
    flags: ServeFlags,
) -> Result<ResolvedServe, ServeSettingsError> {
    if let Some(upstream) = &flags.upstream {
        let mut client_settings = ClientSettings::new(upstream.clone());
        client_settings.token = settings.token.clone();
        larder.client = HubClient::new(client_settings)?;
    }
    if let Some(url) = &flags.public_url {
        url::Url::parse(url).map_err(|_| ServeSettingsError::PublicUrl(url.clone()))?;
    }
    let config = larder.config.whole()?;
    let mut options = ServeOptions::new(flags.addr);
    options.public_url = flags.public_url;
    options.pull_through = !flags.offline;
    options.policy = larder
        .config
        .policy_in(&config, flags.policy.as_deref())?
        .map(Arc::new);
    let token_set = |entries: &[String], key: &'static str| {
        TokenSet::parse(entries).map_err(|source| ServeSettingsError::Token {
            path: larder.config.path().to_owned(),
            key,
            source,
        })
    };
    options.access = AccessRules {
        tokens: token_set(&config.serve.access_tokens, "access_tokens")?,
        admin_tokens: token_set(&config.serve.admin_tokens, "admin_tokens")?,
    };
    options.jobs.apply_config(&config.daemon)?;
    if config.daemon.max_connections == Some(0) {
        return Err(ConfigValueError::new("daemon.max_connections", "must be at least 1").into());
    }
    options.max_connections = config.daemon.max_connections;
    if let Some(workers) = flags.job_workers {
        options.jobs.workers = usize::from(workers);
    }
    if let Some(rate) = flags.max_rate {
        options.jobs.rate_limit = Some(Arc::new(RateLimiter::new(rate)));
    }
    if let Some(quota) = flags.quota {
        options.jobs.quota = Some(quota);
    }
    if let Some(n) = flags.max_connections {
        options.max_connections = usize::try_from(n).ok();
    }
    let shared = larder.blobs.is_shared();
    if options.jobs.quota.is_some() && shared {
        return Err(crate::gc::GcError::SharedQuota.into());
    }
    let mut notes = Vec::new();
    if options.jobs.quota.is_some() && flags.offline {
        notes.push("--offline runs no daemon, so the quota is not enforced".to_owned());
    }
    options.redirect_to_store = flags.redirect_to_store || config.serve.redirect_to_store;
    if options.redirect_to_store && !shared {
        return Err(ServeSettingsError::NeedsSharedStore("redirect_to_store"));
    }
    options.rescan_every =
        (shared && flags.rescan_seconds > 0).then(|| Duration::from_secs(flags.rescan_seconds));
    options.xet = !flags.no_xet && config.serve.xet.unwrap_or(true);
    let key_file = flags
        .xet_key_file
        .or_else(|| config.serve.xet_key_file.clone());
    if let Some(path) = key_file {
        let secret = crate::config::read_secret_file(&path, MIN_SECRET_BYTES)?;
        options.xet_key = XetKey::from_secret(&secret);
        if !options.xet {
            notes.push("Xet is hidden (--no-xet), so the Xet key file is not used".to_owned());
        } else if shared {
            notes.push(
                "a mirror over a shared object store does not serve Xet yet, so the Xet key file \
                 is not used"
                    .to_owned(),
            );
        }
    }
    options.pull_xet = config.pull.xet.unwrap_or(true);
    for (key, value, slot) in [
        (
            "serve.idle_timeout",
            config.serve.idle_timeout,
            &mut options.client_timeouts.idle,
        ),
        (
            "serve.header_timeout",
            config.serve.header_timeout,
            &mut options.client_timeouts.head,
        ),
    ] {
        match value {
            Some(0) => {
                return Err(ConfigValueError::new(key, "must be at least 1 (seconds)").into());
            }
            Some(seconds) => *slot = Duration::from_secs(seconds),
            None => {}
        }
    }
    options.scrub_rate = match config.serve.scrub_rate.as_deref() {
        None => Some(DEFAULT_SCRUB_RATE),
        Some(text) => {
            let rate = crate::fetch::rate::parse_rate(text)
                .map_err(|why| ConfigValueError::new("serve.scrub_rate", why))?;
            (rate > 0).then_some(rate)
        }
    };
    Ok(ResolvedServe { options, notes })
}
