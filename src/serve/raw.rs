//! `GET`/`HEAD /{prefix}{repo}/raw/{rev}/{path}`: a file's git content, as the Hub serves it.
//!
//! For a regular file that is its bytes (the `/resolve` answer, without the `X-Linked-*`
//! headers, which only describe LFS content); for an LFS file it is the pointer text git holds
//! (`version …`, `oid sha256:…`, `size …`), never the LFS content. The `ETag` is the git blob
//! oid of what is sent, and errors carry the Hub's `X-Error-Code` like every other answer.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::{ServeError, X_REPO_COMMIT, internal};
use super::paths::{RevisionTail, UrlRepoType};
use super::{AccessNote, Mirror, noted};

use crate::registry::Sha256;

/// The text of the git-lfs pointer of content with this digest and size (git-lfs spec v1).
pub fn lfs_pointer(sha256: &Sha256, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Handle one `/raw` request; errors are rendered here so they get the access-log note.
pub async fn handle(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ServeError> {
    let (revision, path) = tail.likely(true);
    let note = AccessNote {
        repo: repo.to_owned(),
        revision,
        path,
    };
    match pointer(mirror, repo_type, repo, tail, headers, head).await {
        Ok(Some(response)) => Ok(noted(response, note)),
        Ok(None) => {
            // A regular file: its bytes are what `/resolve` serves.
            let mut response =
                super::resolve::handle(mirror, repo_type, repo, tail, headers, head).await?;
            for name in ["x-linked-size", "x-linked-etag"] {
                response.headers_mut().remove(name);
            }
            Ok(response)
        }
        Err(error) => Ok(noted(error.into_response(), note)),
    }
}

/// The pointer answer of an LFS file; `None` for a regular one.
async fn pointer(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, ServeError> {
    let target = mirror.target(repo_type, repo, headers)?;
    let (revision, path, sha) = mirror.resolve_tail(&target, tail, true, headers).await?;
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, true).await?;
    mirror.refuse_disabled(&target)?;
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
    let file = &detail.files[index];
    if !file.lfs {
        return Ok(None);
    }
    let Some(sha256) = file.sha256.as_ref() else {
        return Err(internal(
            "an LFS file has no sha256 in the registry",
            &std::io::Error::other(file.path.clone()),
        ));
    };
    let text = lfs_pointer(sha256, file.size);
    let mut meta = HeaderMap::new();
    let put = |meta: &mut HeaderMap, name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            meta.insert(name, value);
        }
    };
    put(&mut meta, X_REPO_COMMIT.clone(), sha.to_string());
    put(&mut meta, header::ETAG, format!("\"{}\"", file.git_oid));
    put(&mut meta, header::CONTENT_LENGTH, text.len().to_string());
    meta.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| super::resolve::none_match(v, &file.git_oid))
    {
        return Ok(Some((StatusCode::NOT_MODIFIED, meta).into_response()));
    }
    let body = if head { String::new() } else { text };
    Ok(Some((StatusCode::OK, meta, body).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_text_has_the_pointer_size() {
        let sha = Sha256::parse(&"a".repeat(64)).unwrap();
        for size in [0u64, 22, 77_691_713] {
            assert_eq!(
                lfs_pointer(&sha, size).len() as u64,
                super::super::hub_api::pointer_size(size)
            );
        }
    }
}
