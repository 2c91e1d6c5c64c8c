//! A full disk stops the pull with a clear error, keeps the parts, and leaves the store and
//! registry consistent; with space freed, the next pull resumes.

use std::process::Command;

use hub_standin::{Hub, RepoKind};
use larder::Larder;
use larder::failure::FailureKind;
use larder::registry::JobState;

use crate::common::{World, content, options, pull_with, read, sha256_hex};

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A registry connection may close a moment after its last user: retry, then detach the
        // mount lazily rather than leave it behind.
        for _ in 0..20 {
            let quiet = Command::new("umount")
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status();
            if quiet.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`, or `None` where that is not allowed (needs root) —
    /// said loudly, and refused under CI, which must exercise it.
    fn mount(dir: &std::path::Path, size: &str, test: &str) -> Option<Tmpfs> {
        let mounted = std::fs::create_dir_all(dir).is_ok()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs here");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a tmpfs for {test}"
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }

    /// Grows the filesystem: space freed.
    fn grow(&self, size: &str) {
        let grown = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(grown.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_stops_cleanly_and_resumes() {
    let hub = Hub::new();
    // Fetched largest first: `big` fits, then `small` runs out of space.
    let small = content(51, 3 << 20);
    let big = content(52, 4 << 20);
    hub.repo(RepoKind::Model, "acme/fat")
        .lfs_file("a.safetensors", small.clone())
        .lfs_file("b.safetensors", big.clone())
        .commit("main");
    let world = World::start(hub).await;
    let home = world.home.path().join("small-disk");
    let Some(disk) = Tmpfs::mount(&home, "6m", "full_disk_stops_cleanly_and_resumes") else {
        return;
    };
    let mut settings = world.settings(None);
    settings.home = home.clone();
    let larder = Larder::open(&settings).unwrap();
    let mut opts = options("acme/fat", "main");
    opts.max_files = 1;
    let error = pull_with(&larder, &opts).await.0.unwrap_err();
    assert!(error.is_disk_full(), "{error:#}");
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(
        chain.contains("a.safetensors") && chain.contains("no space left"),
        "{chain}"
    );
    // Consistent: nothing recorded for the commit, no partial blob published.
    assert!(larder.registry.list_repos().await.unwrap().is_empty());
    for blob in larder.registry.blobs().await.unwrap() {
        assert!(larder.local.has(&blob.sha256), "row without blob");
    }
    assert!(larder.local.has(&sha256_hex(&big)));
    assert!(!larder.local.has(&sha256_hex(&small)));
    let parts: Vec<_> = std::fs::read_dir(home.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert_eq!(parts.len(), 1, "the interrupted part is kept");

    // Free space (grow the filesystem) and pull again.
    disk.grow("32m");
    pull_with(&larder, &opts)
        .await
        .0
        .expect("resumes once there is space");
    assert_eq!(read(&larder.local.blob_path(&sha256_hex(&small))), small);
    assert_eq!(read(&larder.local.blob_path(&sha256_hex(&big))), big);
}

/// A conversion that runs out of space fails with the reason, registers nothing and leaves no
/// output behind; with space freed, the same command succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_on_a_full_disk_fails_cleanly() {
    let model_dir = tempfile::tempdir().unwrap();
    let files = crate::convert::tiny_llama(model_dir.path());
    let hub = Hub::new();
    crate::convert::with_files(hub.repo(RepoKind::Model, "acme/tiny"), &files).commit("main");
    let world = World::start(hub).await;
    let home = world.home.path().join("small-disk");
    // The BF16 checkpoint is about 2.6 MiB; as an F32 GGUF it needs about twice that.
    let Some(disk) = Tmpfs::mount(&home, "6m", "convert_on_a_full_disk_fails_cleanly") else {
        return;
    };
    let cli = |args: &[&str]| {
        world
            .cli()
            .env("LARDER_HOME", &home)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(cli(&["pull", "acme/tiny"]).status.success());
    let convert = ["convert", "acme/tiny", "--to", "gguf", "--type", "f32"];
    let failed = cli(&convert);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    let listed = String::from_utf8_lossy(&cli(&["ls"]).stdout).into_owned();
    assert!(!listed.contains("acme/tiny-GGUF"), "{listed}");
    let leftovers: Vec<_> = std::fs::read_dir(home.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("convert-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    disk.grow("32m");
    let converted = cli(&convert);
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let listed = String::from_utf8_lossy(&cli(&["ls"]).stdout).into_owned();
    assert!(listed.contains("acme/tiny-GGUF"), "{listed}");
    let verify = cli(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_job_on_a_full_disk_exits_4_like_a_local_pull() {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/fat")
        .lfs_file("a.safetensors", content(53, 3 << 20))
        .lfs_file("b.safetensors", content(54, 4 << 20))
        .commit("main");
    let world = World::start(hub).await;
    // The whole home, store and registry, on a disk too small for the repo (the default layout,
    // where the daemon cannot even record that the job failed until there is room).
    let Some(disk) = Tmpfs::mount(
        world.home.path(),
        "6m",
        "a_daemon_job_on_a_full_disk_exits_4_like_a_local_pull",
    ) else {
        return;
    };
    let mirror = crate::daemon_jobs::daemon(&world).await;
    let remote = world
        .cli()
        .args(["pull", "--daemon", &mirror.url(), "acme/fat"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&remote.stderr);
    assert_eq!(remote.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("failed (disk_full)"), "{stderr}");
    assert!(stderr.contains("no space left"), "{stderr}");
    let view = crate::daemon_jobs::job(&mirror, 1).await;
    assert_eq!(view.error_kind, Some(FailureKind::DiskFull), "{view:?}");

    let local = world.cli().args(["pull", "acme/fat"]).output().unwrap();
    assert_eq!(
        local.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );

    // With room again, the daemon records how the job ended.
    disk.grow("32m");
    let larder = world.larder();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let job = larder.registry.job(1).await.unwrap().unwrap();
        if job.state == JobState::Failed {
            assert_eq!(job.error_kind.as_deref(), Some("disk_full"), "{job:?}");
            assert!(
                job.error.unwrap_or_default().contains("no space left"),
                "the recorded reason"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the end of the job was never recorded: {job:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(larder);
    mirror.stop().await.unwrap();
}
