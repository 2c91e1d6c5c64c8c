//! The mirror speaks Xet (`../shared/docs/xet.md`): it advertises Xet for the files it can serve
//! that way, hands out its own CAS read tokens, and answers the CAS read API from its store, so
//! that Xet clients (huggingface_hub with hf_xet, hf-hub 1.x, a downstream Larder) stay on the
//! mirror for every file size.
//!
//! - **Advertising** ([`advertise`], [`add_xet_hashes`]): an LFS file whose Xet hash is known
//!   (computed from the held bytes, or listed by the upstream for content not fetched yet) gets
//!   `X-Xet-Hash`, `Link: <token route>; rel="xet-auth"` and `X-Xet-Refresh-Route` on resolve,
//!   and `xetHash` in tree and paths-info entries.
//! - **Tokens** ([`read_token`]): `xet-read-token` runs the same checks as a download of the
//!   commit's files (access token, gate checked upstream, licence policy, disabled repos) and
//!   returns a token scoped to that commit ([`grant`]), with the mirror as `casUrl`.
//! - **Reconstructions** ([`reconstruction`]): `GET /v1/reconstructions/{hash}` (with `Range`)
//!   for a file of the token's commit. The terms name the mirror's own content-defined xorbs over
//!   the blob ([`crate::xet::layout`]), so unchanged chunks of a new revision reference the same
//!   xorbs as the old one. `/v2/reconstructions` answers 404, on which clients use v1. A file the
//!   mirror lists but does not hold is fetched first (pull-through, single-flight with plain
//!   downloads of it) and answered once verified.
//! - **Xorb ranges** ([`xorb`]): signed, expiring URLs; the bytes are chunk headers computed
//!   from the chunk index and slices of the verified blob.
//! - **Backfill** ([`backfill`]): held LFS blobs without a chunk index get one in the
//!   background.

pub mod backfill;
pub mod grant;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::body::{FileSlice, Segments};
use super::cache::{RepoItemKey, TtlCache};
use super::errors::{ServeError, internal};
use super::integrity::Checked;
use super::paths::{RevisionTail, UrlRepoType};
use super::range::{RangeAnswer, parse_range};
use super::{AccessNote, Mirror, Target, noted};
use crate::registry::{CommitDetail, CommitId, FileRow, Sha256};
use crate::xet::layout::{BlobLayout, Piece};
use grant::{GrantError, ReadGrant, Signer, TOKEN_TTL_SECS, XORB_URL_TTL_SECS};

/// How long a commit's map of Xet hashes is reused (hashes never change; what is known may grow).
const HASHES_TTL: Duration = Duration::from_secs(30);
/// How long a blob's layout is kept (it never changes while the blob exists).
const LAYOUT_TTL: Duration = Duration::from_secs(600);
/// Most layouts kept (a 10 GB blob's layout is ~8 MB).
const LAYOUT_CACHE_MAX: usize = 64;
/// Most commits' hash maps kept.
const HASHES_CACHE_MAX: usize = 256;
/// How long a reconstruction of a file not held yet waits for the mirror to fetch it.
const FETCH_WAIT: Duration = Duration::from_secs(3600);

/// The mirror's Xet state.
pub struct XetServe {
    signer: Signer,
    layouts: TtlCache<Sha256, Arc<BlobLayout>>,
    hashes: TtlCache<RepoItemKey, Arc<HashMap<Sha256, String>>>,
}

impl XetServe {
    /// The Xet state of a mirror signing with `key` (`None`: a key of its own).
    pub fn new(key: Option<grant::XetKey>) -> Self {
        XetServe {
            signer: key.map(Signer::from).unwrap_or_default(),
            layouts: TtlCache::new(LAYOUT_TTL, LAYOUT_CACHE_MAX),
            hashes: TtlCache::new(HASHES_TTL, HASHES_CACHE_MAX),
        }
    }
}

fn now() -> u64 {
    crate::now_unix().max(0) as u64
}

fn put(meta: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        meta.insert(HeaderName::from_static(name), value);
    }
}

/// The token route of a commit, relative to the mirror's root.
fn token_route(repo_type: UrlRepoType, repo: &str, commit: &CommitId) -> String {
    format!(
        "/api/{}/{}/xet-read-token/{}",
        repo_type.plural(),
        repo,
        commit
    )
}

/// The sha256 → Xet hash map of a commit's LFS files whose hash is known.
async fn commit_hashes(
    mirror: &Mirror,
    xet: &XetServe,
    detail: &CommitDetail,
) -> Result<Arc<HashMap<Sha256, String>>, ServeError> {
    let key = RepoItemKey::new(detail.kind, &detail.name, detail.sha);
    if let Some(found) = xet.hashes.get(&key) {
        return Ok(found);
    }
    let sha256s: Vec<Sha256> = detail
        .files
        .iter()
        .filter(|f| f.lfs)
        .filter_map(|f| f.sha256)
        .collect();
    let found = mirror
        .larder
        .registry
        .known_xet_hashes(sha256s)
        .await
        .map_err(|e| internal("reading Xet hashes failed", &e))?;
    let found = Arc::new(found);
    xet.hashes.insert(key, found.clone());
    Ok(found)
}

/// Add the Xet headers to a resolve answer for `file` of `commit`, when the mirror serves Xet
/// and knows the file's Xet hash.
pub async fn advertise(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    detail: &CommitDetail,
    file: &FileRow,
    headers: &HeaderMap,
    meta: &mut HeaderMap,
) -> Result<(), ServeError> {
    let Some(xet) = &mirror.xet else {
        return Ok(());
    };
    let Some(sha256) = file.sha256.as_deref().filter(|_| file.lfs) else {
        return Ok(());
    };
    let hashes = commit_hashes(mirror, xet, detail).await?;
    let Some(hash) = hashes.get(sha256) else {
        return Ok(());
    };
    let route = token_route(repo_type, &detail.name, &detail.sha);
    put(meta, "x-xet-hash", hash);
    put(meta, "x-xet-refresh-route", &route);
    let link = format!("<{}{route}>; rel=\"xet-auth\"", mirror.origin(headers));
    if let Ok(value) = HeaderValue::from_str(&link) {
        meta.insert(header::LINK, value);
    }
    Ok(())
}

/// Add `xetHash` to the file entries (tree or paths-info JSON) whose Xet hash is known.
pub async fn add_xet_hashes(
    mirror: &Mirror,
    detail: &CommitDetail,
    entries: &mut [Value],
) -> Result<(), ServeError> {
    let Some(xet) = &mirror.xet else {
        return Ok(());
    };
    let hashes = commit_hashes(mirror, xet, detail).await?;
    if hashes.is_empty() {
        return Ok(());
    }
    for entry in entries {
        let sha = entry
            .get("lfs")
            .and_then(|lfs| lfs.get("oid"))
            .and_then(Value::as_str);
        if let Some(hash) = sha.and_then(|sha| hashes.get(sha))
            && let Some(map) = entry.as_object_mut()
        {
            map.insert("xetHash".into(), json!(hash));
        }
    }
    Ok(())
}

/// `GET /api/{type}s/{repo}/xet-read-token/{rev}`: a CAS read token for the commit, after the
/// checks a download of its files gets.
pub async fn read_token(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let Some(xet) = &mirror.xet else {
        return Err(ServeError::NotFound);
    };
    let target = mirror.target(repo_type, repo, headers)?;
    let revision = tail.whole();
    let sha = mirror.commit_named(&target, &revision, headers).await?;
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, true).await?;
    mirror.refuse_disabled(&target)?;
    let expires = now() + TOKEN_TTL_SECS;
    let token = xet.signer.token(&ReadGrant {
        kind: target.kind,
        repo: target.repo.clone(),
        commit: sha,
        expires,
    });
    let cas_url = mirror.origin(headers);
    let mut meta = HeaderMap::new();
    put(&mut meta, "x-xet-cas-url", &cas_url);
    put(&mut meta, "x-xet-access-token", &token);
    put(&mut meta, "x-xet-token-expiration", &expires.to_string());
    put(&mut meta, "x-repo-commit", &sha);
    meta.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    let body = json!({ "accessToken": token, "exp": expires, "casUrl": cas_url });
    Ok(noted(
        (StatusCode::OK, meta, axum::Json(body)).into_response(),
        AccessNote {
            repo: repo.to_owned(),
            revision,
            path: String::new(),
        },
    ))
}

/// The read grant a CAS request carries, or 401.
fn grant_of(xet: &XetServe, headers: &HeaderMap) -> Result<ReadGrant, ServeError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(ServeError::CasUnauthorized(
            "a CAS read token is required: get one from the file's xet-read-token route".into(),
        ));
    };
    xet.signer.check_token(token, now()).map_err(|e| {
        ServeError::CasUnauthorized(match e {
            GrantError::Expired => "the CAS read token expired; refresh it".to_owned(),
            GrantError::Forged => format!("the CAS read token was refused: {e}"),
        })
    })
}

fn is_hash(text: &str) -> bool {
    crate::registry::is_lower_hex(text, 64)
}

/// `GET /v1/reconstructions/{hash}`.
pub async fn reconstruction_route(
    State(mirror): State<Arc<Mirror>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    reconstruction(&mirror, &hash, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v2/reconstructions/{hash}`: 404, on which Xet clients use v1 (the mirror's xorbs are
/// small, so v2's multi-range fetches would gain little).
pub async fn reconstruction_v2_route() -> Response {
    ServeError::NotFound.into_response()
}

/// The v1 reconstruction of `hash`, a file of the token's commit.
pub async fn reconstruction(
    mirror: &Mirror,
    hash: &str,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let Some(xet) = &mirror.xet else {
        return Err(ServeError::NotFound);
    };
    let grant = grant_of(xet, headers)?;
    if !is_hash(hash) {
        return Err(ServeError::BadRequest(format!(
            "`{hash}` is not a Xet file hash (64 lowercase hex digits)"
        )));
    }
    let target = Target {
        kind: grant.kind,
        repo: grant.repo.clone(),
    };
    mirror.refuse_disabled(&target)?;
    let detail = mirror.detail(&target, &grant.commit, headers).await?;
    let hashes = commit_hashes(mirror, xet, &detail).await?;
    let file = detail
        .files
        .iter()
        .find(|f| {
            f.lfs
                && f.sha256
                    .as_ref()
                    .and_then(|s| hashes.get(s))
                    .map(String::as_str)
                    == Some(hash)
        })
        .cloned()
        .ok_or(ServeError::NotFound)?;
    let sha256 = file.sha256.ok_or(ServeError::NotFound)?;
    let layout = held_layout(mirror, xet, &target, &detail, &file).await?;
    let size = layout.size();
    let (start, end) = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    ) {
        RangeAnswer::Full if size == 0 => {
            mirror.metrics.xet_reconstruction();
            let body = json!({"offset_into_first_range": 0, "terms": [], "fetch_info": {}});
            return Ok(axum::Json(body).into_response());
        }
        RangeAnswer::Full => (0, size - 1),
        RangeAnswer::Partial { start, end } => (start, end),
        RangeAnswer::Unsatisfiable => {
            let mut meta = HeaderMap::new();
            put(&mut meta, "content-range", &format!("bytes */{size}"));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, meta).into_response());
        }
    };
    let plan = layout.plan(start, end);
    let origin = mirror.origin(headers);
    let expires = now() + XORB_URL_TTL_SECS;
    let mut terms = Vec::with_capacity(plan.terms.len());
    let mut fetch_info: Map<String, Value> = Map::new();
    for term in &plan.terms {
        let xorb = term.xorb.hash.hex();
        terms.push(json!({
            "hash": xorb,
            "unpacked_length": term.unpacked_length,
            "range": {"start": term.start, "end": term.end},
        }));
        let query = xet
            .signer
            .xorb_query(&xorb, &sha256, term.xorb.first_chunk, expires);
        let url = format!(
            "{origin}/xet/xorbs/{xorb}/{sha256}/{}?{query}",
            term.xorb.first_chunk
        );
        let entry = json!({
            "url": url,
            "range": {"start": term.start, "end": term.end},
            "url_range": {"start": term.byte_start, "end": term.byte_end},
        });
        let list = fetch_info
            .entry(xorb)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list
            && !list.contains(&entry)
        {
            list.push(entry);
        }
    }
    mirror.metrics.xet_reconstruction();
    let body = json!({
        "offset_into_first_range": plan.offset_into_first_range,
        "terms": terms,
        "fetch_info": fetch_info,
    });
    let mut meta = HeaderMap::new();
    put(&mut meta, "x-repo-commit", &grant.commit);
    Ok(noted(
        (StatusCode::OK, meta, axum::Json(body)).into_response(),
        AccessNote {
            repo: grant.repo,
            revision: grant.commit.to_string(),
            path: file.path,
        },
    ))
}

/// The layout of `file`'s blob, fetching the file first when the mirror does not hold it.
async fn held_layout(
    mirror: &Mirror,
    xet: &XetServe,
    target: &Target,
    detail: &CommitDetail,
    file: &FileRow,
) -> Result<Arc<BlobLayout>, ServeError> {
    let Some(sha256) = file.sha256 else {
        return Err(ServeError::NotFound);
    };
    let mut held = file.held && mirror.larder.blobs.local_path(&sha256).is_some();
    if !held {
        held = matches!(
            mirror.larder.registry.file(target.kind, &target.repo, &detail.sha, &file.path).await,
            Ok(Some(row)) if row.held
        ) && mirror.larder.blobs.local_path(&sha256).is_some();
    }
    if !held {
        let Some(pull) = &mirror.pull else {
            return Err(ServeError::NotHeld {
                path: file.path.clone(),
                commit: detail.sha,
                why: "the mirror runs offline".to_owned(),
            });
        };
        let flight = pull.flight(mirror, target, &detail.sha, file).await?;
        match tokio::time::timeout(FETCH_WAIT, flight.finished()).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                return Err(ServeError::NotHeld {
                    path: file.path.clone(),
                    commit: detail.sha,
                    why: format!("fetching it from the upstream failed: {why}"),
                });
            }
            Err(_) => {
                return Err(ServeError::NotHeld {
                    path: file.path.clone(),
                    commit: detail.sha,
                    why: "fetching it from the upstream is taking too long; try again".into(),
                });
            }
        }
        mirror.forget(target.kind, &target.repo);
        xet.hashes
            .forget(|k| k.kind == target.kind && k.repo == target.repo);
    }
    let layout = layout_of(mirror, xet, &sha256).await?;
    // The upstream listed a Xet hash for this content; the bytes must agree.
    let listed = commit_hashes(mirror, xet, detail).await?;
    let computed = mirror
        .larder
        .registry
        .xet_hash(&sha256)
        .await
        .map_err(|e| internal("reading a Xet hash failed", &e))?;
    if let (Some(listed), Some(computed)) = (listed.get(&sha256), computed)
        && *listed != computed
    {
        return Err(ServeError::Upstream(format!(
            "the upstream listed Xet hash {listed} for {}, but its verified content hashes to \
             {computed}",
            file.path
        )));
    }
    Ok(layout)
}

/// A held blob's layout (its chunk index; computed and recorded if missing).
async fn layout_of(
    mirror: &Mirror,
    xet: &XetServe,
    sha256: &Sha256,
) -> Result<Arc<BlobLayout>, ServeError> {
    if let Some(layout) = xet.layouts.get(&sha256.to_owned()) {
        return Ok(layout);
    }
    let chunking = crate::xet::index::chunking_of(&mirror.larder, sha256)
        .await
        .map_err(|e| internal("reading a blob's chunk index failed", &e))?;
    let layout = Arc::new(BlobLayout::new(&chunking));
    xet.layouts.insert(sha256.to_owned(), layout.clone());
    Ok(layout)
}

/// `GET /xet/xorbs/{xorb}/{blob}/{first_chunk}?exp=&sig=` with `Range`: bytes of a mirror xorb.
pub async fn xorb_route(
    State(mirror): State<Arc<Mirror>>,
    Path((xorb, blob, first)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    xorb_range(
        &mirror,
        &xorb,
        &blob,
        &first,
        query.as_deref().unwrap_or(""),
        &headers,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

async fn xorb_range(
    mirror: &Mirror,
    xorb_hex: &str,
    blob: &str,
    first: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let Some(xet) = &mirror.xet else {
        return Err(ServeError::NotFound);
    };
    let first_chunk: u32 = first
        .parse()
        .map_err(|_| ServeError::XorbUrlRefused("malformed xorb URL".into()))?;
    let (true, Ok(blob)) = (is_hash(xorb_hex), Sha256::parse(blob)) else {
        return Err(ServeError::XorbUrlRefused("malformed xorb URL".into()));
    };
    let blob = &blob;
    xet.signer
        .check_xorb(xorb_hex, blob, first_chunk, query, now())
        .map_err(|e| ServeError::XorbUrlRefused(format!("xorb URL refused: {e}")))?;
    let Some(path) = mirror.larder.blobs.local_path(blob) else {
        return Err(ServeError::NotFound);
    };
    // No xorb byte leaves from a blob file changed since it was last hashed (integrity.rs).
    match mirror.integrity.verified(&mirror.larder, blob, &path).await {
        Checked::Good => {}
        Checked::Damaged => {
            return Err(ServeError::XorbNotHeld {
                xorb: xorb_hex.to_owned(),
                why: "the held copy was damaged and has been quarantined".to_owned(),
            });
        }
        Checked::Unreadable(why) => {
            return Err(ServeError::XorbNotHeld {
                xorb: xorb_hex.to_owned(),
                why: format!("the held copy could not be read: {why}"),
            });
        }
    }
    let layout = layout_of(mirror, xet, blob).await?;
    let hash = crate::xet::parse_hash(xorb_hex).map_err(|_| ServeError::NotFound)?;
    let xorb = layout
        .xorb_at(first_chunk, &hash)
        .ok_or(ServeError::NotFound)?;
    let len = layout.xorb_len(&xorb);
    let mut meta = HeaderMap::new();
    meta.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    meta.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let (status, start, end) = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    ) {
        RangeAnswer::Full => (StatusCode::OK, 0, len - 1),
        RangeAnswer::Partial { start, end } => {
            put(
                &mut meta,
                "content-range",
                &format!("bytes {start}-{end}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeAnswer::Unsatisfiable => {
            put(&mut meta, "content-range", &format!("bytes */{len}"));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, meta).into_response());
        }
    };
    put(&mut meta, "content-length", &(end - start + 1).to_string());
    let pieces = layout.pieces(&xorb, start, end);
    // Chunk headers from memory, chunk data as slices of the blob: sent by `sendfile` on the
    // mirror's own connections, streamed otherwise (body.rs).
    let file = std::fs::File::open(&path).map_err(|e| internal("opening a blob failed", &e))?;
    let file = Arc::new(file);
    let mut segments = Segments::new();
    for piece in pieces {
        match piece {
            Piece::Header(bytes) => segments.push_bytes(Bytes::from(bytes)),
            Piece::Blob { offset, len } => {
                segments.push_file(FileSlice::new(file.clone(), offset, len));
            }
        }
    }
    mirror.metrics.xet_bytes(end - start + 1);
    Ok(segments.into_response(status, meta))
}
