//! `$LARDER_HOME/config.toml`: settings kept with the home rather than passed as flags.
//!
//! Tables: `[policy]` (the licence policy, see `docs/licences.md`), `[store]` (where blobs
//! live) and `[serve] redirect_to_store` (both in `docs/scale-out.md`).
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
    /// Where blobs live (`[store]`).
    #[serde(default)]
    pub store: Option<crate::store::location::StoreConfig>,
    /// Mirror settings (`[serve]`).
    #[serde(default)]
    pub serve: Option<ServeConfig>,
}

/// The `[serve]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Redirect content downloads to presigned URLs of a shared object store.
    #[serde(default)]
    pub redirect_to_store: bool,
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

/// `redirect_to_store` of the `[serve]` table of `home/config.toml` (false when absent).
pub fn load_redirect_to_store(home: &Path) -> Result<bool, ConfigError> {
    let Some((path, text)) = read_text(home)? else {
        return Ok(false);
    };
    #[derive(Deserialize)]
    struct ServeOnly {
        #[serde(default)]
        serve: Option<ServeStoreKeys>,
    }
    #[derive(Deserialize)]
    struct ServeStoreKeys {
        #[serde(default)]
        redirect_to_store: bool,
    }
    let parsed: ServeOnly =
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?;
    Ok(parsed.serve.is_some_and(|s| s.redirect_to_store))
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
        assert!(!load_redirect_to_store(home.path()).unwrap());
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[policy]\ndefault = \"allow\"\n[store]\nurl = \"s3://b/p\"\nregion = \"eu-west-1\"\n\
             [serve]\nredirect_to_store = true\n",
        )
        .unwrap();
        let store = load_store_config(home.path()).unwrap();
        assert_eq!(store.url.as_deref(), Some("s3://b/p"));
        assert_eq!(store.region.as_deref(), Some("eu-west-1"));
        assert!(load_redirect_to_store(home.path()).unwrap());
        assert!(Config::load(home.path()).is_ok());
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[store]\nurll = \"s3://b\"\n",
        )
        .unwrap();
        assert!(load_store_config(home.path()).is_err());
    }
}
