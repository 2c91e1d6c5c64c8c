//! `HEAD`/`GET /{prefix}{repo}/resolve/{rev}/{path}`: file metadata and bytes.
//!
//! Every answer carries what clients need to name and check the file without following a
//! redirect (hub-protocol.md §2.1, §9.4): `X-Repo-Commit`, a strong quoted `ETag` (git blob sha1
//! for regular files, sha256 for LFS ones, so a cache filled here matches one filled from the
//! Hub), `X-Linked-Etag` for LFS files, `X-Linked-Size`, an exact `Content-Length` and
//! `Accept-Ranges: bytes`. Single ranges are honoured in all their forms with the end clamped;
//! `416` comes only when the start is past the end. A held blob's body is a file slice
//! ([`Segments`]): sent by `sendfile` on the mirror's connections, else streamed in large reads,
//! never buffered whole.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::body::{FileSlice, Segments};
use super::errors::{ServeError, X_REPO_COMMIT, internal};
use super::integrity::{self, Checked, Trust};
use super::paths::{RevisionTail, UrlRepoType};
use super::range::{RangeAnswer, parse_range};
use super::{AccessNote, Mirror, empty, noted};
use crate::registry::{CommitId, FileRow, Sha256};

/// How long a GET of a file being fetched waits for the first bytes before answering `200`
/// anyway (clients time out after 10 s, hub-protocol.md §5.2).
const FIRST_BYTES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether an `If-None-Match` value matches `etag` (given without quotes).
pub fn none_match(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == etag)
}

/// The quoted ETag of a file: sha256 for LFS files, the git blob oid otherwise.
pub fn etag_of(file: &FileRow) -> String {
    match (&file.sha256, file.lfs) {
        (Some(sha), true) => sha.to_string(),
        _ => file.git_oid.clone(),
    }
}

/// Where the bytes of an answer come from.
pub enum Source {
    /// A held blob with a local file.
    Blob {
        /// The file.
        path: std::path::PathBuf,
        /// Its digest.
        sha256: Sha256,
    },
    /// A held blob in a shared store without a local copy (its sha256): ranged reads.
    Store(Sha256),
    /// A transfer in flight (pull-through).
    Growing(super::pull_through::Flight),
}

/// Handle one `/resolve` request; errors are rendered here so they get the access-log note.
pub async fn handle(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ServeError> {
    let (revision, path) = tail.likely(true);
    let mut note = AccessNote {
        repo: repo.to_owned(),
        revision,
        path,
    };
    let response = match answer(mirror, repo_type, repo, tail, headers, head, &mut note).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    Ok(noted(response, note))
}

async fn answer(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
    head: bool,
    note: &mut AccessNote,
) -> Result<Response, ServeError> {
    let target = mirror.target(repo_type, repo, headers)?;
    let (revision, path, sha) = mirror.resolve_tail(&target, tail, true, headers).await?;
    note.revision.clone_from(&revision);
    note.path.clone_from(&path);
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, true).await?;
    mirror.refuse_disabled(&target)?;
    mirror.served.note(target.kind, &target.repo, &sha);
    let Ok(index) = detail
        .files
        .binary_search_by(|f| f.path.as_str().cmp(&path))
    else {
        return Err(ServeError::EntryNotFound {
            path,
            revision,
            commit: sha,
        });
    };
    let mut file = detail.files[index].clone();
    if !file.held {
        // The cached detail may predate a pull; ask the registry.
        if let Some(fresh) = mirror
            .larder
            .registry
            .file(target.kind, &target.repo, &sha, &path)
            .await
            .map_err(|e| internal("reading a file row failed", &e))?
        {
            file = fresh;
        }
    }

    let etag = etag_of(&file);
    let size = file.size;
    let mut meta = HeaderMap::new();
    let put = |meta: &mut HeaderMap, name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            meta.insert(name, v);
        }
    };
    put(&mut meta, X_REPO_COMMIT.clone(), sha.to_string());
    put(&mut meta, header::ETAG, format!("\"{etag}\""));
    if file.lfs {
        put(
            &mut meta,
            header::HeaderName::from_static("x-linked-etag"),
            format!("\"{etag}\""),
        );
    }
    put(
        &mut meta,
        header::HeaderName::from_static("x-linked-size"),
        size.to_string(),
    );
    meta.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    super::xet::advertise(mirror, repo_type, &detail, &file, headers, &mut meta).await?;

    if let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && none_match(value, &etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, meta).into_response());
    }

    let source = source_for(mirror, &target, &sha, &file).await?;

    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim_matches('"') == etag);
    let range = if if_range_ok {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
    } else {
        RangeAnswer::Full
    };
    let (status, start, len) = match range {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            put(
                &mut meta,
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{size}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            put(&mut meta, header::CONTENT_RANGE, format!("bytes */{size}"));
            put(&mut meta, header::CONTENT_LENGTH, "0".to_owned());
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, meta, empty()).into_response());
        }
    };
    put(&mut meta, header::CONTENT_LENGTH, len.to_string());
    meta.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if head {
        return Ok((status, meta, empty()).into_response());
    }
    if mirror.options.redirect_to_store
        && mirror.larder.blobs.is_shared()
        && !matches!(source, Source::Growing(_))
        && let Some(sha) = file.sha256.as_ref()
        && let Some(redirect) = redirect(mirror, sha, meta.clone()).await?
    {
        return Ok(redirect);
    }
    mirror.metrics.http_file_bytes(len);
    let body = match source {
        Source::Blob { path, sha256 } => {
            let integrity = &mirror.integrity;
            match integrity.trust(&mirror.larder, &sha256, &path).await {
                Trust::Trusted => {}
                // Changed since it was last hashed (or never stamped): a whole file is hashed
                // as it streams, a range waits for a hash of the whole (integrity.rs).
                Trust::Unchecked if start == 0 && len == size => {
                    let (larder, integrity) = (mirror.larder.clone(), integrity.clone());
                    let body = integrity::checked_body(larder, integrity, &sha256, path, size);
                    return Ok((status, meta, body).into_response());
                }
                Trust::Unchecked => {
                    match integrity.check_whole(&mirror.larder, &sha256, &path).await {
                        Checked::Good => {}
                        Checked::Damaged => {
                            return Err(ServeError::NotHeld {
                                path: file.path.clone(),
                                commit: sha,
                                why:
                                    "the held copy was damaged and has been quarantined; ask again \
                                  (a pull-through mirror fetches it anew)"
                                        .to_owned(),
                            });
                        }
                        Checked::Unreadable(why) => {
                            return Err(ServeError::NotHeld {
                                path: file.path.clone(),
                                commit: sha,
                                why: format!("the held copy could not be read: {why}"),
                            });
                        }
                    }
                }
            }
            // A slice of the held file: sent by `sendfile` on the mirror's own connections,
            // streamed otherwise (body.rs).
            let slice = FileSlice::open(&path, start, len)
                .map_err(|e| internal("opening a blob failed", &e))?;
            return Ok(Segments::from(slice).into_response(status, meta));
        }
        Source::Store(blob) => {
            let stream = mirror
                .larder
                .blobs
                .read(&blob, start..start + len)
                .await
                .map_err(|e| ServeError::NotHeld {
                    path: file.path.clone(),
                    commit: sha,
                    why: format!(
                        "reading it from the store failed: {}",
                        crate::fetch::transfer::error_chain(&e)
                    ),
                })?;
            Body::from_stream(stream)
        }
        Source::Growing(flight) => {
            if let Err(why) = flight.started(FIRST_BYTES_WAIT).await {
                return Err(ServeError::NotHeld {
                    path: file.path.clone(),
                    commit: sha,
                    why: format!("fetching it from the upstream failed: {why}"),
                });
            }
            Body::from_stream(flight.stream(start, len))
        }
    };
    Ok((status, meta, body).into_response())
}

/// The blob to serve, or the transfer that is fetching it.
async fn source_for(
    mirror: &Mirror,
    target: &super::Target,
    commit: &CommitId,
    file: &FileRow,
) -> Result<Source, ServeError> {
    if file.held
        && let Some(sha) = &file.sha256
    {
        if let Some(path) = mirror.larder.blobs.local_path(sha) {
            mirror.metrics.lookup(target.kind, true);
            return Ok(Source::Blob { path, sha256: *sha });
        }
        if mirror.larder.blobs.is_shared() {
            mirror.metrics.lookup(target.kind, true);
            return Ok(Source::Store(*sha));
        }
    }
    if !file.held
        && mirror.larder.blobs.is_shared()
        && let Some(row) = held_by_store(mirror, target, commit, &file.path).await
        && let Some(sha) = row.sha256
    {
        mirror.metrics.lookup(target.kind, true);
        return Ok(match mirror.larder.blobs.local_path(&sha) {
            Some(path) => Source::Blob { path, sha256: sha },
            None => Source::Store(sha),
        });
    }
    mirror.metrics.lookup(target.kind, false);
    match &mirror.pull {
        Some(pull) => pull
            .flight(mirror, target, commit, file)
            .await
            .map(Source::Growing),
        None => Err(ServeError::NotHeld {
            path: file.path.clone(),
            commit: commit.to_owned(),
            why: "the mirror runs offline".to_owned(),
        }),
    }
}

/// A file another node fetched into the shared store since this node recorded the revision:
/// re-read the revision's manifest and look again.
async fn held_by_store(
    mirror: &Mirror,
    target: &super::Target,
    commit: &CommitId,
    path: &str,
) -> Option<FileRow> {
    let larder = &mirror.larder;
    match crate::manifest::lookup_held_file(larder, target.kind, &target.repo, commit, path).await {
        Ok(true) => mirror.forget(target.kind, &target.repo),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(
                repo = target.repo, %commit,
                error = %crate::fetch::transfer::error_chain(&error),
                "re-reading a manifest from the store failed"
            );
        }
    }
    let row = larder
        .registry
        .file(target.kind, &target.repo, commit, path)
        .await
        .ok()
        .flatten()?;
    if row.held {
        return Some(row);
    }
    // The same content may be in the store for another revision or repo (content addressing).
    let sha = row.sha256.as_ref()?;
    if !crate::record::adopt_held_blob(larder, sha, row.size)
        .await
        .ok()?
    {
        return None;
    }
    mirror.forget(target.kind, &target.repo);
    Some(FileRow { held: true, ..row })
}

/// A `302` to a presigned URL of the blob, carrying the Hub headers of `meta` (not the body's
/// length: the redirect has none). `None` when the store cannot presign.
async fn redirect(
    mirror: &Mirror,
    sha256: &Sha256,
    mut meta: HeaderMap,
) -> Result<Option<Response>, ServeError> {
    let url = mirror
        .larder
        .blobs
        .presign(sha256, PRESIGN_TTL)
        .await
        .map_err(|e| internal("presigning a store URL failed", &e))?;
    let Some(url) = url else { return Ok(None) };
    meta.remove(header::CONTENT_RANGE);
    meta.remove(header::CONTENT_TYPE);
    meta.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        meta.insert(header::LOCATION, location);
    }
    Ok(Some((StatusCode::FOUND, meta, empty()).into_response()))
}

/// How long a presigned store URL is valid.
const PRESIGN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert!(none_match("\"abc\"", "abc"));
        assert!(none_match("W/\"abc\", \"x\"", "abc"));
        assert!(none_match("*", "abc"));
        assert!(!none_match("\"abd\"", "abc"));
    }
}
