//! Repo info, tree listing with pagination, paths-info, revision forms.

use crate::{CONFIG, blob, client, header, tiny};
use hub_standin::{Hub, RepoKind, StandIn};
use serde_json::{Value, json};

async fn get_json(url: &str) -> (u16, Value, Option<String>) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let link = header(&response, "link").map(str::to_owned);
    (status, response.json().await.unwrap(), link)
}

#[tokio::test]
async fn model_info_has_hub_fields() {
    let (server, sha) = tiny().await;
    let (status, info, _) = get_json(&format!("{}/api/models/acme/tiny", server.url())).await;
    assert_eq!(status, 200);
    assert_eq!(info["id"], "acme/tiny");
    assert_eq!(info["modelId"], "acme/tiny");
    assert_eq!(info["author"], "acme");
    assert_eq!(info["sha"], sha);
    assert_eq!(info["private"], false);
    assert_eq!(info["gated"], false);
    assert_eq!(info["disabled"], false);
    assert_eq!(info["_id"].as_str().unwrap().len(), 24);
    let date = info["lastModified"].as_str().unwrap();
    assert!(date.ends_with(".000Z") && date.len() == 24, "{date}");
    assert!(info["createdAt"].as_str().unwrap().ends_with('Z'));
    let tags: Vec<&str> = info["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"license:apache-2.0") && tags.contains(&"base_model:acme/base"),
        "{tags:?}"
    );
    assert!(tags.contains(&"text-generation"));
    assert_eq!(info["cardData"]["license"], "apache-2.0");
    let siblings = info["siblings"].as_array().unwrap();
    assert_eq!(siblings.len(), 6);
    assert!(
        siblings
            .iter()
            .all(|sibling| sibling.as_object().unwrap().len() == 1)
    );

    let (_, info, _) = get_json(&format!(
        "{}/api/models/acme/tiny/revision/main?blobs=true",
        server.url()
    ))
    .await;
    let model = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "model.safetensors")
        .unwrap();
    let entry = server
        .hub()
        .file(RepoKind::Model, "acme/tiny", "main", "model.safetensors")
        .unwrap();
    let lfs = entry.lfs.as_ref().unwrap();
    assert_eq!(model["size"], 100_000);
    assert_eq!(model["blobId"], entry.oid);
    assert_eq!(
        model["lfs"],
        json!({"sha256": lfs.sha256, "size": 100_000, "pointerSize": 131})
    );
    let config = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "config.json")
        .unwrap();
    assert_eq!(config["blobId"], hub_standin::hash::git_hash(CONFIG));
    assert!(config.get("lfs").is_none());

    let (_, info, _) = get_json(&format!(
        "{}/api/models/acme/tiny?expand=sha&expand%5B%5D=gated",
        server.url()
    ))
    .await;
    let mut keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["_id", "gated", "id", "sha"]);
}

#[tokio::test]
async fn datasets_single_segment_ids_and_double_slashes() {
    let hub = Hub::new();
    hub.repo(RepoKind::Dataset, "acme/data")
        .file("train.csv", b"a,b\n".to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "gpt2")
        .file("config.json", CONFIG.to_vec())
        .commit("main");
    let server = StandIn::start(hub).await.unwrap();
    let (status, info, _) = get_json(&format!(
        "{}/api/datasets/acme/data/revision/main",
        server.url()
    ))
    .await;
    assert_eq!(status, 200);
    assert!(info.get("modelId").is_none());
    assert_eq!(info["siblings"][0]["rfilename"], "train.csv");
    let (status, info, _) =
        get_json(&format!("{}//api/models/gpt2/revision/main", server.url())).await;
    assert_eq!(status, 200);
    assert_eq!(info["id"], "gpt2");
    assert!(info.get("author").is_none());
    let (status, tree, _) = get_json(&format!("{}/api/models/gpt2/tree/main", server.url())).await;
    assert_eq!(status, 200);
    assert_eq!(tree[0]["path"], "config.json");
    let response = client()
        .get(format!("{}//gpt2/resolve/main/config.json", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .get(format!(
            "{}/datasets/acme/data/resolve/main//train.csv",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"a,b\n");
}

#[tokio::test]
async fn revisions_encoded_or_literal_and_moving_branches() {
    let (server, main_sha) = tiny().await;
    let hub = server.hub().clone();
    let pr_sha = hub
        .repo(RepoKind::Model, "acme/tiny")
        .file("config.json", b"{}".to_vec())
        .commit("refs/pr/1");
    assert_ne!(pr_sha, main_sha);
    for rev in ["refs%2Fpr%2F1", "refs/pr/1", &pr_sha] {
        let (status, info, _) = get_json(&format!(
            "{}/api/models/acme/tiny/revision/{rev}",
            server.url()
        ))
        .await;
        assert_eq!(
            (status, info["sha"].as_str()),
            (200, Some(pr_sha.as_str())),
            "{rev}"
        );
        let response = client()
            .get(format!(
                "{}/acme/tiny/resolve/{rev}/config.json",
                server.url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-repo-commit"), Some(pr_sha.as_str()));
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"{}");
        let (status, tree, _) = get_json(&format!(
            "{}/api/models/acme/tiny/tree/{rev}/sub?recursive=true",
            server.url()
        ))
        .await;
        assert_eq!(status, 200, "{rev}");
        assert_eq!(tree.as_array().unwrap().len(), 3);
    }
    // The PR commit's parent is main's commit: unchanged files carry over.
    assert!(
        hub.file(
            RepoKind::Model,
            "acme/tiny",
            "refs/pr/1",
            "model.safetensors"
        )
        .is_some()
    );

    // Move main after start.
    let new_main = hub
        .repo(RepoKind::Model, "acme/tiny")
        .remove("sub")
        .commit("main");
    let (_, info, _) = get_json(&format!(
        "{}/api/models/acme/tiny/revision/main",
        server.url()
    ))
    .await;
    assert_eq!(info["sha"], new_main);
    assert_eq!(info["siblings"].as_array().unwrap().len(), 4);
    hub.set_ref(RepoKind::Model, "acme/tiny", "v1.0", &main_sha);
    let (_, info, _) = get_json(&format!(
        "{}/api/models/acme/tiny/revision/v1.0",
        server.url()
    ))
    .await;
    assert_eq!(info["sha"], main_sha);
    let (status, _, _) = get_json(&format!(
        "{}/api/models/acme/tiny/revision/{main_sha}",
        server.url()
    ))
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tree_paginates_with_absolute_link() {
    let (server, sha) = tiny().await;
    let mut url = format!(
        "{}/api/models/acme/tiny/tree/main?recursive=True&expand=false",
        server.url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page, link) = get_json(&url).await;
        assert_eq!(status, 200);
        pages += 1;
        let page = page.as_array().unwrap().clone();
        assert!(page.len() <= 3);
        seen.extend(page);
        match link {
            Some(link) => {
                assert!(
                    link.starts_with(&format!(
                        "<{}/api/models/acme/tiny/tree/main?",
                        server.url()
                    )),
                    "{link}"
                );
                assert!(
                    link.ends_with(">; rel=\"next\"") && link.contains("cursor="),
                    "{link}"
                );
                url = link[1..link.find('>').unwrap()].to_owned();
            }
            None => break,
        }
    }
    let paths: Vec<&str> = seen
        .iter()
        .map(|entry| entry["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "config.json",
            "model.safetensors",
            "sub",
            "sub-file",
            "sub/b.txt",
            "sub/deep",
            "sub/deep/c.txt",
            "with space#?.txt"
        ]
    );
    assert_eq!(pages, 3);
    let commit = server
        .hub()
        .commit(RepoKind::Model, "acme/tiny", &sha)
        .unwrap();
    let sub = seen.iter().find(|entry| entry["path"] == "sub").unwrap();
    assert_eq!(
        sub,
        &json!({"type": "directory", "oid": commit.dirs["sub"], "size": 0, "path": "sub"})
    );
    let model = seen
        .iter()
        .find(|entry| entry["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(model["type"], "file");
    assert_eq!(model["size"], 100_000);
    assert_eq!(model["lfs"]["pointerSize"], 131);
    assert!(seen.iter().all(|entry| entry.get("xetHash").is_none()));

    // Non-recursive root and sub-directory listings (Python form: sub%2Fdeep).
    server.set_page_size(1000);
    let (_, root, link) =
        get_json(&format!("{}/api/models/acme/tiny/tree/main", server.url())).await;
    assert!(link.is_none());
    assert_eq!(root.as_array().unwrap().len(), 5);
    let (_, deep, _) = get_json(&format!(
        "{}/api/models/acme/tiny/tree/main/sub%2Fdeep?recursive=1",
        server.url()
    ))
    .await;
    assert_eq!(deep[0]["path"], "sub/deep/c.txt");
    let (_, sub, _) = get_json(&format!(
        "{}/api/models/acme/tiny/tree/main/sub?expand=true",
        server.url()
    ))
    .await;
    assert_eq!(sub.as_array().unwrap().len(), 2);
    assert_eq!(sub[0]["lastCommit"]["id"], sha);

    let response = client()
        .get(format!(
            "{}/api/models/acme/tiny/tree/main/nope",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(header(&response, "x-error-code"), Some("EntryNotFound"));
    let response = client()
        .get(format!(
            "{}/api/models/acme/tiny/tree/main?cursor=zz",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn paths_info_accepts_form_and_json() {
    let (server, _) = tiny().await;
    let url = format!("{}/api/models/acme/tiny/paths-info/main", server.url());
    let form = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("paths=config.json&paths=sub&paths=missing&expand=false")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let form: Value = form.json().await.unwrap();
    assert_eq!(form.as_array().unwrap().len(), 2);
    assert_eq!(form[0]["oid"], hub_standin::hash::git_hash(CONFIG));
    assert_eq!(form[1]["type"], "directory");
    let json: Value = client()
        .post(&url)
        .json(&json!({"paths": ["model.safetensors"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json[0]["lfs"]["size"], 100_000);
    assert!(json[0].get("xetHash").is_none());
    let bad = client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn disk_backed_files_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights");
    let data = blob(3_000_000, 3);
    std::fs::write(&path, &data).unwrap();
    let hub = Hub::new();
    hub.repo(RepoKind::Model, "acme/disk")
        .file_from_disk("w.bin", &path, true)
        .commit("main");
    let server = StandIn::start(hub).await.unwrap();
    let body = reqwest::get(format!("{}/acme/disk/resolve/main/w.bin", server.url()))
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap().as_ref(), data.as_slice());
    let ranged = reqwest::Client::new()
        .get(format!("{}/acme/disk/resolve/main/w.bin", server.url()))
        .header("range", "bytes=1000000-1000009")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.bytes().await.unwrap().as_ref(),
        &data[1_000_000..1_000_010]
    );
}
