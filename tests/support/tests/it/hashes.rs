//! Hash and oid formulas against the known values in hub-protocol.md §4.

use hub_standin::hash::{git_hash, lfs_pointer, lfs_pointer_oid, pointer_size, sha256_hex};
use hub_standin::{Hub, RepoKind};

#[test]
fn git_blob_oid() {
    assert_eq!(
        git_hash(b"Hello, World!"),
        "b45ef6fec89518d314f546fd6c3025367b721684"
    );
}

#[test]
fn lfs_pointer_values() {
    let sha = "f9343d7d7ec5c3d8bcced056c438fc9f1d3819e9ca3d42418a40857050e10e20";
    assert_eq!(pointer_size(22), 127);
    assert_eq!(lfs_pointer(sha, 22).len(), 127);
    assert_eq!(
        lfs_pointer_oid(sha, 22),
        "cd1c6d8bde5006076655711a49feae66f07d707e"
    );
    let whisper = "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21";
    assert_eq!(pointer_size(77_691_713), 133);
    assert_eq!(
        lfs_pointer_oid(whisper, 77_691_713),
        "d144f735b005ae8cbfa04a49e22fe40faa24dbec"
    );
}

#[test]
fn entries_and_tree_oids_match_git() {
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "a/b")
        .file("a.txt", b"Hello, World!".to_vec())
        .file("sub/b.txt", b"x".to_vec())
        .file("sub/deep/c.txt", b"yy".to_vec())
        .file("sub-file", b"z".to_vec())
        .lfs_file("w.bin", b"weights".to_vec())
        .commit("main");
    let commit = hub.commit(RepoKind::Model, "a/b", "main").unwrap();
    // Expected values from `git write-tree` (without w.bin) are checked below on a second repo.
    let lfs = hub.file(RepoKind::Model, "a/b", "main", "w.bin").unwrap();
    let info = lfs.lfs.as_ref().unwrap();
    assert_eq!(info.sha256, sha256_hex(b"weights"));
    assert_eq!(info.pointer_size, 126);
    assert_eq!(lfs.oid, lfs_pointer_oid(&info.sha256, 7));
    assert_eq!(commit.sha.len(), 40);

    let plain = Hub::new();
    plain
        .repo(RepoKind::Model, "a/b")
        .file("a.txt", b"Hello, World!".to_vec())
        .file("sub/b.txt", b"x".to_vec())
        .file("sub/deep/c.txt", b"yy".to_vec())
        .file("sub-file", b"z".to_vec())
        .commit("main");
    let commit = plain.commit(RepoKind::Model, "a/b", "main").unwrap();
    assert_eq!(commit.dirs[""], "f065195f4232fb952d5cf7f9d6ab048a1a867dac");
    assert_eq!(
        commit.dirs["sub"],
        "97744dd68ec2bb7ec69c8b724eedcd0b52667a4a"
    );
    assert_eq!(
        commit.dirs["sub/deep"],
        "488c11d24fe5ee3dcd5e0377b8477098199ea4ca"
    );
}

#[test]
fn large_files_default_to_lfs_and_disk_files_hash_by_streaming() {
    let hub = Hub::new();
    let big = vec![1u8; 10 * 1024 * 1024];
    let dir = tempfile::tempdir().unwrap();
    let on_disk = dir.path().join("blob");
    std::fs::write(&on_disk, b"Hello, World!").unwrap();
    hub.repo(RepoKind::Model, "a/b")
        .file("big.bin", big.clone())
        .file("small.bin", vec![1u8; 100])
        .file_from_disk("disk.txt", &on_disk, false)
        .file_from_disk("disk.bin", &on_disk, true)
        .commit("main");
    let big_entry = hub.file(RepoKind::Model, "a/b", "main", "big.bin").unwrap();
    assert_eq!(big_entry.lfs.as_ref().unwrap().sha256, sha256_hex(&big));
    assert!(
        hub.file(RepoKind::Model, "a/b", "main", "small.bin")
            .unwrap()
            .lfs
            .is_none()
    );
    let disk_text = hub
        .file(RepoKind::Model, "a/b", "main", "disk.txt")
        .unwrap();
    assert_eq!(disk_text.oid, "b45ef6fec89518d314f546fd6c3025367b721684");
    let disk_lfs = hub
        .file(RepoKind::Model, "a/b", "main", "disk.bin")
        .unwrap();
    assert_eq!(
        disk_lfs.lfs.as_ref().unwrap().sha256,
        sha256_hex(b"Hello, World!")
    );
}
