//! Ctrl-C (SIGINT) and SIGTERM during `pull`, `convert`, `export` and `import`: the binary
//! stops, keeps what it can resume from, removes what it cannot, says so on one line and exits
//! 130. A pull resumed afterwards fetches only what had not landed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hub_standin::{Fault, Hub, RepoKind};
use serde_json::Value;

use crate::common::{World, cli_at, content, python, read, sha256_hex};

/// Connections of the interrupted pulls.
const CONNECTIONS: u64 = 2;
/// What one connection may have received and not yet written when the signal came: the bytes
/// in its socket, and a chunk of the stand-in's in flight. Generous; the point is that it does
/// not grow with the checkpoint interval (before, a signal lost up to ~1.5 s of transfer).
const IN_FLIGHT: u64 = 1 << 20;

/// A `larder` child whose stderr (and stdout) go to files, so it can be signalled and waited
/// for without pipes filling up.
struct Running {
    child: Child,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Running {
    fn spawn(mut command: Command, dir: &Path, name: &str) -> Running {
        let stderr = dir.join(format!("{name}.stderr"));
        let stdout = dir.join(format!("{name}.stdout"));
        let child = command
            .stderr(Stdio::from(File::create(&stderr).unwrap()))
            .stdout(Stdio::from(File::create(&stdout).unwrap()))
            .spawn()
            .expect("larder starts");
        Running {
            child,
            stderr,
            stdout,
        }
    }

    fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child's.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Wait (up to 30 s) for the exit; returns the status, stderr and stdout.
    fn wait(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "larder did not exit after the signal: {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (
            status,
            std::fs::read_to_string(&self.stderr).unwrap(),
            std::fs::read_to_string(&self.stdout).unwrap(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ready` every 5 ms for up to 60 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[track_caller]
fn assert_interrupted(status: ExitStatus, stderr: &str) {
    assert_eq!(
        status.code(),
        Some(130),
        "exit status {status:?} (a signal, if none)\n{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("interrupted: "))
        .collect();
    assert_eq!(lines.len(), 1, "one summary line:\n{stderr}");
}

/// Bytes recorded in a part's resume state.
pub(crate) fn recorded(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    Some(
        value["done"]
            .as_array()?
            .iter()
            .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
            .sum(),
    )
}

/// Pull a throttled 48 MiB file, send `signal` once the part holds 12 MiB, then resume.
/// Returns the bytes the stand-in served in all and the `interrupted` event of `--json` runs.
/// SIGKILL stands for a signal without handlers (what SIGINT did before): nothing is checked
/// of the interrupted run then.
async fn pull_interrupted_by(signal: i32, json: bool) -> (u64, Option<Value>) {
    let handled = signal != libc::SIGKILL;
    let size = 48u64 << 20;
    let hub = Hub::new();
    let bytes = content(61, size as usize);
    hub.repo(RepoKind::Model, "acme/big")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    // 2 connections x 3 MiB/s: 8 s for the whole file.
    world
        .server
        .inject(Fault::throttle(3 << 20).sha256(&sha).forever());
    let mut command = world.cli();
    command
        .args(["pull", "acme/big", "--connections", "2"])
        .env("LARDER_MIN_SEGMENT", (4u64 << 20).to_string());
    if json {
        command.arg("--json");
    }
    let logs = tempfile::tempdir().unwrap();
    let running = Running::spawn(command, logs.path(), "pull");
    let state = world.tmp_dir().join(format!("{sha}.state"));
    wait_for("12 MiB recorded in the part's state", || {
        recorded(&state).is_some_and(|done| done >= 12 << 20)
    });
    // Between two checkpoints (every second), where a signal without handlers loses most.
    tokio::time::sleep(Duration::from_millis(700)).await;
    running.signal(signal);
    let (status, stderr, stdout) = running.wait();
    if handled {
        assert_interrupted(status, &stderr);
        assert!(
            stderr.contains("run the same command to resume"),
            "{stderr}"
        );
    }
    // Let the stand-in see the closed connections before its counters are read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = world.server.stats().bytes_for_sha256(&sha);
    let kept = recorded(&state).expect("the part's state is kept");
    assert!(!world.blob_path(&sha).exists(), "nothing published");
    // What landed was written and recorded: only what was in flight is lost.
    assert!(
        !handled || first <= kept + CONNECTIONS * IN_FLIGHT,
        "served {first} bytes but only {kept} were kept"
    );
    let event = json.then(|| {
        let last = stdout.lines().last().expect("JSON events on stdout");
        let event: Value = serde_json::from_str(last).unwrap();
        assert_eq!(event["event"], "interrupted", "{stdout}");
        assert_eq!(
            event["kept"], kept,
            "the event reports what the state records"
        );
        assert_eq!(event["total"], size);
        event
    });

    // The resume is throttled too, more loosely: unthrottled, a connection whose range another
    // one takes half of has already been sent bytes past its new end (socket buffers on
    // loopback hold megabytes), which would blur what the interruption itself cost.
    world.server.faults().clear();
    world
        .server
        .inject(Fault::throttle(16 << 20).sha256(&sha).forever());
    world.ok(&["pull", "acme/big", "--connections", "2"]);
    let total = world.server.stats().bytes_for_sha256(&sha);
    let second = total - first;
    eprintln!(
        "signal {signal}: first run served {first}, kept {kept}; resume fetched {second}; \
         {total} bytes for {size} ({:.3}x)",
        total as f64 / size as f64
    );
    assert!(
        !handled || second <= size - kept + CONNECTIONS * IN_FLIGHT,
        "the resume fetched {second} bytes though {kept} of {size} were kept"
    );
    assert_eq!(read(&world.blob_path(&sha)), bytes);
    assert!(!state.exists());
    (total, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_pull_keeps_every_landed_byte() {
    let (total, _) = pull_interrupted_by(libc::SIGINT, false).await;
    assert!(total <= (48 << 20) + CONNECTIONS * IN_FLIGHT, "{total}");
}

/// What a signal without handlers costs (SIGINT before Larder handled it): the bytes since
/// the last checkpoint. Prints the resume ratio; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn baseline_kill_mid_pull() {
    pull_interrupted_by(libc::SIGKILL, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_pull_json_ends_with_an_interrupted_event() {
    pull_interrupted_by(libc::SIGTERM, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_quits_at_once_and_the_pull_still_resumes() {
    let hub = Hub::new();
    let bytes = content(62, 24 << 20);
    hub.repo(RepoKind::Model, "acme/twice")
        .lfs_file("model.safetensors", bytes.clone())
        .commit("main");
    let world = World::start(hub).await;
    let sha = sha256_hex(&bytes);
    world
        .server
        .inject(Fault::throttle(2 << 20).sha256(&sha).forever());
    let logs = tempfile::tempdir().unwrap();
    let mut command = world.cli();
    command.args(["pull", "acme/twice", "--connections", "2"]);
    let running = Running::spawn(command, logs.path(), "pull");
    let state = world.tmp_dir().join(format!("{sha}.state"));
    wait_for("bytes recorded in the part's state", || {
        recorded(&state).is_some_and(|done| done > 0)
    });
    running.signal(libc::SIGINT);
    running.signal(libc::SIGINT);
    let (status, stderr, _) = running.wait();
    assert_eq!(status.code(), Some(130), "{stderr}");
    world.server.faults().clear();
    world.ok(&["pull", "acme/twice"]);
    assert_eq!(read(&world.blob_path(&sha)), bytes);
}

#[track_caller]
fn ok(command: &mut Command) -> String {
    let output = command.output().expect("larder runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Names in `dir` (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `repo` is registered in `home`.
fn held(home: &Path, repo: &str) -> bool {
    let output = cli_at(home).args(["ls", "--json"]).output().unwrap();
    assert!(output.status.success());
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == repo)
}

#[test]
fn ctrl_c_mid_convert_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("convert/tests/py/make_model.py");
    // Large enough that a one-thread Q4_K_M conversion takes seconds in a debug build.
    let made = Command::new(python())
        .arg(script)
        .arg(&model)
        .args(["llama", "bf16", "bpe", "--hidden", "512", "--layers", "4"])
        .args(["--ff", "1536"])
        .status()
        .unwrap();
    assert!(made.success(), "make_model.py failed");
    let home = dir.path().join("home");
    ok(cli_at(&home)
        .arg("import")
        .arg(&model)
        .args(["--as", "acme/conv"]));

    let out = dir.path().join("conv.gguf");
    let convert = || {
        let mut command = cli_at(&home);
        command
            .args(["convert", "acme/conv", "--to", "gguf", "--type", "q4_k_m"])
            .args(["--threads", "1", "--out"])
            .arg(&out);
        command
    };
    let running = Running::spawn(convert(), dir.path(), "convert");
    let tmp = home.join("tmp");
    wait_for("the converter's output", || {
        names(&tmp).iter().any(|n| {
            n.starts_with("convert-") && names(&tmp.join(n)).iter().any(|f| f.ends_with(".gguf"))
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    running.signal(libc::SIGINT);
    let (status, stderr, _) = running.wait();
    assert_interrupted(status, &stderr);
    assert!(
        names(&tmp).iter().all(|n| !n.starts_with("convert-")),
        "the partial output is removed: {:?}",
        names(&tmp)
    );
    assert!(
        names(dir.path())
            .iter()
            .all(|n| !n.starts_with("conv.gguf") && !n.starts_with("conv.larder")),
        "no --out file: {:?}",
        names(dir.path())
    );
    assert!(!held(&home, "acme/conv-GGUF"), "nothing registered");

    ok(&mut convert());
    assert!(out.is_file());
    assert!(held(&home, "acme/conv-GGUF"));
}

/// A folder of `count` distinct files of `size` bytes (sparse: cheap to make, real to copy).
fn sparse_folder(dir: &Path, count: usize, size: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let path = dir.join(format!("shard-{i:02}.bin"));
        std::fs::write(&path, format!("shard {i}")).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size)
            .unwrap();
    }
}

/// Interrupted `import --as`, `export` and `import` of a bundle: each exits 130 and leaves
/// nothing that looks complete (no registered revision, no manifest, no part), and running the
/// same command again finishes the job.
#[test]
fn interrupted_import_and_export_leave_nothing_complete_looking() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    // 1 GiB: a second or more to copy and hash, so the signal lands mid-way.
    sparse_folder(&folder, 32, 32 << 20);
    let home = dir.path().join("home");
    let tmp = home.join("tmp");

    // A plain folder, SIGTERM while its files are copied into the store.
    let import_folder = || {
        let mut command = cli_at(&home);
        command
            .arg("import")
            .arg(&folder)
            .args(["--as", "acme/blobs"]);
        command
    };
    let running = Running::spawn(import_folder(), dir.path(), "import-folder");
    wait_for("a file being copied", || {
        names(&tmp).iter().any(|n| n.starts_with("folder-"))
    });
    running.signal(libc::SIGTERM);
    let (status, stderr, _) = running.wait();
    assert_interrupted(status, &stderr);
    assert!(
        names(&tmp).iter().all(|n| !n.starts_with("folder-")),
        "{:?}",
        names(&tmp)
    );
    assert!(!held(&home, "acme/blobs"), "nothing registered");
    ok(&mut import_folder());
    assert!(held(&home, "acme/blobs"));

    // Export to another filesystem, so blobs are copied rather than hard-linked.
    let shm = Path::new("/dev/shm");
    assert!(shm.is_dir(), "this test needs /dev/shm (tmpfs)");
    let target = tempfile::tempdir_in(shm).unwrap();
    let bundle = target.path().join("bundle");
    let export = || {
        let mut command = cli_at(&home);
        command
            .args(["export", "acme/blobs", "--json", "--to"])
            .arg(&bundle);
        command
    };
    let running = Running::spawn(export(), dir.path(), "export");
    let blobs = bundle.join("blobs");
    wait_for("a blob being exported", || !names(&blobs).is_empty());
    running.signal(libc::SIGINT);
    let (status, stderr, stdout) = running.wait();
    assert_interrupted(status, &stderr);
    let event: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(event["event"], "interrupted");
    assert_eq!(event["total"], 32u64 << 25);
    assert!(!bundle.join("manifest.json").exists(), "no manifest yet");
    let left = names(&blobs);
    assert!(
        left.iter().all(|n| !n.starts_with('.')),
        "no temporary copy left: {left:?}"
    );
    assert!(left.len() < 32, "interrupted before the end: {left:?}");
    let resumed = ok(&mut export());
    assert!(bundle.join("manifest.json").is_file(), "{resumed}");

    // The bundle into a second home, SIGINT while its blobs are verified.
    let home2 = dir.path().join("home2");
    let tmp2 = home2.join("tmp");
    let import = || {
        let mut command = cli_at(&home2);
        command.arg("import").arg(&bundle);
        command
    };
    let running = Running::spawn(import(), dir.path(), "import");
    wait_for("a blob being verified", || {
        names(&tmp2).iter().any(|n| n.starts_with("import-"))
    });
    running.signal(libc::SIGINT);
    let (status, stderr, _) = running.wait();
    assert_interrupted(status, &stderr);
    assert!(
        names(&tmp2).iter().all(|n| !n.starts_with("import-")),
        "{:?}",
        names(&tmp2)
    );
    assert!(!held(&home2, "acme/blobs"), "nothing registered");
    ok(&mut import());
    assert!(held(&home2, "acme/blobs"));
}
