//! `$LARDER_HOME/config.toml`: settings kept with the home rather than passed as flags.
//!
//! Tables: `[policy]` (the licence policy, see `docs/licences.md`), `[serve]` (access
//! tokens of the mirror, see `docs/mirror.md`; `redirect_to_store`, see `docs/scale-out.md`),
//! `[daemon]` (limits, quota and webhook of `larder serve`, see `docs/operations.md`) and
//! `[store]` (where blobs live, see `docs/scale-out.md`).
//! Unknown keys are an error, so a misspelt table is reported instead of silently ignored.
//! A missing file is an empty config.

use std::path::{Path, PathBuf};

use larder_licence::{Catalog, Policy, PolicyError, PolicySpec};
use serde::Deserialize;

use crate::serve::access::{AccessRules, TokenEntryError, TokenSet};

/// The file name under the home directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The parsed config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The licence policy (`[policy]`).
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// Settings of `larder serve` (`[serve]`).
    #[serde(default)]
    pub serve: ServeConfig,
    /// Limits, quota and webhook of the daemon (`[daemon]`).
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Where blobs live (`[store]`).
    #[serde(default)]
    pub store: Option<crate::store::location::StoreConfig>,
}

/// `[serve]`: settings of the mirror.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// When set, only requests bearing one of these tokens may use the mirror (plain tokens or
    /// `sha256:<hex>` of them).
    #[serde(default)]
    pub access_tokens: Vec<String>,
    /// Tokens that may change state through `/v1` (jobs); when empty, only loopback clients.
    #[serde(default)]
    pub admin_tokens: Vec<String>,
    /// Redirect content downloads to presigned URLs of a shared object store.
    #[serde(default)]
    pub redirect_to_store: bool,
}

impl ServeConfig {
    /// The access rules these settings describe.
    pub fn access_rules(&self, home: &Path) -> Result<AccessRules, ConfigError> {
        let parse = |entries: &[String], key: &'static str| {
            TokenSet::parse(entries).map_err(|source| ConfigError::Token {
                path: home.join(CONFIG_FILE),
                key,
                source,
            })
        };
        Ok(AccessRules {
            tokens: parse(&self.access_tokens, "access_tokens")?,
            admin_tokens: parse(&self.admin_tokens, "admin_tokens")?,
        })
    }
}

/// `[daemon]`: settings of `larder serve` that flags override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Total upstream download rate (jobs and pull-through), e.g. `"100MB/s"` (`--max-rate`).
    pub max_rate: Option<String>,
    /// Store quota, e.g. `"2TB"` (`--quota`).
    pub quota: Option<String>,
    /// Jobs run at once (`--job-workers`).
    pub job_workers: Option<u16>,
    /// Client connections open at once; more wait (`--max-connections`).
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

/// The config file's path and text; `None` when there is none.
fn read_text(home: &Path) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let path = home.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// Only the `[store]` table of `home/config.toml` (default when absent). Other tables are not
/// looked at here, so a command that does not use them is not stopped by them.
pub fn load_store_config(home: &Path) -> Result<crate::store::location::StoreConfig, ConfigError> {
    let Some((path, text)) = read_text(home)? else {
        return Ok(Default::default());
    };
    #[derive(Deserialize)]
    struct StoreOnly {
        #[serde(default)]
        store: Option<crate::store::location::StoreConfig>,
    }
    let parsed: StoreOnly =
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?;
    Ok(parsed.store.unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_serve_tables() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(load_store_config(home.path()).unwrap(), Default::default());
        assert!(!Config::load(home.path()).unwrap().serve.redirect_to_store);
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[policy]\ndefault = \"allow\"\n[store]\nurl = \"s3://b/p\"\nregion = \"eu-west-1\"\n\
             [serve]\nredirect_to_store = true\n",
        )
        .unwrap();
        let store = load_store_config(home.path()).unwrap();
        assert_eq!(store.url.as_deref(), Some("s3://b/p"));
        assert_eq!(store.region.as_deref(), Some("eu-west-1"));
        assert!(Config::load(home.path()).unwrap().serve.redirect_to_store);
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[store]\nurll = \"s3://b\"\n",
        )
        .unwrap();
        assert!(load_store_config(home.path()).is_err());
    }
}
