//! `$LARDER_HOME/config.toml`: settings kept with the home rather than passed as flags.
//!
//! Tables: `[policy]` (the licence policy, see `docs/licences.md`), `[serve]` (access
//! tokens of the mirror, see `docs/mirror.md`; `redirect_to_store`, see `docs/scale-out.md`),
//! `[daemon]` (limits, quota and webhook of `larder serve`, see `docs/operations.md`) and
//! `[store]` (where blobs live, see `docs/scale-out.md`).
//! Unknown keys are an error, so a misspelt table is reported instead of silently ignored.
//! A missing file is an empty config.
//!
//! The file is read once, when a home is opened ([`ConfigFile`], carried on
//! [`crate::Larder::config`]); each table is parsed where it is first needed, so a command is
//! stopped only by a table it uses. Flags are merged over it in [`crate::settings`].

use std::path::{Path, PathBuf};

use larder_licence::{Catalog, Policy, PolicyError, PolicySpec};
use serde::Deserialize;

use crate::failure::Hint;
use crate::store::location::StoreConfig;

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
    pub store: Option<StoreConfig>,
    /// Settings of `larder pull` (`[pull]`).
    #[serde(default)]
    pub pull: PullConfig,
}

/// `[pull]`: settings of pulls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Fetch files the upstream stores in Xet from its Xet storage (default true); `false` is
    /// `--no-xet` for every pull.
    pub xet: Option<bool>,
    /// Compute each file's Xet chunk index while pulling over plain HTTP (default false: a
    /// mirror indexes held blobs in the background, and `larder verify` fills the index).
    pub index_chunks: Option<bool>,
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
    /// Serve Xet to clients (default true); `false` hides it so every client uses plain HTTP
    /// (`--no-xet`).
    pub xet: Option<bool>,
    /// A file holding the secret (at least 32 bytes) that signs the mirror's Xet tokens and
    /// xorb URLs, so that every node behind one address accepts the others' (`--xet-key-file`);
    /// without it each start draws its own key.
    pub xet_key_file: Option<std::path::PathBuf>,
    /// Seconds a kept-alive client connection may sit between requests (default 75).
    pub idle_timeout: Option<u64>,
    /// Seconds a client has from the first byte of a request head to its end (default 30).
    pub header_timeout: Option<u64>,
    /// How fast the background scrub re-hashes held blobs, e.g. `"16MB/s"` (the default);
    /// `"0"` turns it off.
    pub scrub_rate: Option<String>,
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
    /// The policy parsed but is not usable (unknown licences, contradictions, bad globs).
    #[error("the licence policy in {} is invalid", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: PolicyError,
    },
    /// A file that should hold a shared secret cannot be read, or holds too little (or far too
    /// much) to be one.
    #[error("the secret file {} is unusable: {why}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Longest secret file read (a key is 32 bytes; anything far larger is the wrong file).
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The bytes of a shared-secret file (`[serve] xet_key_file`), surrounding whitespace removed:
/// at least `min` of them, and the file no larger than 4 KiB.
pub fn read_secret_file(path: &Path, min: usize) -> Result<Vec<u8>, ConfigError> {
    let unusable = |why: String| ConfigError::SecretFile {
        path: path.to_owned(),
        why,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| unusable(e.to_string()))?
        .len();
    if size > MAX_SECRET_FILE_BYTES {
        return Err(unusable(format!(
            "it has {size} bytes, more than a key file's {MAX_SECRET_FILE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let secret = bytes.trim_ascii();
    if secret.len() < min {
        return Err(unusable(format!(
            "it holds {} bytes of secret, fewer than {min}",
            secret.len()
        )));
    }
    Ok(secret.to_vec())
}

impl Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Policy {
                source: PolicyError::UnknownLicences { .. },
                ..
            } => Some(
                "use a Hub licence id (e.g. `apache-2.0`, `llama3.1`), a `license_name` value or \
                 a catalog key"
                    .to_owned(),
            ),
            ConfigError::SecretFile { .. } => Some(
                "write at least 32 random bytes into it (`openssl rand -hex 32 > FILE`) and give \
                 every mirror node behind the same address the same file"
                    .to_owned(),
            ),
            _ => None,
        }
    }
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
    /// Read and parse `home/config.toml` whole; a missing file is the default config.
    pub fn load(home: &Path) -> Result<Config, ConfigError> {
        ConfigFile::read(home)?.whole()
    }
}

/// `config.toml` as read when the home was opened: its text, parsed table by table on demand.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    /// `None` when there is no file.
    text: Option<String>,
}

impl ConfigFile {
    /// Read `home/config.toml` (a missing file reads as empty).
    pub fn read(home: &Path) -> Result<ConfigFile, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Ok(ConfigFile { path, text })
    }

    /// The file's path (whether or not it exists).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every table, checked strictly (unknown tables and keys are errors).
    pub fn whole(&self) -> Result<Config, ConfigError> {
        self.parse()
    }

    /// Only the `[pull]` table (default when absent).
    pub fn pull(&self) -> Result<PullConfig, ConfigError> {
        #[derive(Default, Deserialize)]
        struct PullOnly {
            #[serde(default)]
            pull: PullConfig,
        }
        Ok(self.parse::<PullOnly>()?.pull)
    }

    /// Only the `[store]` table (default when absent). Other tables are not looked at here, so
    /// a command that does not use them is not stopped by them.
    pub fn store(&self) -> Result<StoreConfig, ConfigError> {
        #[derive(Default, Deserialize)]
        struct StoreOnly {
            #[serde(default)]
            store: Option<StoreConfig>,
        }
        Ok(self.parse::<StoreOnly>()?.store.unwrap_or_default())
    }

    /// The policy in force: `--policy FILE` if given, else `[policy]` of the file, else none.
    pub fn policy(&self, file: Option<&Path>) -> Result<Option<Policy>, ConfigError> {
        match file {
            // The file's own `[policy]` is not looked at, so it need not parse.
            Some(_) => self.policy_in(&Config::default(), file),
            None => self.policy_in(&self.whole()?, None),
        }
    }

    /// [`ConfigFile::policy`] for a caller that already parsed the file whole.
    pub fn policy_in(
        &self,
        config: &Config,
        file: Option<&Path>,
    ) -> Result<Option<Policy>, ConfigError> {
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
        let Some(spec) = &config.policy else {
            return Ok(None);
        };
        Policy::from_spec(spec, catalog)
            .map(Some)
            .map_err(|source| ConfigError::Policy {
                path: self.path.clone(),
                source,
            })
    }

    fn parse<T: Default + serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let Some(text) = &self.text else {
            return Ok(T::default());
        };
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_serve_tables() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(
            ConfigFile::read(home.path()).unwrap().store().unwrap(),
            Default::default()
        );
        assert!(!Config::load(home.path()).unwrap().serve.redirect_to_store);
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[policy]\ndefault = \"allow\"\n[store]\nurl = \"s3://b/p\"\nregion = \"eu-west-1\"\n\
             [serve]\nredirect_to_store = true\n",
        )
        .unwrap();
        let store = ConfigFile::read(home.path()).unwrap().store().unwrap();
        assert_eq!(store.url.as_deref(), Some("s3://b/p"));
        assert_eq!(store.region.as_deref(), Some("eu-west-1"));
        assert!(Config::load(home.path()).unwrap().serve.redirect_to_store);
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "[store]\nurll = \"s3://b\"\n",
        )
        .unwrap();
        assert!(ConfigFile::read(home.path()).unwrap().store().is_err());
    }
}
