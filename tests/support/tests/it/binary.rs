//! The `hub-standin` binary used by benchmarks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn serves_directories_and_links_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    std::fs::write(repo.join("config.json"), b"{}").unwrap();
    let big = crate::blob(10 * 1024 * 1024, 1);
    std::fs::write(repo.join("sub/big.bin"), &big).unwrap();
    let links = dir.path().join("links");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-standin"))
        .args([
            "--port",
            "0",
            "--page-size",
            "1",
            "--cdn-base",
            "http://127.0.0.1:9/blobs",
        ])
        .arg("--repo")
        .arg(format!("model:acme/bench={}", repo.display()))
        .arg("--link-blobs-into")
        .arg(&links)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("READY ").unwrap().to_owned();
    let sha256 = hub_standin::hash::sha256_hex(&big);
    let result = async {
        let response = crate::client()
            .head(format!("{url}/acme/bench/resolve/main/sub/big.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(
            crate::header(&response, "location"),
            Some(format!("http://127.0.0.1:9/blobs/{sha256}").as_str())
        );
        let page = crate::client()
            .get(format!(
                "{url}/api/models/acme/bench/tree/main?recursive=true"
            ))
            .send()
            .await
            .unwrap();
        assert!(crate::header(&page, "link").is_some());
        let config = reqwest::get(format!("{url}/acme/bench/resolve/main/config.json"))
            .await
            .unwrap();
        assert_eq!(config.bytes().await.unwrap().as_ref(), b"{}");
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let linked = std::fs::read(links.join(&sha256)).unwrap();
    assert_eq!(linked.len(), big.len());
    result
}
