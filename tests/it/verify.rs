//! `larder verify` finds and quarantines damaged blobs; the next pull repairs them.

use std::os::unix::fs::PermissionsExt;

use hub_standin::{Hub, RepoKind};

use crate::common::{World, content, read, sha256_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_quarantines_and_pull_repairs() {
    let hub = Hub::new();
    let good = content(41, 1 << 20);
    let bad = content(42, 1 << 20);
    hub.repo(RepoKind::Model, "acme/v")
        .lfs_file("a.safetensors", good.clone())
        .lfs_file("b.safetensors", bad.clone())
        .commit("main");
    let world = World::start(hub).await;
    let pulled = world.cli().args(["pull", "acme/v"]).output().unwrap();
    assert!(pulled.status.success());

    let ok = world.cli().args(["verify"]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Damage one blob behind Larder's back.
    let path = world.blob_path(&sha256_hex(&bad));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut damaged = bad.clone();
    damaged[123] ^= 1;
    std::fs::write(&path, &damaged).unwrap();

    let report = world
        .cli()
        .args(["verify", "acme/v", "--json"])
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(3));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&report.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let corrupt: Vec<_> = lines.iter().filter(|l| l["status"] == "corrupt").collect();
    assert_eq!(corrupt.len(), 1);
    assert_eq!(corrupt[0]["sha256"], sha256_hex(&bad).as_str());
    assert!(!path.exists(), "moved to quarantine");

    let show = world
        .cli()
        .args(["show", "acme/v", "--json"])
        .output()
        .unwrap();
    let detail: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let held: Vec<bool> = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["held"].as_bool().unwrap())
        .collect();
    assert_eq!(held, vec![true, false]);

    let repaired = world.cli().args(["pull", "acme/v"]).output().unwrap();
    assert!(repaired.status.success());
    assert_eq!(read(&path), bad);
    assert!(
        world
            .cli()
            .args(["verify"])
            .output()
            .unwrap()
            .status
            .success()
    );
}
