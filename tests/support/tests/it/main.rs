//! Integration tests: real HTTP over loopback against the stand-in.

mod api;
mod binary;
mod errors;
mod faults;
mod hashes;
mod resolve;

use hub_standin::{Hub, RepoKind, StandIn};

pub(crate) const CONFIG: &[u8] = br#"{"model_type":"tiny"}"#;

/// Deterministic pseudo-random bytes.
pub(crate) fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// A model repo with a config, an LFS weight file and nested directories.
pub(crate) async fn tiny() -> (StandIn, String) {
    let hub = Hub::new();
    let sha = hub
        .repo(RepoKind::Model, "acme/tiny")
        .file("config.json", CONFIG.to_vec())
        .lfs_file("model.safetensors", blob(100_000, 7))
        .file("sub/b.txt", b"x".to_vec())
        .file("sub/deep/c.txt", b"yy".to_vec())
        .file("sub-file", b"z".to_vec())
        .file("with space#?.txt", b"odd name".to_vec())
        .card(serde_json::json!({"license": "apache-2.0", "base_model": "acme/base", "tags": ["text-generation"]}))
        .commit("main");
    let server = StandIn::builder(hub).page_size(3).start().await.unwrap();
    (server, sha)
}
