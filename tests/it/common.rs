//! Shared fixtures: a Larder home in a temp dir, a stand-in Hub, deterministic content.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hub_standin::{Hub, StandIn};
use larder::Larder;
use larder::fetch::progress::PullEvent;
use larder::fetch::{PullOptions, PullSummary, pull};
use larder::hub::{RepoId, RepoType, Revision};
use larder::registry::{CommitDetail, RepoKind as Kind};
use larder::report::Reporter;
use larder::settings::Settings;

/// Deterministic pseudo-random bytes (xorshift), distinct per seed.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `larder serve` (or another long-running `larder`) as a child process, killed when dropped.
pub struct Served {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens.
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test world: a running stand-in and a Larder home.
pub struct World {
    pub server: StandIn,
    pub home: tempfile::TempDir,
}

impl World {
    pub async fn start(hub: Hub) -> World {
        let server = StandIn::builder(hub)
            .page_size(3)
            .start()
            .await
            .expect("stand-in starts");
        World {
            server,
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn settings(&self, token: Option<&str>) -> Settings {
        Settings {
            home: self.home.path().to_path_buf(),
            endpoint: self.server.url(),
            token: token.map(str::to_owned),
        }
    }

    pub fn larder(&self) -> Larder {
        Larder::open(&self.settings(None)).expect("larder opens")
    }

    pub fn larder_with_token(&self, token: &str) -> Larder {
        Larder::open(&self.settings(Some(token))).expect("larder opens")
    }

    /// [`World::larder`] whose client retries quickly (20 ms doubling to 200 ms), at most
    /// `max_retries` times, so tests of failures do not wait on real back-off.
    pub fn quick_larder(&self, max_retries: u32) -> Larder {
        let mut larder = self.larder();
        let mut settings = larder::hub::ClientSettings::new(self.server.url());
        settings.retry.base = std::time::Duration::from_millis(20);
        settings.retry.cap = std::time::Duration::from_millis(200);
        settings.retry.max_retries = max_retries;
        larder.client = larder::hub::HubClient::new(settings).expect("client");
        larder
    }

    /// The `larder` binary with this world's home and endpoint.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
        command
            .env("LARDER_HOME", self.home.path())
            .env("HF_ENDPOINT", self.server.url())
            .env("LARDER_NO_PROGRESS", "1")
            .env_remove("HF_TOKEN")
            .env("HF_HOME", self.home.path().join("no-hf-home"));
        command
    }

    /// Run `larder ARGS` with this world's home and endpoint.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cli().args(args).output().expect("larder runs")
    }

    /// [`World::run`], asserting that it succeeded.
    pub fn ok(&self, args: &[&str]) -> std::process::Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "larder {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Wait (up to 10 s) until the blob is in the store and return its path. A pull-through
    /// client has every byte once they are verified, a moment before the blob is published.
    pub async fn published_blob(&self, sha256: &str) -> PathBuf {
        let path = self.blob_path(sha256);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "blob {sha256} was never published"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        path
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.home
            .path()
            .join("blobs/sha256")
            .join(&sha256[..2])
            .join(sha256)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.home.path().join("tmp")
    }
}

/// Options with small segments and fast retries, so faults resolve quickly.
pub fn options(repo: &str, revision: &str) -> PullOptions {
    let mut options = PullOptions::new(
        RepoType::Model,
        RepoId::parse(repo).expect("repo id"),
        Revision::parse(revision).expect("revision"),
    );
    options.transfer.min_segment = 256 << 10;
    options.transfer.max_segment = 1 << 20;
    options.transfer.retry.base = std::time::Duration::from_millis(20);
    options.transfer.retry.cap = std::time::Duration::from_millis(200);
    options
}

/// A reporter that keeps every event.
#[derive(Default, Clone)]
pub struct Recorder(pub Arc<Mutex<Vec<PullEvent>>>);

impl Reporter<PullEvent> for Recorder {
    fn report(&self, event: &PullEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<PullEvent> {
        self.0.lock().unwrap().clone()
    }
}

pub async fn pull_with(
    larder: &Larder,
    options: &PullOptions,
) -> (Result<PullSummary, larder::fetch::PullError>, Recorder) {
    let recorder = Recorder::default();
    let result = pull(larder, options, Arc::new(recorder.clone())).await;
    (result, recorder)
}

/// Read a blob's bytes from the store.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A commit id the test knows to be well formed (from the stand-in or a literal).
pub fn commit_id(text: &str) -> larder::registry::CommitId {
    larder::registry::CommitId::parse(text).unwrap()
}

/// The sha256 of `bytes`, typed as Larder keeps it (it prints and compares as its hex).
pub fn sha256_hex(bytes: &[u8]) -> larder::registry::Sha256 {
    larder::registry::Sha256::parse(&hub_standin::hash::sha256_hex(bytes)).unwrap()
}

/// The Python of the test venv (`LARDER_PYTHON`, else `<workspace>/.venv/bin/python`), with
/// huggingface_hub, gguf, tokenizers and the BOM validators. Missing is a failure, not a skip.
pub fn python() -> PathBuf {
    let path = std::env::var_os("LARDER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python venv at {}: run `.ci/setup` to create it (or set LARDER_PYTHON)",
        path.display()
    );
    path
}

/// The commit `revision` names in the registry and that commit's detail (panics when either is
/// missing).
pub async fn recorded(
    larder: &Larder,
    kind: Kind,
    repo: &str,
    revision: &str,
) -> (larder::registry::CommitId, CommitDetail) {
    let sha = larder
        .registry
        .resolve(kind, repo, revision)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{repo}@{revision} is not recorded"));
    let detail = larder
        .registry
        .commit_detail(kind, repo, &sha)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{repo}@{sha} has no detail"));
    (sha, detail)
}

/// The `larder` binary on `home` with no usable upstream (an air-gapped side; commands that
/// work on held data only).
pub fn cli_at(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
    command
        .env("LARDER_HOME", home)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("LARDER_NO_PROGRESS", "1")
        .env_remove("HF_TOKEN")
        .env("HF_HOME", home.join("no-hf-home"));
    command
}

/// `output`, asserting that its command succeeded (exit status and both streams otherwise).
#[track_caller]
pub fn succeeded(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
