//! The Hub's error codes: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo, disabled.

use crate::{client, header};
use hub_standin::{Hub, RepoKind, StandIn};

async fn check(
    request: reqwest::RequestBuilder,
    status: u16,
    code: Option<&str>,
) -> reqwest::Response {
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "{}", response.url());
    assert_eq!(
        header(&response, "x-error-code"),
        code,
        "{}",
        response.url()
    );
    response
}

async fn setup() -> (StandIn, String) {
    let hub = Hub::new();
    let sha = hub
        .repo(RepoKind::Model, "acme/open")
        .file("a.txt", b"a".to_vec())
        .commit("main");
    hub.repo(RepoKind::Model, "acme/gated")
        .file("a.txt", b"a".to_vec())
        .lfs_file("w", b"w".to_vec())
        .gated("manual")
        .commit("main");
    hub.repo(RepoKind::Model, "acme/private")
        .file("a.txt", b"a".to_vec())
        .private(true)
        .commit("main");
    hub.repo(RepoKind::Model, "acme/disabled")
        .file("a.txt", b"a".to_vec())
        .disabled(true)
        .commit("main");
    hub.accept_token("acme/gated", "hf_good");
    hub.accept_token("acme/private", "hf_private");
    (StandIn::start(hub).await.unwrap(), sha)
}

#[tokio::test]
async fn repo_revision_and_entry_errors() {
    let (server, sha) = setup().await;
    let url = server.url();
    let response = check(
        client().get(format!("{url}/api/models/acme/nope")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "Repository not found"})
    );
    check(
        client()
            .get(format!("{url}/api/models/acme/nope"))
            .bearer_auth("hf_good"),
        404,
        Some("RepoNotFound"),
    )
    .await;
    check(
        client().head(format!("{url}/acme/nope/resolve/main/a.txt")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    let response = check(
        client().get(format!("{url}/api/models/acme/open/revision/nope")),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    assert_eq!(
        header(&response, "x-error-message"),
        Some("Invalid rev id: nope")
    );
    check(
        client().head(format!("{url}/acme/open/resolve/nope/a.txt")),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let response = check(
            client().request(method, format!("{url}/acme/open/resolve/main/missing.json")),
            404,
            Some("EntryNotFound"),
        )
        .await;
        assert_eq!(header(&response, "x-repo-commit"), Some(sha.as_str()));
    }
    check(
        client().get(format!("{url}/api/models/acme/open/xet-read-token/main")),
        404,
        None,
    )
    .await;
    check(client().get(format!("{url}/no/such/route")), 404, None).await;
}

#[tokio::test]
async fn gated_private_and_disabled() {
    let (server, _) = setup().await;
    let url = server.url();
    let info: serde_json::Value = client()
        .get(format!("{url}/api/models/acme/gated"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["gated"], "manual");
    let file = format!("{url}/acme/gated/resolve/main/a.txt");
    check(client().head(&file), 401, Some("GatedRepo")).await;
    check(
        client().get(&file).bearer_auth("hf_private"),
        403,
        Some("GatedRepo"),
    )
    .await;
    check(
        client().get(&file).bearer_auth("hf_other"),
        403,
        Some("GatedRepo"),
    )
    .await;
    let ok = check(client().get(&file).bearer_auth("hf_good"), 200, None).await;
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"a");
    check(
        client()
            .head(format!("{url}/acme/gated/resolve/main/w"))
            .bearer_auth("hf_good"),
        302,
        None,
    )
    .await;

    check(
        client().get(format!("{url}/api/models/acme/private")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    check(
        client()
            .get(format!("{url}/api/models/acme/private"))
            .bearer_auth("hf_good"),
        404,
        Some("RepoNotFound"),
    )
    .await;
    check(
        client().get(format!("{url}/acme/private/resolve/main/a.txt")),
        401,
        Some("RepoNotFound"),
    )
    .await;
    let info = check(
        client()
            .get(format!("{url}/api/models/acme/private"))
            .bearer_auth("hf_private"),
        200,
        None,
    )
    .await;
    assert_eq!(
        info.json::<serde_json::Value>().await.unwrap()["private"],
        true
    );
    check(
        client()
            .get(format!("{url}/acme/private/resolve/main/a.txt"))
            .bearer_auth("hf_private"),
        200,
        None,
    )
    .await;

    let disabled = check(
        client().get(format!("{url}/acme/disabled/resolve/main/a.txt")),
        403,
        None,
    )
    .await;
    assert_eq!(
        header(&disabled, "x-error-message"),
        Some("Access to this resource is disabled.")
    );
    check(
        client().get(format!("{url}/api/models/acme/disabled/tree/main")),
        403,
        None,
    )
    .await;

    server.hub().set_gated(RepoKind::Model, "acme/gated", None);
    check(client().get(&file), 200, None).await;
}
