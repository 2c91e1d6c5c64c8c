//! The JSON API: repo info (E1/E2), tree listing (E3), paths-info (E4), and
//! a 404 for `xet-read-token` so clients stay on plain HTTP.

use crate::context::{Incoming, Pagination, Shared};
use crate::errors::{Access, HubError, check_access};
use crate::faults::{FaultContext, Route};
use crate::hash::iso_date;
use crate::model::{Commit, FileEntry, Repo, RepoKind};
use crate::paths::encode_segment;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, header};
use serde_json::{Map, Value, json};

fn truthy(value: &str) -> bool {
    matches!(value, "true" | "True" | "TRUE" | "1")
}

fn json_response(value: &Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Dispatches one `/api/{kind}s/{repo}/…` request.
pub(crate) async fn handle(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    op: &str,
    rest: &[String],
) -> Response {
    let context = FaultContext {
        route: Route::Api,
        paths: &[],
        sha256: None,
    };
    if let Some(kind) = shared.faults.take_response_fault(&context) {
        return match HubError::hostile(&kind).await {
            Some(response) => response,
            None => HubError::injected(403, None),
        };
    }
    let result = match (op, &request.method) {
        ("", &Method::GET | &Method::HEAD) => info(shared, request, kind, repo_id, None),
        ("revision", &Method::GET | &Method::HEAD) => {
            info(shared, request, kind, repo_id, Some(rest.join("/")))
        }
        ("tree", &Method::GET | &Method::HEAD) => tree(shared, request, kind, repo_id, rest),
        ("paths-info", &Method::POST) => paths_info(shared, request, kind, repo_id, rest),
        ("xet-read-token", &Method::GET) => xet_read_token(shared, request, kind, repo_id),
        _ => Err(HubError::not_found()),
    };
    let response = result.unwrap_or_else(HubError::into_response);
    // Body faults reach the API only when armed `.on(Route::Api)` (a trickling or stalling
    // JSON answer).
    let faults = shared.faults.take_body_faults(&context);
    if faults.is_empty() {
        return response;
    }
    crate::body::with_faults(response, faults, shared.stats.clone()).await
}

/// Finds the repo and applies visibility rules; returns it under the read lock's lifetime.
fn with_repo<T>(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    access: Access,
    body: impl FnOnce(&Repo) -> Result<T, HubError>,
) -> Result<T, HubError> {
    let hub = shared.hub.read();
    let token = request.token_status(&hub, repo_id);
    let repo = hub
        .repos
        .get(&(kind, repo_id.to_owned()))
        .ok_or(HubError::repo_not_found(token))?;
    check_access(repo, token, access)?;
    body(repo)
}

fn resolve_revision(repo: &Repo, revision: &str) -> Result<std::sync::Arc<Commit>, HubError> {
    repo.resolve(revision)
        .ok_or_else(|| HubError::revision_not_found(revision))
}

fn info(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    revision: Option<String>,
) -> Result<Response, HubError> {
    let query = request.query_pairs();
    let blobs = query
        .iter()
        .any(|(key, value)| key == "blobs" && truthy(value));
    let expand: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key == "expand" || key == "expand[]")
        .map(|(_, value)| value.as_str())
        .collect();
    let access = Access {
        disabled_blocks: false,
        gate_blocks: false,
    };
    with_repo(shared, request, kind, repo_id, access, |repo| {
        let commit = match &revision {
            Some(revision) => resolve_revision(repo, revision)?,
            None => repo
                .default_commit()
                .ok_or_else(|| HubError::revision_not_found("main"))?,
        };
        let mut object = repo_info(repo, &commit, blobs);
        if !expand.is_empty() {
            object.retain(|key, _| key == "_id" || key == "id" || expand.contains(&key.as_str()));
        }
        Ok(json_response(&Value::Object(object)))
    })
}

fn repo_info(repo: &Repo, commit: &Commit, blobs: bool) -> Map<String, Value> {
    let mut tags: Vec<String> = repo.tags.clone();
    let card = repo.card.as_ref();
    let mut push = |tag: String| {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    };
    if let Some(card_tags) = card
        .and_then(|card| card.get("tags"))
        .and_then(Value::as_array)
    {
        card_tags
            .iter()
            .filter_map(Value::as_str)
            .for_each(|tag| push(tag.to_owned()));
    }
    match card.and_then(|card| card.get("base_model")) {
        Some(Value::String(model)) => push(format!("base_model:{model}")),
        Some(Value::Array(models)) => {
            models
                .iter()
                .filter_map(Value::as_str)
                .for_each(|model| push(format!("base_model:{model}")));
        }
        _ => {}
    }
    if let Some(license) = card
        .and_then(|card| card.get("license"))
        .and_then(Value::as_str)
    {
        push(format!("license:{license}"));
    }
    push("region:us".to_owned());

    let siblings: Vec<Value> = commit
        .files
        .values()
        .map(|entry| {
            if !blobs {
                return json!({ "rfilename": entry.path });
            }
            let mut sibling = json!({ "rfilename": entry.path, "blobId": entry.oid, "size": entry.size });
            if let Some(lfs) = &entry.lfs {
                sibling["lfs"] = json!({ "sha256": lfs.sha256, "size": lfs.size, "pointerSize": lfs.pointer_size });
            }
            sibling
        })
        .collect();
    let mut object = Map::new();
    object.insert("_id".into(), json!(repo.object_id));
    object.insert("id".into(), json!(repo.id));
    if repo.kind == RepoKind::Model {
        object.insert("modelId".into(), json!(repo.id));
    }
    if let Some((author, _)) = repo.id.split_once('/') {
        object.insert("author".into(), json!(author));
    }
    object.insert("sha".into(), json!(commit.sha));
    object.insert("lastModified".into(), json!(iso_date(commit.timestamp)));
    object.insert("createdAt".into(), json!(iso_date(repo.created_at)));
    object.insert("private".into(), json!(repo.private));
    object.insert(
        "gated".into(),
        repo.gated.as_ref().map_or(json!(false), |mode| json!(mode)),
    );
    object.insert("disabled".into(), json!(repo.disabled));
    object.insert("downloads".into(), json!(0));
    object.insert("likes".into(), json!(0));
    object.insert("tags".into(), json!(tags));
    if let Some(card) = card {
        object.insert("cardData".into(), card.clone());
        for key in ["library_name", "pipeline_tag"] {
            if let Some(value) = card.get(key) {
                object.insert(key.into(), value.clone());
            }
        }
    }
    object.insert(
        "usedStorage".into(),
        json!(commit.files.values().map(|entry| entry.size).sum::<u64>()),
    );
    object.insert("siblings".into(), Value::Array(siblings));
    for (key, value) in &repo.info {
        if !matches!(key.as_str(), "id" | "modelId" | "sha" | "siblings") {
            object.insert(key.clone(), value.clone());
        }
    }
    object
}

/// A tree or paths-info entry.
enum Node<'a> {
    File(&'a FileEntry),
    Directory(&'a str, &'a str),
}

impl Node<'_> {
    fn path(&self) -> &str {
        match self {
            Node::File(entry) => &entry.path,
            Node::Directory(path, _) => path,
        }
    }

    fn to_json(&self, repo: &Repo, commit: &Commit, expand: bool) -> Value {
        let mut value = match self {
            Node::File(entry) => {
                let mut value = json!({ "type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path });
                if let Some(lfs) = &entry.lfs {
                    value["lfs"] = json!({ "oid": lfs.sha256, "size": lfs.size, "pointerSize": lfs.pointer_size });
                    if let Some(xet_hash) = &lfs.xet_hash {
                        value["xetHash"] = json!(xet_hash);
                    }
                }
                value
            }
            Node::Directory(path, oid) => {
                json!({ "type": "directory", "oid": oid, "size": 0, "path": path })
            }
        };
        if expand {
            let last = last_commit(repo, commit, self);
            value["lastCommit"] =
                json!({ "id": last.sha, "title": last.title, "date": iso_date(last.timestamp) });
            if let Some(status) = repo.security.get(self.path()) {
                value["securityFileStatus"] = status.clone();
            }
        }
        value
    }
}

/// Walks parents while the entry is unchanged, to find the commit that last touched it.
fn last_commit<'a>(repo: &'a Repo, commit: &'a Commit, node: &Node<'_>) -> &'a Commit {
    let oid_in = |commit: &Commit| match node {
        Node::File(entry) => commit.files.get(&entry.path).map(|entry| entry.oid.clone()),
        Node::Directory(path, _) => commit.dirs.get(*path).cloned(),
    };
    let wanted = oid_in(commit);
    let mut current = commit;
    while let Some(parent) = current
        .parent
        .as_ref()
        .and_then(|sha| repo.commits.get(sha))
    {
        if oid_in(parent) != wanted {
            break;
        }
        current = parent;
    }
    current
}

fn lookup<'a>(commit: &'a Commit, path: &'a str) -> Option<Node<'a>> {
    if let Some(entry) = commit.files.get(path) {
        return Some(Node::File(entry));
    }
    commit
        .dirs
        .get_key_value(path)
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, oid)| Node::Directory(key, oid))
}

fn tree(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    rest: &[String],
) -> Result<Response, HubError> {
    let query = request.query_pairs();
    let recursive = query
        .iter()
        .any(|(key, value)| key == "recursive" && truthy(value));
    let expand = query
        .iter()
        .any(|(key, value)| key == "expand" && truthy(value));
    let offset = match query.iter().find(|(key, _)| key == "cursor") {
        Some((_, cursor)) => {
            decode_cursor(cursor).ok_or_else(|| HubError::bad_request("Invalid cursor"))?
        }
        None => 0,
    };
    let mut page_size = shared.settings().page_size.max(1);
    if expand {
        page_size = page_size.min(50);
    }
    let access = Access {
        disabled_blocks: true,
        gate_blocks: false,
    };
    with_repo(shared, request, kind, repo_id, access, |repo| {
        let (revision, path) = repo.split_revision(rest);
        if revision.is_empty() {
            return Err(HubError::revision_not_found(""));
        }
        let commit = resolve_revision(repo, &revision)?;
        let prefix = path.join("/");
        let nodes: Vec<Node<'_>> = if prefix.is_empty() || commit.dirs.contains_key(&prefix) {
            let mut nodes: Vec<Node<'_>> = commit
                .dirs
                .iter()
                .filter(|(dir, _)| !dir.is_empty())
                .map(|(dir, oid)| Node::Directory(dir, oid))
                .chain(commit.files.values().map(|entry| Node::File(entry)))
                .filter(|node| {
                    let path = node.path();
                    let relative = if prefix.is_empty() {
                        Some(path)
                    } else {
                        path.strip_prefix(prefix.as_str())
                            .and_then(|rest| rest.strip_prefix('/'))
                    };
                    relative.is_some_and(|relative| recursive || !relative.contains('/'))
                })
                .collect();
            nodes.sort_by(|a, b| a.path().cmp(b.path()));
            nodes
        } else if let Some(node) = lookup(&commit, &prefix) {
            vec![node]
        } else {
            return Err(HubError::entry_not_found(&prefix, &revision, &commit.sha));
        };
        let mut page: Vec<Value> = nodes
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|node| node.to_json(repo, &commit, expand))
            .collect();
        let settings = shared.settings();
        if offset == 0 {
            page.extend(settings.tree_extra.iter().cloned());
        }
        let mut response = json_response(&Value::Array(page));
        let next_offset = if offset.saturating_add(page_size) < nodes.len() {
            Some(offset + page_size)
        } else {
            match settings.pagination {
                Pagination::Honest => None,
                Pagination::EndlessEmpty => Some(offset.saturating_add(page_size)),
                Pagination::Loop => Some(0),
            }
        };
        if let Some(next_offset) = next_offset {
            let mut url = format!(
                "{}/api/{}/{}/tree/{}",
                shared.api_url,
                kind.plural(),
                repo.id,
                encode_segment(&revision)
            );
            for segment in &path {
                url.push('/');
                url.push_str(&encode_segment(segment));
            }
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in query.iter().filter(|(key, _)| key != "cursor") {
                serializer.append_pair(key, value);
            }
            serializer.append_pair("cursor", &encode_cursor(next_offset));
            let link = format!("<{url}?{}>; rel=\"next\"", serializer.finish());
            if let Ok(link) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(header::LINK, link);
            }
        }
        Ok(response)
    })
}

fn encode_cursor(offset: usize) -> String {
    hex::encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let text = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    text.strip_prefix("offset:")?.parse().ok()
}

fn paths_info(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    rest: &[String],
) -> Result<Response, HubError> {
    let is_json = request
        .header(header::CONTENT_TYPE)
        .is_some_and(|value| value.contains("json"))
        || request.body.trim_ascii_start().first() == Some(&b'{');
    let (paths, expand): (Vec<String>, bool) = if is_json {
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|_| HubError::bad_request("Invalid JSON body"))?;
        let paths = match body.get("paths") {
            Some(Value::Array(paths)) => paths
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(path)) => vec![path.clone()],
            _ => Vec::new(),
        };
        let expand = match body.get("expand") {
            Some(Value::Bool(expand)) => *expand,
            Some(Value::String(expand)) => truthy(expand),
            _ => false,
        };
        (paths, expand)
    } else {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let paths = pairs
            .iter()
            .filter(|(key, _)| key == "paths" || key == "paths[]")
            .map(|(_, value)| value.clone())
            .collect();
        let expand = pairs
            .iter()
            .any(|(key, value)| key == "expand" && truthy(value));
        (paths, expand)
    };
    let access = Access {
        disabled_blocks: true,
        gate_blocks: false,
    };
    with_repo(shared, request, kind, repo_id, access, |repo| {
        let revision = rest.join("/");
        let commit = resolve_revision(repo, &revision)?;
        let entries: Vec<Value> = paths
            .iter()
            .filter_map(|path| lookup(&commit, path.trim_matches('/')))
            .map(|node| node.to_json(repo, &commit, expand))
            .collect();
        Ok(json_response(&Value::Array(entries)))
    })
}

/// `GET /api/{type}s/{repo}/xet-read-token/{rev}`: a CAS access token, in the JSON body and in
/// headers for older clients (xet.md §1). Needs the same access as downloading.
fn xet_read_token(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
) -> Result<Response, HubError> {
    let access = Access {
        disabled_blocks: true,
        gate_blocks: true,
    };
    with_repo(shared, request, kind, repo_id, access, |_| Ok(()))?;
    let link = shared
        .xet
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .ok_or_else(HubError::not_found)?;
    let (status, headers, body) = link.token_answer();
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, crate::xet::header_value(&value));
    }
    Ok(response)
}
