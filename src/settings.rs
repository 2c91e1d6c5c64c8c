//! Resolved settings: where the home is, which endpoint to use, which token to send.
//!
//! Precedence: command-line flag, then environment (`LARDER_HOME`, `HF_ENDPOINT`, `HF_TOKEN`),
//! then files (`$HF_TOKEN_PATH` or `$HF_HOME/token`), then defaults.

use std::env;
use std::path::{Path, PathBuf};

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
