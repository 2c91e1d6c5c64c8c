//! `larder import DIR --as ORG/NAME`: register a plain model folder (an in-house checkpoint)
//! as a revision, so it is served, audited and converted like a Hub repo.
//!
//! Every file is hashed (sha256 and git blob oid) while it is copied into the store. Files of
//! at least [`LFS_THRESHOLD`] bytes, or matched by a `filter=lfs` line of `.gitattributes`,
//! are recorded as LFS files, whose git oid is that of their LFS pointer. The commit id is
//! derived from the tree alone ([`tree_commit_id`]), so the same folder always gives the same
//! revision. The licence comes from `README.md`'s YAML front matter (`license`,
//! `license_name`, `license_link`).
//!
//! The folder is hostile input: `.git/` and `.cache/huggingface/` are skipped; paths must pass
//! [`validate_repo_path`]; a symlink is followed only when it resolves to a regular file inside
//! the folder, and anything else that is not a regular file or directory is refused.
//!
//! Cancelled, it removes the copy in progress and registers nothing; the blobs it had
//! published stay in the store (unreferenced, as after a crash) and a rerun finds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use sha1::{Digest, Sha1};

use super::{BundleError, BundleEvent, copy_hashed, lfs_pointer_oid};
use crate::Larder;
use crate::hub::{RepoId, Revision, validate_repo_path};
use crate::interrupt::{CancellationToken, Interrupted};
use crate::record::{self, Checked};
use crate::registry::{BlobRecord, CommitId, FileRecord, LicenceFields, RepoKind, SnapshotRecord};
use crate::report::Reporter;

/// Files at least this large are recorded as LFS files (the Hub's threshold).
pub const LFS_THRESHOLD: u64 = 10 << 20;
/// Largest README read for its front matter.
const MAX_README_BYTES: u64 = 4 << 20;
/// Deepest directory nesting accepted.
const MAX_DEPTH: usize = 64;

/// What a folder import registered.
#[derive(Debug, Clone, Serialize)]
pub struct FolderSummary {
    /// `org/name`.
    pub repo: String,
    /// The derived commit id.
    pub commit: CommitId,
    /// The ref recorded.
    pub revision: String,
    /// Files recorded.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// Blobs newly copied into the store.
    pub blobs_imported: usize,
    /// The licence fields found in README.md.
    pub licence: LicenceFields,
}

/// Import the folder `dir` as `repo` at `revision`.
pub async fn import_folder(
    larder: &Larder,
    dir: &Path,
    kind: RepoKind,
    repo: &RepoId,
    revision: &Revision,
    reporter: &dyn Reporter<BundleEvent>,
    cancel: &CancellationToken,
) -> Result<FolderSummary, BundleError> {
    // Blobs published here are unreferenced until the revision is recorded.
    let _gc_guard = larder.local.gc_guard().await?;
    let root = dir.canonicalize().map_err(BundleError::io("open", dir))?;
    if !root.is_dir() {
        return Err(BundleError::Refused {
            path: dir.to_path_buf(),
            reason: "not a directory".to_owned(),
        });
    }
    let entries = walk(&root)?;
    let lfs_patterns = gitattributes_lfs(&root, &entries)?;
    reporter.report(&BundleEvent::Start {
        blobs: entries.len(),
        bytes: 0,
    });

    let mut files = Vec::new();
    let mut blobs: Vec<BlobRecord> = Vec::new();
    let mut blobs_imported = 0;
    let mut chunkings = Vec::new();
    let total: u64 = entries
        .iter()
        .filter_map(|(_, source)| std::fs::metadata(source).ok())
        .map(|m| m.len())
        .sum();
    // Published blobs stay (unreferenced until recorded): a rerun finds them in the store.
    let mut kept = 0;
    for (path, source) in &entries {
        if cancel.is_cancelled() {
            return Err(BundleError::Interrupted(Interrupted { kept, total }));
        }
        let part = larder.local.tmp_dir().join(format!(
            "folder-{}-{}.part",
            std::process::id(),
            files.len()
        ));
        let (src, dest, cancel2) = (source.clone(), part.clone(), cancel.clone());
        let copied = tokio::task::spawn_blocking(move || copy_hashed(&src, &dest, &cancel2))
            .await
            .map_err(|e| BundleError::Io {
                action: "hash",
                path: source.clone(),
                source: std::io::Error::other(e),
            })?;
        let (digests, size) = match copied {
            Ok(done) => done,
            Err(BundleError::Interrupted(_)) => {
                let _ = std::fs::remove_file(&part);
                return Err(BundleError::Interrupted(Interrupted { kept, total }));
            }
            Err(error) => {
                let _ = std::fs::remove_file(&part);
                return Err(error);
            }
        };
        let sha256 = digests.sha256;
        let fresh = larder.blobs.stat(&sha256).await?.is_none();
        larder.blobs.publish(&part, &sha256).await?;
        if fresh {
            blobs_imported += 1;
        }
        kept += size;
        reporter.report(&BundleEvent::Blob {
            name: path.clone(),
            size,
            action: if fresh { "copied" } else { "skipped" },
        });
        let lfs = size >= LFS_THRESHOLD || lfs_patterns.as_ref().is_some_and(|p| matches(p, path));
        let git_oid = if lfs {
            lfs_pointer_oid(&sha256, size)
        } else {
            digests.git_oid.clone().unwrap_or_default()
        };
        if !blobs.iter().any(|b| b.sha256 == sha256) {
            if let Some(chunking) = digests.xet.clone() {
                chunkings.push((sha256, chunking));
            }
            blobs.push(record::blob_record(
                larder,
                &sha256,
                size,
                Checked::Verified,
            ));
        }
        files.push(FileRecord {
            path: path.clone(),
            size,
            git_oid,
            sha256: Some(sha256),
            lfs,
        });
    }

    let card = read_front_matter(&root)?;
    let licence = LicenceFields {
        license: card_string(&card, "license"),
        license_name: card_string(&card, "license_name"),
        license_link: card_string(&card, "license_link"),
        gated: None,
    };
    let commit = tree_commit_id(files.iter().map(|f| (f.path.as_str(), f.git_oid.as_str())));
    let summary = FolderSummary {
        repo: repo.to_string(),
        commit,
        revision: revision.to_string(),
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
        blobs_imported,
        licence: licence.clone(),
    };
    let refs = if revision.is_commit() {
        Vec::new()
    } else {
        vec![revision.to_string()]
    };
    larder
        .registry
        .record_snapshot_with_blobs(
            SnapshotRecord {
                kind,
                name: repo.to_string(),
                upstream: format!("file://{}", root.display()),
                gated: None,
                private: false,
                commit,
                card_json: (!card.is_empty()).then_some(serde_json::Value::Object(card)),
                refs,
                seen_at: crate::now_unix(),
                files,
                licence,
            },
            blobs,
        )
        .await?;
    // The chunk index follows its blobs' rows (see `import`).
    for (sha256, chunking) in &chunkings {
        crate::xet::index::record(&larder.registry, sha256, chunking).await?;
    }
    crate::licence::record_held_detection(larder, kind, repo.as_str(), &summary.commit).await;
    crate::manifest::publish_logged(larder, kind, repo.as_str(), &summary.commit).await;
    Ok(summary)
}

/// The commit id of a folder: sha1 over `"<oid> <path>\n"` lines sorted by path, after a
/// version line. Deterministic, and different whenever any path or content differs.
pub fn tree_commit_id<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> CommitId {
    let sorted: BTreeMap<&str, &str> = files.collect();
    let mut hasher = Sha1::new();
    hasher.update(b"larder folder tree v1\n");
    for (path, oid) in sorted {
        hasher.update(format!("{oid} {path}\n").as_bytes());
    }
    CommitId::from_bytes(&hasher.finalize().into())
}

/// Every file below `root` as `(repo path, file to read)`, sorted by path.
fn walk(root: &Path) -> Result<Vec<(String, PathBuf)>, BundleError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(BundleError::Refused {
                path: dir,
                reason: "directories nested too deep".to_owned(),
            });
        }
        let listing = std::fs::read_dir(&dir).map_err(BundleError::io("list", &dir))?;
        for entry in listing {
            let entry = entry.map_err(BundleError::io("list", &dir))?;
            let full = entry.path();
            let refuse = |reason: &str| BundleError::Refused {
                path: full.clone(),
                reason: reason.to_owned(),
            };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(refuse("the name is not UTF-8"));
            };
            let path = format!("{prefix}{name}");
            if name == ".git" || path == ".cache/huggingface" {
                continue;
            }
            validate_repo_path(&path).map_err(|e| refuse(&e.to_string()))?;
            let meta = std::fs::symlink_metadata(&full).map_err(BundleError::io("stat", &full))?;
            if meta.is_dir() {
                stack.push((full, format!("{path}/"), depth + 1));
            } else if meta.is_file() {
                out.push((path, full));
            } else if meta.file_type().is_symlink() {
                let target = std::fs::canonicalize(&full)
                    .map_err(|_| refuse("a symlink that does not resolve"))?;
                if !target.starts_with(root) {
                    return Err(refuse("a symlink that points outside the folder"));
                }
                if !target.is_file() {
                    return Err(refuse("a symlink to something other than a regular file"));
                }
                out.push((path, target));
            } else {
                return Err(refuse("not a regular file, directory or symlink"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The patterns of `.gitattributes` lines that set `filter=lfs`.
fn gitattributes_lfs(
    root: &Path,
    entries: &[(String, PathBuf)],
) -> Result<Option<(GlobSet, GlobSet)>, BundleError> {
    let Some((_, file)) = entries.iter().find(|(p, _)| p == ".gitattributes") else {
        return Ok(None);
    };
    let text = std::fs::read(file).map_err(BundleError::io("read", root))?;
    let text = String::from_utf8_lossy(&text);
    let mut names = GlobSetBuilder::new();
    let mut paths = GlobSetBuilder::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(pattern) = words.next() else {
            continue;
        };
        if pattern.starts_with('#') || !words.any(|w| w == "filter=lfs") {
            continue;
        }
        let anchored = pattern.trim_start_matches('/');
        let Ok(glob) = GlobBuilder::new(anchored).literal_separator(true).build() else {
            continue;
        };
        if pattern.contains('/') {
            paths.add(glob);
        } else {
            names.add(glob);
        }
    }
    match (names.build(), paths.build()) {
        (Ok(names), Ok(paths)) => Ok(Some((names, paths))),
        _ => Ok(None),
    }
}

/// gitattributes matching: a pattern without `/` matches the file name at any depth; one with
/// `/` matches the path from the root.
fn matches((names, paths): &(GlobSet, GlobSet), path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    names.is_match(name) || paths.is_match(path)
}

/// The top-level scalar (and simple list) keys of README.md's YAML front matter.
fn read_front_matter(
    root: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, BundleError> {
    let path = root.join("README.md");
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(serde_json::Map::new());
    };
    if !meta.is_file() || meta.len() > MAX_README_BYTES {
        return Ok(serde_json::Map::new());
    }
    let text = std::fs::read(&path).map_err(BundleError::io("read", &path))?;
    Ok(parse_front_matter(&String::from_utf8_lossy(&text)))
}

/// A small reader for the YAML front matter of model cards: `key: value` lines at the top
/// level, and lists written as `key:` followed by `- item` lines or as `[a, b]`. Nested
/// mappings are skipped; this is enough for the licence fields and does not pretend to be YAML.
pub fn parse_front_matter(text: &str) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut out = serde_json::Map::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return out;
    }
    let mut list_key: Option<String> = None;
    for line in lines {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            break;
        }
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(item) = line.trim_start().strip_prefix("- ")
            && line.starts_with([' ', '-'])
        {
            if let Some(key) = &list_key
                && let Some(Value::Array(items)) = out.get_mut(key)
            {
                items.push(Value::String(unquote(item)));
            }
            continue;
        }
        list_key = None;
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_owned();
        let value = value.trim();
        if value.is_empty() {
            out.insert(key.clone(), Value::Array(Vec::new()));
            list_key = Some(key);
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(|i| Value::String(unquote(i)))
                .collect();
            out.insert(key, Value::Array(items));
        } else {
            out.insert(key, Value::String(unquote(value)));
        }
    }
    out
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    let value = match value.find(" #") {
        Some(at) if !value.starts_with(['"', '\'']) => value[..at].trim_end(),
        _ => value,
    };
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

/// A card field as a string; a list becomes its items joined by `,` (as `pull` does).
fn card_string(card: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    match card.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Array(items) => {
            let names: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
            (!names.is_empty()).then(|| names.join(","))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter() {
        let card = parse_front_matter(
            "---\nlicense: other\nlicense_name: acme-research # comment\nlicense_link: \"https://acme.example/licence\"\ntags:\n  - a\n  - b\nlanguage: [en, fr]\nmodel-index:\n  - name: x\n    results: []\n---\n# Title\nlicense: not-this\n",
        );
        assert_eq!(card["license"], "other");
        assert_eq!(card["license_name"], "acme-research");
        assert_eq!(card["license_link"], "https://acme.example/licence");
        assert_eq!(card["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(card["language"], serde_json::json!(["en", "fr"]));
        assert!(parse_front_matter("# no front matter\nlicense: mit\n").is_empty());
    }

    #[test]
    fn gitattributes_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let attributes = dir.path().join(".gitattributes");
        std::fs::write(
            &attributes,
            "# comment\n*.bin filter=lfs diff=lfs merge=lfs -text\n/ckpt/*.pt filter=lfs\n*.txt text\n",
        )
        .unwrap();
        let entries = vec![(".gitattributes".to_owned(), attributes)];
        let patterns = gitattributes_lfs(dir.path(), &entries).unwrap().unwrap();
        assert!(matches(&patterns, "weights.bin"));
        assert!(
            matches(&patterns, "deep/dir/weights.bin"),
            "no `/`: any depth"
        );
        assert!(matches(&patterns, "ckpt/a.pt"));
        assert!(
            !matches(&patterns, "other/ckpt/a.pt"),
            "with `/`: from the root"
        );
        assert!(
            !matches(&patterns, "ckpt/sub/a.pt"),
            "`*` does not cross `/`"
        );
        assert!(!matches(&patterns, "notes.txt"), "not filter=lfs");
        assert!(gitattributes_lfs(dir.path(), &[]).unwrap().is_none());
    }

    #[test]
    fn commit_id_depends_on_paths_and_oids_only() {
        let a = tree_commit_id([("b", "2"), ("a", "1")].into_iter());
        let b = tree_commit_id([("a", "1"), ("b", "2")].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, tree_commit_id([("a", "1"), ("b", "3")].into_iter()));
        assert_eq!(a.len(), 40);
    }
}
