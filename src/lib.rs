//! Larder: a model hub mirror and download manager.
//!
//! The library behind the `larder` binary. [`Larder`] bundles what every command needs: the
//! home directory, the content-addressed [`store`], the SQLite registry and a [`hub`] client.
//! `larder pull` is [`fetch::pull`]; the CLI in `main.rs` only parses, calls and renders.

pub mod bundle;
pub mod classify;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod failure;
pub mod fetch;
#[cfg(test)]
mod fuzzing;
pub mod gc;
pub mod hub;
pub mod interrupt;
pub mod licence;
pub mod manage;
pub mod manifest;
pub mod quota;
pub mod record;
pub mod remove;
pub mod report;
pub mod serve;
pub mod settings;
pub mod store;
pub mod units;
pub mod verify;
pub mod xet;

use std::path::PathBuf;
use std::sync::Arc;

pub use larder_registry as registry;

use hub::{ClientSettings, HubClient, HubError};
use registry::{Registry, RegistryError};
use settings::Settings;
use store::{BlobStore, LocalStore, StoreError, StoreLocation};

/// Why Larder could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store directories could not be created.
    #[error("could not open the store under {home}")]
    Store {
        /// The home directory.
        home: PathBuf,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The registry could not be opened.
    #[error("could not open the registry under {home}")]
    Registry {
        /// The home directory.
        home: PathBuf,
        /// Cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// The endpoint is unusable.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The `[store]` table of the config could not be read.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The store URL is unusable.
    #[error(transparent)]
    Location(#[from] store::location::LocationError),
}

impl failure::Hint for OpenError {
    fn hint(&self) -> Option<String> {
        match self {
            OpenError::Registry { source, .. } => source.hint(),
            OpenError::Config(source) => source.hint(),
            OpenError::Hub(source) => source.hint(),
            _ => None,
        }
    }
}

impl failure::Classify for OpenError {
    fn failure_kind(&self) -> failure::FailureKind {
        match self {
            OpenError::Store { source, .. } => source.failure_kind(),
            OpenError::Registry { source, .. } => source.failure_kind(),
            OpenError::Hub(source) => source.failure_kind(),
            OpenError::Config(_) | OpenError::Location(_) => failure::FailureKind::Invalid,
        }
    }
}

/// An opened Larder home: store, registry and upstream client.
#[derive(Clone)]
pub struct Larder {
    /// The home directory.
    pub home: PathBuf,
    /// This node's own side of the store: parts being written (`tmp/`), quarantine and the gc
    /// lock; with the default store also the blobs themselves. Read and write blobs through
    /// [`Larder::blobs`], which may be a shared bucket.
    pub local: LocalStore,
    /// The store: where blobs and manifests live (the home, a directory or a bucket).
    pub blobs: Arc<dyn BlobStore>,
    /// The registry.
    pub registry: Registry,
    /// The upstream Hub client.
    pub client: HubClient,
    /// `config.toml` of the home, read once at open.
    pub config: config::ConfigFile,
}

impl Larder {
    /// Open (creating if needed) the home described by `settings`.
    pub fn open(settings: &Settings) -> Result<Self, OpenError> {
        Self::open_with_store(settings, None)
    }

    /// [`Larder::open`] with the blobs at `store_url` (`--store`) instead of where the
    /// `[store]` table of `config.toml` (or the default, the home) puts them.
    pub fn open_with_store(
        settings: &Settings,
        store_url: Option<&str>,
    ) -> Result<Self, OpenError> {
        let home = settings.home.clone();
        let config = config::ConfigFile::read(&home)?;
        let location = StoreLocation::resolve(store_url, &config.store()?)?;
        let (local, blobs) = store::open(&home, &location).map_err(|source| OpenError::Store {
            home: home.clone(),
            source,
        })?;
        let registry =
            Registry::open(&home.join("registry.db")).map_err(|source| OpenError::Registry {
                home: home.clone(),
                source: Box::new(source),
            })?;
        let mut client_settings = ClientSettings::new(settings.endpoint.clone());
        client_settings.token = settings.token.clone();
        let client = HubClient::new(client_settings)?;
        Ok(Larder {
            home,
            local,
            blobs,
            registry,
            client,
            config,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
