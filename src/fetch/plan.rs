//! From a commit's tree to a work list: apply include/exclude patterns and drop what the store
//! already holds (dedup by sha256 across every repo and revision).

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::hub::RepoFile;
use crate::registry::Sha256;

/// Include/exclude patterns, matched like `huggingface_hub`'s `allow_patterns` /
/// `ignore_patterns` (fnmatch: `*` also crosses `/`; a pattern ending in `/` matches
/// everything below that directory).
#[derive(Debug, Clone)]
pub struct Selection {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern `{pattern}`")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// Why.
    #[source]
    pub source: globset::Error,
}

fn build(patterns: &[String]) -> Result<Option<GlobSet>, PatternError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let normalized = if pattern.ends_with('/') {
            format!("{pattern}*")
        } else {
            pattern.clone()
        };
        let glob = Glob::new(&normalized).map_err(|source| PatternError {
            pattern: pattern.clone(),
            source,
        })?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|source| PatternError {
        pattern: patterns.join(" "),
        source,
    })
}

impl Selection {
    /// Compile the patterns.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, PatternError> {
        Ok(Selection {
            include: build(include)?,
            exclude: build(exclude)?,
        })
    }

    /// Everything.
    pub fn all() -> Self {
        Selection {
            include: None,
            exclude: None,
        }
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(path))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(path))
    }
}

/// A selected file and, if the store already holds its content, that blob's sha256.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// The file from the listing.
    pub file: RepoFile,
    /// The held blob, if any.
    pub held: Option<Sha256>,
}

/// Key under which identical content is fetched once.
pub fn content_key(file: &RepoFile) -> String {
    key_for(file.lfs_sha256.as_deref(), &file.git_oid)
}

/// The content key from the digest the listing promises: the sha256 of an LFS file, else
/// `git-<oid>`. Also names part files, so any pull of the same content resumes one part.
pub fn key_for(sha256: Option<&str>, git_oid: &str) -> String {
    match sha256 {
        Some(sha) => sha.to_owned(),
        None => format!("git-{git_oid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        let s = Selection::new(&["*.json".into(), "sub/".into()], &["secret*".into()]).unwrap();
        assert!(s.matches("config.json"));
        assert!(s.matches("a/b/config.json"), "`*` crosses `/` like fnmatch");
        assert!(s.matches("sub/x.bin"));
        assert!(!s.matches("model.bin"));
        assert!(!s.matches("secret.json"));
        assert!(Selection::all().matches("anything"));
        assert!(Selection::new(&["[".into()], &[]).is_err());
    }
}
