//! Repo info (E1/E2), the paginated tree (E3) and paths-info (E4), built from the registry.
//!
//! Shapes follow hub-protocol.md §3: `siblings` is always complete (old Python clients list
//! files from it alone), tree pages hold at most `page_size` entries with an absolute
//! `Link: <…>; rel="next"` on the mirror's own origin, directories carry a git tree oid, and no
//! `xetHash` ever appears (clients would bypass the mirror for Xet).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use super::errors::ServeError;
use super::paths::{RevisionTail, UrlRepoType, encode_component, parse_bool};
use super::{AccessNote, Mirror, noted};
use crate::registry::{CommitDetail, FileRow, RepoKind};

/// Size of an LFS pointer file for content of `size` bytes (hub-protocol.md §4).
pub fn pointer_size(size: u64) -> u64 {
    125 + size.to_string().len() as u64
}

/// `YYYY-MM-DDTHH:MM:SS.000Z`, the only date form Python's parser accepts.
pub fn hub_date(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

fn json_response(value: &Value, extra: HeaderMap) -> Response {
    let mut response = (StatusCode::OK, extra, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Query parameters, with repeated keys kept (`expand=a&expand=b`, `expand[]=a`).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_bool(pairs: &[(String, String)], key: &str) -> bool {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| parse_bool(v))
        .unwrap_or(false)
}

/// `GET /api/{type}s/{repo}[/revision/{rev}]`.
pub async fn info(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: Option<&RevisionTail>,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let target = mirror.target(repo_type, repo, headers)?;
    let revision = tail
        .map(RevisionTail::whole)
        .unwrap_or_else(|| "main".to_owned());
    let sha = mirror.commit_named(&target, &revision, headers).await?;
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, false).await?;

    let pairs = query_pairs(query);
    let blobs = query_bool(&pairs, "blobs");
    let expand: BTreeSet<String> = pairs
        .iter()
        .filter(|(k, _)| k == "expand" || k == "expand[]")
        .map(|(_, v)| v.clone())
        .collect();
    let mut body = repo_info_json(&detail, blobs, mirror.is_disabled(&target));
    super::info::overlay_upstream(mirror, &detail, &mut body).await;
    if !expand.is_empty()
        && let Value::Object(map) = &mut body
    {
        map.retain(|k, _| k == "id" || k == "_id" || expand.contains(k));
    }
    Ok(noted(
        json_response(&body, HeaderMap::new()),
        AccessNote {
            repo: repo.to_owned(),
            revision,
            path: String::new(),
        },
    ))
}

/// The repo info JSON of one commit (`disabled`: the upstream has disabled the repo).
pub fn repo_info_json(detail: &CommitDetail, blobs: bool, disabled: bool) -> Value {
    let siblings: Vec<Value> = detail
        .files
        .iter()
        .map(|f| {
            let mut s = Map::new();
            s.insert("rfilename".into(), json!(f.path));
            if blobs {
                s.insert("blobId".into(), json!(f.git_oid));
                s.insert("size".into(), json!(f.size));
                if let Some(lfs) = lfs_object(f, "sha256") {
                    s.insert("lfs".into(), lfs);
                }
            }
            Value::Object(s)
        })
        .collect();
    let gated = match detail.gated.as_deref() {
        None => json!(false),
        Some("true") => json!(true),
        Some(mode) => json!(mode),
    };
    let date = hub_date(detail.fetched_at);
    let author = detail.name.split_once('/').map(|(org, _)| org.to_owned());
    let mut tags: Vec<String> = Vec::new();
    if let Some(licence) = &detail.licence.license {
        tags.push(format!("license:{licence}"));
    }
    let mut map = Map::new();
    // A stable pseudo object id (24 hex) so clients that read `_id` get one.
    let id_hash = hex::encode(Sha1::digest(format!("{}:{}", detail.kind, detail.name)));
    map.insert("_id".into(), json!(id_hash[..24]));
    map.insert("id".into(), json!(detail.name));
    if detail.kind == RepoKind::Model {
        map.insert("modelId".into(), json!(detail.name));
    }
    if let Some(author) = author {
        map.insert("author".into(), json!(author));
    }
    map.insert("sha".into(), json!(detail.sha));
    map.insert("lastModified".into(), json!(date));
    map.insert("createdAt".into(), json!(date));
    map.insert("private".into(), json!(detail.private));
    map.insert("gated".into(), gated);
    map.insert("disabled".into(), json!(disabled));
    map.insert("downloads".into(), json!(0));
    map.insert("likes".into(), json!(0));
    map.insert("tags".into(), json!(tags));
    if let Some(card) = &detail.card_json {
        map.insert("cardData".into(), card.clone());
    }
    map.insert("siblings".into(), Value::Array(siblings));
    map.insert(
        "usedStorage".into(),
        json!(detail.files.iter().map(|f| f.size).sum::<u64>()),
    );
    Value::Object(map)
}

fn lfs_object(file: &FileRow, digest_key: &str) -> Option<Value> {
    if !file.lfs {
        return None;
    }
    let sha = file.sha256.as_ref()?;
    let mut lfs = Map::new();
    lfs.insert(digest_key.into(), json!(sha));
    lfs.insert("size".into(), json!(file.size));
    lfs.insert("pointerSize".into(), json!(pointer_size(file.size)));
    Some(Value::Object(lfs))
}

/// A commit's files and directories, for listing.
pub struct TreeIndex<'a> {
    files: &'a [FileRow],
    /// Directory path (`""` = root) → git tree oid.
    dirs: BTreeMap<String, String>,
    by_path: HashMap<&'a str, usize>,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

impl<'a> TreeIndex<'a> {
    /// Index `files` and compute every directory's git tree oid (file modes assumed 100644:
    /// the registry does not record executable bits or symlinks).
    pub fn new(files: &'a [FileRow]) -> Self {
        // children[dir] = (name, is_dir, child path)
        let mut children: BTreeMap<String, BTreeMap<String, (bool, String)>> = BTreeMap::new();
        children.insert(String::new(), BTreeMap::new());
        for f in files {
            let mut path = f.path.as_str();
            let mut is_dir = false;
            loop {
                let dir = parent(path).to_owned();
                let name = path.rsplit('/').next().unwrap_or(path).to_owned();
                let entry = children.entry(dir.clone()).or_default();
                let fresh = !entry.contains_key(&name);
                entry.insert(name, (is_dir, path.to_owned()));
                if dir.is_empty() || !fresh {
                    break;
                }
                is_dir = true;
                path = &f.path[..dir.len()];
            }
        }
        let by_path: HashMap<&str, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_str(), i))
            .collect();
        // Deepest directories first so that children's oids are known.
        let mut order: Vec<&String> = children.keys().collect();
        order.sort_by_key(|d| {
            std::cmp::Reverse(if d.is_empty() {
                0
            } else {
                d.matches('/').count() + 1
            })
        });
        let mut dirs: BTreeMap<String, String> = BTreeMap::new();
        for dir in order {
            let mut entries: Vec<(String, bool, String)> = children[dir]
                .iter()
                .map(|(name, (is_dir, path))| (name.clone(), *is_dir, path.clone()))
                .collect();
            // git orders tree entries as if directory names ended in '/'.
            entries.sort_by(|a, b| {
                let key = |e: &(String, bool, String)| {
                    let mut k = e.0.clone().into_bytes();
                    if e.1 {
                        k.push(b'/');
                    }
                    k
                };
                key(a).cmp(&key(b))
            });
            let mut body = Vec::new();
            for (name, is_dir, path) in entries {
                let oid = if is_dir {
                    dirs.get(&path).cloned().unwrap_or_default()
                } else {
                    by_path
                        .get(path.as_str())
                        .map(|&i| files[i].git_oid.clone())
                        .unwrap_or_default()
                };
                body.extend_from_slice(if is_dir { b"40000 " } else { b"100644 " });
                body.extend_from_slice(name.as_bytes());
                body.push(0);
                body.extend_from_slice(&hex::decode(&oid).unwrap_or_else(|_| vec![0; 20]));
            }
            let mut hasher = Sha1::new();
            hasher.update(format!("tree {}\0", body.len()).as_bytes());
            hasher.update(&body);
            dirs.insert(dir.clone(), hex::encode(hasher.finalize()));
        }
        TreeIndex {
            files,
            dirs,
            by_path,
        }
    }

    /// The JSON entry of a file or directory at `path`, if it exists.
    pub fn entry(&self, path: &str) -> Option<Value> {
        if let Some(&i) = self.by_path.get(path) {
            return Some(file_entry(&self.files[i]));
        }
        if path.is_empty() {
            return None;
        }
        self.dirs.get(path).map(|oid| dir_entry(path, oid))
    }

    /// Whether `path` is a directory (`""` is the root).
    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains_key(path)
    }

    /// Entries under directory `dir`: direct children, or every descendant.
    pub fn list(&self, dir: &str, recursive: bool) -> Vec<Value> {
        let inside = |p: &str| {
            if dir.is_empty() {
                true
            } else {
                p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
            }
        };
        let direct = |p: &str| parent(p) == dir;
        let mut out: Vec<(String, Value)> = Vec::new();
        for (path, oid) in &self.dirs {
            if !path.is_empty() && inside(path) && (recursive || direct(path)) {
                out.push((path.clone(), dir_entry(path, oid)));
            }
        }
        for f in self.files {
            if inside(&f.path) && (recursive || direct(&f.path)) {
                out.push((f.path.clone(), file_entry(f)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, v)| v).collect()
    }
}

fn file_entry(f: &FileRow) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), json!("file"));
    e.insert("oid".into(), json!(f.git_oid));
    e.insert("size".into(), json!(f.size));
    e.insert("path".into(), json!(f.path));
    if let Some(lfs) = lfs_object(f, "oid") {
        e.insert("lfs".into(), lfs);
    }
    Value::Object(e)
}

fn dir_entry(path: &str, oid: &str) -> Value {
    json!({"type": "directory", "oid": oid, "size": 0, "path": path})
}

/// `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=&cursor=`.
pub async fn tree(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let target = mirror.target(repo_type, repo, headers)?;
    let (revision, path, sha) = mirror.resolve_tail(&target, tail, false, headers).await?;
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, false).await?;
    mirror.refuse_disabled(&target)?;
    let index = TreeIndex::new(&detail.files);
    let path = path.trim_matches('/').to_owned();
    if !index.is_dir(&path) {
        return Err(ServeError::EntryNotFound {
            path,
            revision,
            commit: sha,
        });
    }
    let pairs = query_pairs(query);
    let recursive = query_bool(&pairs, "recursive");
    let expand = query_bool(&pairs, "expand");
    let start: usize = pairs
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| ServeError::BadRequest(format!("invalid cursor {v:?}")))
        })
        .transpose()?
        .unwrap_or(0);
    let entries = index.list(&path, recursive);
    let page_size = mirror.options.page_size.max(1);
    let end = (start + page_size).min(entries.len());
    let mut page: Vec<Value> = entries
        .get(start.min(end)..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    super::xet::add_xet_hashes(mirror, &detail, &mut page).await?;
    if expand {
        super::expand::add_expanded_fields(mirror, &target, &sha, &mut page).await;
    }
    let mut extra = HeaderMap::new();
    if end < entries.len() {
        let mut url = format!(
            "{}/api/{}/{}/tree/{}",
            mirror.origin(headers),
            repo_type.plural(),
            repo,
            encode_component(&revision)
        );
        if !path.is_empty() {
            url.push('/');
            url.push_str(&encode_component(&path));
        }
        url.push_str(&format!(
            "?recursive={recursive}&expand={expand}&cursor={end}"
        ));
        if let Ok(value) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            extra.insert(header::LINK, value);
        }
    }
    Ok(noted(
        json_response(&Value::Array(page), extra),
        AccessNote {
            repo: repo.to_owned(),
            revision,
            path,
        },
    ))
}

#[derive(serde::Deserialize)]
struct PathsInfoJson {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    expand: Value,
}

/// `POST /api/{type}s/{repo}/paths-info/{rev}` with a form (`paths=a&paths=b`) or JSON
/// (`{"paths":[...]}`) body. Paths that do not exist are left out.
pub async fn paths_info(
    mirror: &Mirror,
    repo_type: UrlRepoType,
    repo: &str,
    tail: &RevisionTail,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ServeError> {
    let target = mirror.target(repo_type, repo, headers)?;
    let revision = tail.whole();
    let sha = mirror.commit_named(&target, &revision, headers).await?;
    let detail = mirror.detail(&target, &sha, headers).await?;
    mirror.authorize(&target, &detail, headers, false).await?;
    mirror.refuse_disabled(&target)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let (paths, expand): (Vec<String>, bool) = if is_json {
        let parsed = serde_json::from_slice::<PathsInfoJson>(body)
            .map_err(|e| ServeError::BadRequest(format!("invalid JSON body: {e}")))?;
        let expand = match &parsed.expand {
            Value::Bool(b) => *b,
            Value::String(s) => parse_bool(s).unwrap_or(false),
            _ => false,
        };
        (parsed.paths, expand)
    } else {
        let pairs = query_pairs(&String::from_utf8_lossy(body));
        let paths = pairs
            .iter()
            .filter(|(k, _)| k == "paths" || k == "paths[]")
            .map(|(_, v)| v.clone())
            .collect();
        (paths, query_bool(&pairs, "expand"))
    };
    let index = TreeIndex::new(&detail.files);
    let mut seen = BTreeSet::new();
    let mut entries: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/').to_owned())
        .filter(|p| seen.insert(p.clone()))
        .filter_map(|p| index.entry(&p))
        .collect();
    super::xet::add_xet_hashes(mirror, &detail, &mut entries).await?;
    if expand {
        super::expand::add_expanded_fields(mirror, &target, &sha, &mut entries).await;
    }
    Ok(noted(
        json_response(&Value::Array(entries), HeaderMap::new()),
        AccessNote {
            repo: repo.to_owned(),
            revision,
            path: String::new(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, oid: &str) -> FileRow {
        FileRow {
            path: path.into(),
            size: 1,
            git_oid: oid.into(),
            sha256: None,
            lfs: false,
            held: true,
        }
    }

    #[test]
    fn git_tree_oids_match_git() {
        // Files `a`, `d.txt` and `d/b`, each "a\n"; the oids come from `git write-tree`.
        let blob = "78981922613b2afb6025042ff6bd878ac1994e85";
        let files = vec![row("a", blob), row("d.txt", blob), row("d/b", blob)];
        let index = TreeIndex::new(&files);
        assert_eq!(index.dirs["d"], "726850c95e180c2366cc78594cb8b6926dcfdd68");
        assert_eq!(index.dirs[""], "45876e57dcb5d028f1487c5565f1ad8c70797402");
        assert_eq!(index.list("", false).len(), 3);
        assert_eq!(index.list("", true).len(), 4);
        assert_eq!(index.list("d", false).len(), 1);
        assert!(index.entry("d").is_some());
        assert!(index.entry("x").is_none());
    }

    #[test]
    fn dates_and_pointers() {
        assert_eq!(hub_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(pointer_size(22), 127);
        assert_eq!(pointer_size(77_691_713), 133);
    }
}
