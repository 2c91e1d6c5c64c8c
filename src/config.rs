//! `$LARDER_HOME/config.toml`: settings kept with the home rather than passed as flags.
//!
//! `[policy]` is the licence policy (see `docs/licences.md`); `[daemon]` holds the limits,
//! quota and webhook of `larder serve` (see `docs/operations.md`).
//! Unknown keys are an error, so a misspelt table is reported instead of silently ignored.
//! A missing file is an empty config.

use std::path::{Path, PathBuf};

use larder_licence::{Catalog, Policy, PolicyError, PolicySpec};
use serde::Deserialize;

/// The file name under the home directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The parsed config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The licence policy (`[policy]`).
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// Limits, quota and webhook of the daemon (`[daemon]`).
    #[serde(default)]
    pub daemon: DaemonConfig,
}

/// `[daemon]`: settings of `larder serve` that flags override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Total download rate of every job, e.g. `"100MB/s"` (`--max-rate`).
    pub max_rate: Option<String>,
    /// Store quota, e.g. `"2TB"` (`--quota`).
    pub quota: Option<String>,
    /// Jobs run at once (`--job-workers`).
    pub job_workers: Option<u16>,
    /// Requests served at once; more are answered 503 (`--max-connections`).
    pub max_connections: Option<usize>,
    /// Where to POST tracking events (JSON).
    pub webhook: Option<String>,
}

/// Why the config or a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a config (unknown keys included).
    #[error("{} is not a valid Larder config", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: toml::de::Error,
    },
    /// The policy parsed but is not usable (unknown licences, contradictions, bad globs).
    #[error("the licence policy in {} is invalid", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: PolicyError,
    },
}

/// A config value that parsed as TOML but is not usable.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {reason}")]
pub struct ConfigValueError {
    /// The key, e.g. `daemon.quota`.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl ConfigValueError {
    /// An error about `key`.
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        ConfigValueError {
            key,
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Load `home/config.toml`; a missing file is the default config.
    pub fn load(home: &Path) -> Result<Config, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }
}

/// The policy in force: `--policy FILE` if given, else `[policy]` of `home/config.toml`,
/// else none.
pub fn load_policy(home: &Path, file: Option<&Path>) -> Result<Option<Policy>, ConfigError> {
    let catalog = Catalog::builtin();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        return Policy::from_toml_with(&text, catalog)
            .map(Some)
            .map_err(|source| ConfigError::Policy {
                path: path.to_owned(),
                source,
            });
    }
    let Some(spec) = Config::load(home)?.policy else {
        return Ok(None);
    };
    Policy::from_spec(&spec, catalog)
        .map(Some)
        .map_err(|source| ConfigError::Policy {
            path: home.join(CONFIG_FILE),
            source,
        })
}
