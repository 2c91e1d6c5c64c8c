//! `HEAD`/`GET /{prefix}{repo}/resolve/{rev}/{path}`.
//!
//! Regular files are served directly (200/206) with the git blob oid as
//! `ETag`. LFS files get a `302` to a signed, expiring URL on the CDN
//! listener, with all download metadata on the 302 itself (hub-protocol.md
//! §1.6, §2.2): `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`, `ETag`.

use crate::body::{BodyPlan, file_response, header_value};
use crate::context::{Incoming, Shared, empty};
use crate::errors::{Access, HubError, check_access};
use crate::faults::{FaultContext, Route};
use crate::model::{FileEntry, RepoKind};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Answers one resolve request.
pub(crate) async fn handle(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    rest: &[String],
    head: bool,
) -> Response {
    if let Some(location) = canonical_redirect(shared, request, kind, repo_id) {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, header_value(&location));
        return empty(StatusCode::TEMPORARY_REDIRECT, headers);
    }
    let (entry, commit) = match locate(shared, request, kind, repo_id, rest) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let route = if head {
        Route::ResolveHead
    } else {
        Route::ResolveGet
    };
    let paths = [entry.path.clone()];
    let context = FaultContext {
        route,
        paths: &paths,
        sha256: entry.sha256(),
    };
    if let Some(kind) = shared.faults.take_response_fault(&context) {
        return match HubError::hostile(&kind).await {
            Some(response) => response,
            None => HubError::injected(403, None),
        };
    }

    let mut headers = HeaderMap::new();
    headers.insert("x-repo-commit", header_value(&commit));
    headers.insert("x-linked-size", HeaderValue::from(entry.size));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, header_value(&format!("\"{}\"", entry.oid)));
    if let Some(lfs) = &entry.lfs {
        headers.insert(
            "x-linked-etag",
            header_value(&format!("\"{}\"", lfs.sha256)),
        );
        let attached = shared
            .xet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if let (Some(xet_hash), true) = (&lfs.xet_hash, attached) {
            headers.insert("x-xet-hash", header_value(xet_hash));
            let route = format!(
                "{}/api/{}/{repo_id}/xet-read-token/{commit}",
                shared.api_url,
                kind.plural()
            );
            headers.insert(
                header::LINK,
                header_value(&format!("<{route}>; rel=\"xet-auth\"")),
            );
        }
    }
    if let Some(candidates) = request.header(header::IF_NONE_MATCH) {
        let matches = candidates.split(',').any(|candidate| {
            let candidate = candidate.trim();
            let candidate = candidate
                .strip_prefix("W/")
                .unwrap_or(candidate)
                .trim_matches('"');
            candidate == "*" || candidate == entry.etag() || candidate == entry.oid
        });
        if matches {
            return empty(StatusCode::NOT_MODIFIED, headers);
        }
    }
    if let Some(lfs) = &entry.lfs {
        let location = cdn_location(shared, &lfs.sha256);
        headers.insert(header::LOCATION, header_value(&location));
        return empty(StatusCode::FOUND, headers);
    }
    let faults = if head {
        Default::default()
    } else {
        shared.faults.take_body_faults(&context)
    };
    file_response(BodyPlan {
        entry: &entry,
        range: request.header(header::RANGE),
        if_range: request.header(header::IF_RANGE),
        head,
        faults,
        headers,
        count_paths: paths.to_vec(),
        count_sha256: None,
        stats: shared.stats.clone(),
    })
    .await
}

/// The Hub answers a repo id in the wrong case with a relative `307` to the
/// canonical path, without any ETag (hub-protocol.md §1.6).
fn canonical_redirect(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
) -> Option<String> {
    let hub = shared.hub.read();
    if hub.repos.contains_key(&(kind, repo_id.to_owned())) {
        return None;
    }
    let repo = hub
        .repos
        .values()
        .find(|repo| repo.kind == kind && repo.id.eq_ignore_ascii_case(repo_id))?;
    if repo.private && request.token_status(&hub, &repo.id) != crate::model::TokenStatus::Accepted {
        return None;
    }
    let raw: Vec<&str> = request
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let prefix = usize::from(kind != RepoKind::Model);
    let resolve_at = prefix + repo_id.split('/').count();
    let mut location = String::new();
    for segment in raw[..prefix]
        .iter()
        .copied()
        .chain([repo.id.as_str()])
        .chain(raw[resolve_at..].iter().copied())
    {
        location.push('/');
        location.push_str(segment);
    }
    if let Some(query) = &request.query {
        location.push('?');
        location.push_str(query);
    }
    Some(location)
}

/// Finds the file, applying access rules and the Hub's error precedence.
fn locate(
    shared: &Shared,
    request: &Incoming,
    kind: RepoKind,
    repo_id: &str,
    rest: &[String],
) -> Result<(Arc<FileEntry>, String), HubError> {
    let hub = shared.hub.read();
    let token = request.token_status(&hub, repo_id);
    let repo = hub
        .repos
        .get(&(kind, repo_id.to_owned()))
        .ok_or(HubError::repo_not_found(token))?;
    check_access(
        repo,
        token,
        Access {
            disabled_blocks: true,
            gate_blocks: true,
        },
    )?;
    let (revision, path) = repo.split_revision(rest);
    let commit = repo
        .resolve(&revision)
        .ok_or_else(|| HubError::revision_not_found(&revision))?;
    let path = path.join("/");
    let entry = commit
        .files
        .get(&path)
        .ok_or_else(|| HubError::entry_not_found(&path, &revision, &commit.sha))?;
    Ok((entry.clone(), commit.sha.clone()))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The signature the CDN checks: keyed by this instance's secret.
pub(crate) fn signature(secret: &str, sha256: &str, expires: u64) -> String {
    crate::hash::sha256_hex(format!("{secret}\n{sha256}\n{expires}").as_bytes())[..32].to_owned()
}

fn cdn_location(shared: &Shared, sha256: &str) -> String {
    let settings = shared.settings();
    if let Some(base) = settings.cdn_base_override {
        return format!("{base}/{sha256}");
    }
    let expires = unix_now() + settings.cdn_ttl.as_secs();
    let sig = signature(&shared.secret, sha256, expires);
    format!(
        "{}/cdn/{sha256}?expires={expires}&sig={sig}",
        shared.cdn_url
    )
}
