//! The Hub protocol over HTTP: resolve headers, every range form, error codes, revisions,
//! repo info, paths-info and tree pagination.

use super::*;

#[tokio::test]
async fn resolve_headers_on_head_and_get() {
    let f = fixture().await;
    let client = http();
    let base = f.mirror.url();
    let model = &f.files["model.safetensors"];
    let config = &f.files["config.json"];
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        // LFS file.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/model.safetensors"),
            )
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let sha = sha256_hex(model);
        assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
        assert_eq!(header(&r, "etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(
            header(&r, "x-linked-etag"),
            Some(format!("\"{sha}\"").as_str())
        );
        assert_eq!(
            header(&r, "x-linked-size"),
            Some(model.len().to_string().as_str())
        );
        assert_eq!(
            header(&r, "content-length"),
            Some(model.len().to_string().as_str())
        );
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
        let body = r.bytes().await.unwrap();
        if method == reqwest::Method::GET {
            assert_eq!(&body[..], &model[..]);
        } else {
            assert!(body.is_empty());
        }
        // Regular file: ETag is the git blob oid, no X-Linked-Etag.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/{}/config.json", f.commit),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let oid = hub_standin::hash::git_hash(config);
        assert_eq!(header(&r, "etag"), Some(format!("\"{oid}\"").as_str()));
        assert_eq!(header(&r, "x-linked-etag"), None);
        assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
        assert_eq!(
            header(&r, "content-length"),
            Some(config.len().to_string().as_str())
        );
        // Names needing percent-encoding, and an empty file.
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/weird%20name%231%2Bx.txt"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = client
            .request(
                method.clone(),
                format!("{base}/acme/tiny/resolve/main/empty.txt"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("0"));
        // Dataset prefix.
        let r = client
            .request(
                method.clone(),
                format!("{base}/datasets/acme/data/resolve/main/data/train.csv"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("8"));
    }
    // If-None-Match → 304 with the metadata.
    let sha = sha256_hex(model);
    let r = client
        .head(format!("{base}/acme/tiny/resolve/main/model.safetensors"))
        .header("if-none-match", format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
    let r = client
        .get(format!("{base}/acme/tiny/resolve/main/model.safetensors"))
        .header("if-none-match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_range_form() {
    let f = fixture().await;
    let client = http();
    let url = format!(
        "{}/acme/tiny/resolve/main/model.safetensors",
        f.mirror.url()
    );
    let model = &f.files["model.safetensors"];
    let size = model.len() as u64;
    let cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=100-".into(), 100, size - 1),
        ("bytes=100-199".into(), 100, 199),
        (format!("bytes=10-{size}"), 10, size - 1),
        (format!("bytes=10-{}", size + 5000), 10, size - 1),
        ("bytes=-500".into(), size - 500, size - 1),
        (format!("bytes=-{}", size * 2), 0, size - 1),
        (format!("bytes={}-", size - 1), size - 1, size - 1),
    ];
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        for (range, start, end) in &cases {
            let r = client
                .request(method.clone(), &url)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_plain(&r);
            assert_eq!(
                header(&r, "content-range"),
                Some(format!("bytes {start}-{end}/{size}").as_str()),
                "{range}"
            );
            assert_eq!(
                header(&r, "content-length"),
                Some((end - start + 1).to_string().as_str()),
                "{range}"
            );
            assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
            assert!(header(&r, "etag").is_some());
            let body = r.bytes().await.unwrap();
            if method == reqwest::Method::GET {
                assert_eq!(
                    &body[..],
                    &model[*start as usize..=*end as usize],
                    "{range}"
                );
            }
        }
        for range in [
            format!("bytes={size}-"),
            format!("bytes={}-{}", size + 1, size + 9),
            "bytes=-0".into(),
        ] {
            let r = client
                .request(method.clone(), &url)
                .header("range", &range)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(
                header(&r, "content-range"),
                Some(format!("bytes */{size}").as_str())
            );
        }
    }
    // A malformed range is ignored: the whole file.
    let r = client
        .get(&url)
        .header("range", "bytes=9-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len() as u64, size);
    // An empty file cannot satisfy any range.
    let empty = format!("{}/acme/tiny/resolve/main/empty.txt", f.mirror.url());
    let r = client
        .get(&empty)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, "content-range"), Some("bytes */0"));
}

/// One request of the error-code table and what the mirror must answer.
struct ErrorCase {
    method: reqwest::Method,
    /// Path after the mirror's origin.
    path: String,
    /// Sent as a bearer token.
    token: Option<&'static str>,
    status: u16,
    /// `X-Error-Code`, if any.
    code: Option<&'static str>,
    /// Text `X-Error-Message` must contain.
    message: Option<&'static str>,
    /// Whether `X-Repo-Commit` must name the held commit.
    commit: bool,
}

fn case(method: reqwest::Method, path: impl Into<String>, status: u16) -> ErrorCase {
    ErrorCase {
        method,
        path: path.into(),
        token: None,
        status,
        code: None,
        message: None,
        commit: false,
    }
}

impl ErrorCase {
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn token(mut self, token: &'static str) -> Self {
        self.token = Some(token);
        self
    }
    fn message(mut self, text: &'static str) -> Self {
        self.message = Some(text);
        self
    }
    fn with_commit(mut self) -> Self {
        self.commit = true;
        self
    }
}

#[tokio::test]
async fn error_codes() {
    use reqwest::Method;
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    let (get, head) = (Method::GET, Method::HEAD);
    let zeros = "0".repeat(40);
    let cases = vec![
        // Unknown repo: 401 anonymous, 404 with a token.
        case(get.clone(), "/acme/nope/resolve/main/x", 401).code("RepoNotFound"),
        case(head.clone(), "/acme/nope/resolve/main/x", 404)
            .code("RepoNotFound")
            .token("hf_x"),
        case(get.clone(), "/api/models/acme/nope", 401).code("RepoNotFound"),
        case(get.clone(), "/api/models/acme/nope/tree/main", 401).code("RepoNotFound"),
        case(get.clone(), "/api/spaces/acme/tiny", 401).code("RepoNotFound"),
        case(get.clone(), "/spaces/acme/tiny/resolve/main/x", 401).code("RepoNotFound"),
        // Unknown revision.
        case(head.clone(), "/acme/tiny/resolve/nobranch/config.json", 404)
            .code("RevisionNotFound")
            .message("nobranch"),
        case(get.clone(), "/api/models/acme/tiny/revision/nobranch", 404).code("RevisionNotFound"),
        case(
            get.clone(),
            format!("/api/models/acme/tiny/revision/{zeros}"),
            404,
        )
        .code("RevisionNotFound"),
        // Missing file: EntryNotFound with the commit, on HEAD and GET; a directory is not a file.
        case(head.clone(), "/acme/tiny/resolve/main/nope.json", 404)
            .code("EntryNotFound")
            .with_commit(),
        case(get.clone(), "/acme/tiny/resolve/main/nope.json", 404)
            .code("EntryNotFound")
            .with_commit(),
        case(head.clone(), "/acme/tiny/resolve/main/sub/dir", 404).code("EntryNotFound"),
        case(get.clone(), "/api/models/acme/tiny/tree/main/nope", 404).code("EntryNotFound"),
        // Gated content; offline nothing can confirm a token.
        case(
            head.clone(),
            "/acme/gated/resolve/main/model.safetensors",
            401,
        )
        .code("GatedRepo"),
        case(get.clone(), "/acme/gated/resolve/main/config.json", 401).code("GatedRepo"),
        case(get.clone(), "/acme/gated/resolve/main/config.json", 403)
            .code("GatedRepo")
            .token(TOKEN),
        // Listed but not held, offline: 503 with a message and the commit.
        case(head.clone(), "/acme/partial/resolve/main/big.bin", 503)
            .message("offline")
            .with_commit(),
        // Xet token routes with Xet off, unknown routes, undecodable paths: no error code.
        case(
            get.clone(),
            "/api/models/acme/tiny/xet-read-token/main",
            404,
        ),
        case(
            get.clone(),
            format!("/api/models/acme/tiny/xet-read-token/{}", f.commit),
            404,
        ),
        case(get.clone(), "/acme/tiny/blob/main/config.json", 404),
        case(get.clone(), "/acme/tiny/resolve/%ff/config.json", 400),
    ];
    for case in cases {
        let mut request = c.request(case.method.clone(), format!("{base}{}", case.path));
        if let Some(token) = case.token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let what = format!("{} {}", case.method, case.path);
        assert_eq!(r.status().as_u16(), case.status, "{what}");
        assert_eq!(header(&r, "x-error-code"), case.code, "{what}");
        assert_plain(&r);
        if let Some(text) = case.message {
            let message = header(&r, "x-error-message").unwrap_or_default();
            assert!(message.contains(text), "{what}: {message}");
        }
        if case.commit {
            assert!(header(&r, "x-repo-commit").is_some(), "{what}");
            if case.status != 503 {
                assert_eq!(
                    header(&r, "x-repo-commit"),
                    Some(f.commit.as_str()),
                    "{what}"
                );
            }
        }
        if case.method == get && case.code == Some("RepoNotFound") && case.token.is_none() {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], json!("Repository not found"), "{what}");
        }
    }
    // Gated metadata is public; a held file of a partly held repo is served offline.
    let r = c
        .get(format!("{base}/api/models/acme/gated/revision/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["gated"], json!("manual"));
    let r = c
        .head(format!("{base}/acme/partial/resolve/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn revisions_encoded_literal_and_by_commit() {
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    let pr_body = b"from the PR\n";
    for url in [
        format!("{base}/acme/tiny/resolve/refs%2Fpr%2F1/pr.txt"),
        format!("{base}/acme/tiny/resolve/refs/pr/1/pr.txt"),
        format!("{base}//acme/tiny/resolve/refs/pr/1/pr.txt"),
        format!("{base}/acme/tiny/resolve/{}/pr.txt", f.pr_commit),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header(&r, "x-repo-commit"),
            Some(f.pr_commit.as_str()),
            "{url}"
        );
        assert_eq!(&r.bytes().await.unwrap()[..], pr_body);
    }
    // A file in a sub-directory of refs/pr/1, literal slashes all the way.
    let r = c
        .get(format!(
            "{base}/acme/tiny/resolve/refs/pr/1/sub/dir/notes.md"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(&r.bytes().await.unwrap()[..], b"# notes\n");
    // pr.txt is not on main.
    let r = c
        .head(format!("{base}/acme/tiny/resolve/main/pr.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "x-repo-commit"), Some(f.commit.as_str()));
    for url in [
        format!("{base}/api/models/acme/tiny/revision/refs%2Fpr%2F1"),
        format!("{base}/api/models/acme/tiny/revision/refs/pr/1"),
        format!("{base}//api/models/acme/tiny/revision/{}", f.pr_commit),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["sha"],
            json!(f.pr_commit),
            "{url}"
        );
    }
    for url in [
        format!("{base}/api/models/acme/tiny/tree/refs%2Fpr%2F1/sub%2Fdir"),
        format!("{base}/api/models/acme/tiny/tree/refs/pr/1/sub/dir"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let entries: Value = r.json().await.unwrap();
        assert_eq!(entries[0]["path"], json!("sub/dir/notes.md"), "{url}");
    }
}

#[tokio::test]
async fn repo_info_shapes() {
    let f = fixture().await;
    let c = http();
    let base = f.mirror.url();
    let date_ok = |v: &Value| {
        let s = v.as_str().unwrap();
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
    };
    for url in [
        format!("{base}/api/models/acme/tiny"),
        format!("{base}/api/models/acme/tiny/revision/main"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_plain(&r);
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["id"], json!("acme/tiny"));
        assert_eq!(info["sha"], json!(f.commit));
        assert_eq!(info["private"], json!(false));
        assert_eq!(info["gated"], json!(false));
        assert_eq!(info["disabled"], json!(false));
        assert!(
            date_ok(&info["lastModified"]) && date_ok(&info["createdAt"]),
            "{info}"
        );
        let names: Vec<&str> = info["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), f.files.len());
        assert!(info["siblings"][0].get("size").is_none());
        assert!(!info.to_string().contains("xetHash"));
    }
    let info: Value = c
        .get(format!(
            "{base}/api/models/acme/tiny/revision/main?blobs=true"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let model = f.files["model.safetensors"].clone();
    let sibling = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "model.safetensors")
        .unwrap();
    assert_eq!(sibling["size"], json!(model.len()));
    assert_eq!(sibling["lfs"]["sha256"], json!(sha256_hex(&model)));
    assert_eq!(sibling["lfs"]["size"], json!(model.len()));
    assert_eq!(
        sibling["lfs"]["pointerSize"],
        json!(125 + model.len().to_string().len())
    );
    assert_eq!(
        sibling["blobId"],
        json!(hub_standin::hash::lfs_pointer_oid(
            &sha256_hex(&model),
            model.len() as u64
        ))
    );
    let config = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "config.json")
        .unwrap();
    assert_eq!(
        config["blobId"],
        json!(hub_standin::hash::git_hash(&f.files["config.json"]))
    );
    assert!(config.get("lfs").is_none());
    // expand returns only what was asked (plus id), in both spellings.
    for q in [
        "expand=sha&expand=siblings",
        "expand%5B%5D=sha&expand%5B%5D=siblings",
    ] {
        let info: Value = c
            .get(format!("{base}/api/models/acme/tiny?{q}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut keys: Vec<&String> = info.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["_id", "id", "sha", "siblings"], "{q}");
    }
    // Datasets.
    let info: Value = c
        .get(format!("{base}/api/datasets/acme/data/revision/main"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], json!("acme/data"));
    assert_eq!(info["siblings"].as_array().unwrap().len(), 2);
    // The upstream's answer for the same commit lists the same files.
    let upstream: Value = c
        .get(format!(
            "{}/api/models/acme/tiny/revision/main",
            f.world.server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        upstream["siblings"].as_array().unwrap().len(),
        f.files.len()
    );
}

#[tokio::test]
async fn paths_info_form_and_json() {
    let f = fixture().await;
    let c = http();
    let url = format!("{}/api/models/acme/tiny/paths-info/main", f.mirror.url());
    let form = c
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "paths=config.json&paths=sub%2Fdir&paths=nope.bin&paths=model.safetensors&expand=false",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let form: Value = form.json().await.unwrap();
    let json_body: Value = c
        .post(&url)
        .json(&json!({"paths": ["config.json", "sub/dir", "nope.bin", "model.safetensors"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form, json_body);
    let entries = form.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{form}");
    assert_eq!(entries[0]["type"], json!("file"));
    assert_eq!(
        entries[0]["oid"],
        json!(hub_standin::hash::git_hash(&f.files["config.json"]))
    );
    assert_eq!(entries[1]["type"], json!("directory"));
    assert_eq!(entries[1]["oid"].as_str().unwrap().len(), 40);
    assert_eq!(
        entries[2]["lfs"]["oid"],
        json!(sha256_hex(&f.files["model.safetensors"]))
    );
    assert!(!form.to_string().contains("xetHash"));
    // Directory oids are the upstream's (real git tree oids).
    let upstream: Value = c
        .get(format!(
            "{}/api/models/acme/tiny/tree/main/sub?recursive=false",
            f.world.server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upstream[0]["path"], json!("sub/dir"));
    assert_eq!(entries[1]["oid"], upstream[0]["oid"], "tree oid of sub/dir");
}

#[tokio::test]
async fn tree_of_thousands_of_files_paginates_with_absolute_links() {
    let world = World::start(Hub::new()).await;
    let larder = world.larder();
    let commit = "c".repeat(40);
    let files: Vec<FileRecord> = (0..2345)
        .map(|i| FileRecord {
            path: format!("shard{:02}/file{i:05}.bin", i % 12),
            size: i,
            git_oid: format!("{:040x}", i + 1),
            sha256: None,
            lfs: false,
        })
        .collect();
    larder
        .registry
        .record_snapshot(SnapshotRecord {
            kind: Kind::Model,
            name: "acme/huge".into(),
            upstream: world.server.url(),
            gated: None,
            private: false,
            commit: commit_id(&commit),
            card_json: None,
            refs: vec!["main".into()],
            seen_at: 1_700_000_000,
            files,
            licence: LicenceFields::default(),
        })
        .await
        .unwrap();
    for public in [None, Some("https://mirror.example.org/hf/")] {
        let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
        options.public_url = public.map(str::to_owned);
        let mirror = start(world.larder(), options).await.unwrap();
        let c = http();
        let origin = public
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| mirror.url());
        let mut url = format!(
            "{}/api/models/acme/huge/tree/main?recursive=True&expand=false",
            mirror.url()
        );
        let mut pages = 0;
        let mut seen = Vec::new();
        loop {
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let link = header(&r, "link").map(str::to_owned);
            let page: Vec<Value> = r.json().await.unwrap();
            assert!(page.len() <= 1000);
            pages += 1;
            seen.extend(
                page.into_iter()
                    .map(|e| e["path"].as_str().unwrap().to_owned()),
            );
            let Some(link) = link else { break };
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            let next = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned();
            assert!(
                next.starts_with(&format!("{origin}/api/models/acme/huge/tree/")),
                "{next}"
            );
            // Behind the proxy the Link is the public URL; follow it on the mirror.
            url = next.replacen(&origin, &mirror.url(), 1);
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 2345 + 12);
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len());
        // Non-recursive at the root lists the 12 directories, one page, no Link.
        let r = c
            .get(format!("{}/api/models/acme/huge/tree/main", mirror.url()))
            .send()
            .await
            .unwrap();
        assert!(header(&r, "link").is_none());
        assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 12);
        // Python's form: the sub-directory path percent-encoded in one segment.
        let r = c
            .get(format!(
                "{}/api/models/acme/huge/tree/{commit}/shard03?recursive=1",
                mirror.url()
            ))
            .send()
            .await
            .unwrap();
        let page: Vec<Value> = r.json().await.unwrap();
        assert_eq!(page.len(), 2345 / 12 + 1);
        mirror.stop().await.unwrap();
    }
    // The siblings list is complete too.
    let mirror = start(
        world.larder(),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let info: Value = http()
        .get(format!(
            "{}/api/models/acme/huge/revision/main",
            mirror.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["siblings"].as_array().unwrap().len(), 2345);
}
