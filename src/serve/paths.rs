//! Parsing of raw request paths into Hub routes.
//!
//! The Hub's URLs cannot be routed with per-segment patterns: revisions arrive either
//! percent-encoded (`refs%2Fpr%2F1`) or with literal slashes (`refs/pr/1`), repo ids have one or
//! two segments, and hf-hub doubles the leading slash when `HF_ENDPOINT` ends with `/`. So the
//! raw path is split on `/` first (dropping empty segments, which also tolerates `//`), and each
//! segment is percent-decoded afterwards. Where a revision with literal slashes and a file path
//! meet, the split is ambiguous; [`RevisionTail`] keeps every candidate and the handler picks the
//! first one the registry knows.

use percent_encoding::percent_decode_str;

use crate::registry::RepoKind;

/// The repository types that appear in URLs. Only models and datasets are mirrored; the others
/// are parsed so that they can be answered with `RepoNotFound` instead of a routing 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRepoType {
    /// `models`, no download prefix.
    Model,
    /// `datasets`.
    Dataset,
    /// `spaces`.
    Space,
    /// `kernels`.
    Kernel,
}

impl UrlRepoType {
    fn from_plural(segment: &str) -> Option<Self> {
        match segment {
            "models" => Some(UrlRepoType::Model),
            "datasets" => Some(UrlRepoType::Dataset),
            "spaces" => Some(UrlRepoType::Space),
            "kernels" => Some(UrlRepoType::Kernel),
            _ => None,
        }
    }

    /// The registry kind, for the types Larder mirrors.
    pub fn kind(self) -> Option<RepoKind> {
        match self {
            UrlRepoType::Model => Some(RepoKind::Model),
            UrlRepoType::Dataset => Some(RepoKind::Dataset),
            UrlRepoType::Space | UrlRepoType::Kernel => None,
        }
    }

    /// `models`, `datasets`, ...
    pub fn plural(self) -> &'static str {
        match self {
            UrlRepoType::Model => "models",
            UrlRepoType::Dataset => "datasets",
            UrlRepoType::Space => "spaces",
            UrlRepoType::Kernel => "kernels",
        }
    }

    /// The prefix of download URLs: empty for models.
    pub fn url_prefix(self) -> &'static str {
        match self {
            UrlRepoType::Model => "",
            UrlRepoType::Dataset => "datasets/",
            UrlRepoType::Space => "spaces/",
            UrlRepoType::Kernel => "kernels/",
        }
    }
}

/// The decoded segments after the repo id, where a revision (possibly spelled with literal
/// slashes) is followed by an optional path inside the repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionTail {
    segments: Vec<String>,
}

impl RevisionTail {
    /// Every way to split the tail into `(revision, path)`, most likely first: a revision that
    /// arrived percent-encoded is one segment; otherwise try one segment, then `refs/x/y`
    /// forms, then every other length. `need_path` drops splits with an empty path.
    ///
    /// A revision of `HEAD` names the default branch, as on the Hub: it comes out as `main`.
    pub fn splits(&self, need_path: bool) -> Vec<(String, String)> {
        let n = self.segments.len();
        let split = |k: usize| {
            let revision = self.segments[..k].join("/");
            (default_branch(revision), self.segments[k..].join("/"))
        };
        let max = if need_path { n.saturating_sub(1) } else { n };
        let mut order: Vec<usize> = Vec::new();
        if n == 0 {
            return Vec::new();
        }
        if self.segments[0].contains('/') || max == 0 {
            order.push(1);
        } else {
            if self.segments[0] == "refs" && max >= 3 {
                order.push(3);
            }
            for k in 1..=max {
                if !order.contains(&k) {
                    order.push(k);
                }
            }
        }
        order
            .into_iter()
            .filter(|&k| k <= n && (!need_path || k < n))
            .map(split)
            .collect()
    }

    /// The most likely revision (for error messages when no split is known).
    pub fn likely(&self, need_path: bool) -> (String, String) {
        self.splits(need_path)
            .into_iter()
            .next()
            .unwrap_or_else(|| (self.segments.join("/"), String::new()))
    }

    /// The whole tail as one revision (`/revision/{rev}`, `/paths-info/{rev}`); `HEAD` is
    /// `main`.
    pub fn whole(&self) -> String {
        default_branch(self.segments.join("/"))
    }

    /// Whether there is nothing after the keyword.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// `HEAD` names the default branch (`main` on the Hub); every other revision is itself.
fn default_branch(revision: String) -> String {
    if revision == crate::hub::DEFAULT_BRANCH_ALIAS {
        "main".to_owned()
    } else {
        revision
    }
}

/// What an API request under `/api/{type}s/{repo}` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAction {
    /// `GET /api/{type}s/{repo}` (E1).
    Info,
    /// `GET .../revision/{rev}` (E2).
    Revision(RevisionTail),
    /// `GET .../tree/{rev}[/{path}]` (E3).
    Tree(RevisionTail),
    /// `POST .../paths-info/{rev}` (E4).
    PathsInfo(RevisionTail),
    /// `GET .../xet-read-token/{rev}`: a CAS read token (404 when the mirror hides Xet).
    XetReadToken(RevisionTail),
    /// `.../xet-write-token/...`: always 404 (the mirror takes no uploads).
    XetWriteToken,
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Under `/api/{type}s/{repo}`.
    Api {
        /// Repo type.
        repo_type: UrlRepoType,
        /// `org/name` or `name`.
        repo: String,
        /// What is asked.
        action: ApiAction,
    },
    /// `/{prefix}{repo}/resolve/{rev}/{path}` (E5, E6).
    Resolve {
        /// Repo type.
        repo_type: UrlRepoType,
        /// `org/name` or `name`.
        repo: String,
        /// The revision and the file path.
        tail: RevisionTail,
    },
    /// `/{prefix}{repo}/raw/{rev}/{path}`: the git content (an LFS file's pointer).
    Raw {
        /// Repo type.
        repo_type: UrlRepoType,
        /// `org/name` or `name`.
        repo: String,
        /// The revision and the file path.
        tail: RevisionTail,
    },
}

/// A path that is not valid percent-encoded UTF-8 or matches no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Bad percent-encoding.
    #[error("the request path is not valid percent-encoded UTF-8")]
    Encoding,
    /// No route has this shape.
    #[error("no such endpoint")]
    NoRoute,
}

/// Split a raw path on `/`, drop empty segments, and percent-decode each one.
pub fn segments(raw_path: &str) -> Result<Vec<String>, PathError> {
    raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| PathError::Encoding)
        })
        .collect()
}

const API_KEYWORDS: [&str; 5] = [
    "revision",
    "tree",
    "paths-info",
    "xet-read-token",
    "xet-write-token",
];

/// Parse a raw (still percent-encoded) request path.
pub fn parse(raw_path: &str) -> Result<Route, PathError> {
    let segs = segments(raw_path)?;
    if segs.first().map(String::as_str) == Some("api") {
        return parse_api(&segs[1..]);
    }
    parse_resolve(&segs)
}

fn parse_api(segs: &[String]) -> Result<Route, PathError> {
    let repo_type = segs
        .first()
        .and_then(|s| UrlRepoType::from_plural(s))
        .ok_or(PathError::NoRoute)?;
    let rest = &segs[1..];
    let is_keyword = |i: usize| {
        rest.get(i)
            .is_some_and(|s| API_KEYWORDS.contains(&s.as_str()))
    };
    // Two-segment ids are the norm; a keyword right after one segment means a legacy id.
    let repo_len = if rest.len() <= 2 && !is_keyword(1) {
        rest.len()
    } else if is_keyword(2) {
        2
    } else if is_keyword(1) {
        1
    } else {
        return Err(PathError::NoRoute);
    };
    if repo_len == 0 {
        return Err(PathError::NoRoute);
    }
    let repo = rest[..repo_len].join("/");
    let Some(keyword) = rest.get(repo_len) else {
        return Ok(Route::Api {
            repo_type,
            repo,
            action: ApiAction::Info,
        });
    };
    let tail = RevisionTail {
        segments: rest[repo_len + 1..].to_vec(),
    };
    let action = match keyword.as_str() {
        "revision" if !tail.is_empty() => ApiAction::Revision(tail),
        "tree" if !tail.is_empty() => ApiAction::Tree(tail),
        "paths-info" if !tail.is_empty() => ApiAction::PathsInfo(tail),
        "xet-read-token" if !tail.is_empty() => ApiAction::XetReadToken(tail),
        "xet-read-token" | "xet-write-token" => ApiAction::XetWriteToken,
        _ => return Err(PathError::NoRoute),
    };
    Ok(Route::Api {
        repo_type,
        repo,
        action,
    })
}

fn parse_resolve(segs: &[String]) -> Result<Route, PathError> {
    let is_keyword = |k: &String| k == "resolve" || k == "raw";
    let resolve_at = |s: &[String]| match (s.get(1), s.get(2)) {
        (_, Some(k)) if is_keyword(k) => Some(2),
        (Some(k), _) if is_keyword(k) => Some(1),
        _ => None,
    };
    let (repo_type, rest) = match segs
        .first()
        .and_then(|s| UrlRepoType::from_plural(s))
        .filter(|t| *t != UrlRepoType::Model)
    {
        Some(t) if resolve_at(&segs[1..]).is_some() => (t, &segs[1..]),
        _ => (UrlRepoType::Model, segs),
    };
    let at = resolve_at(rest).ok_or(PathError::NoRoute)?;
    let tail = RevisionTail {
        segments: rest[at + 1..].to_vec(),
    };
    if tail.segments.len() < 2 {
        return Err(PathError::NoRoute);
    }
    let repo = rest[..at].join("/");
    Ok(if rest[at] == "raw" {
        Route::Raw {
            repo_type,
            repo,
            tail,
        }
    } else {
        Route::Resolve {
            repo_type,
            repo,
            tail,
        }
    })
}

/// Percent-encode one path component the way Python's `quote(s, safe="")` does.
pub fn encode_component(raw: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(raw, SET).to_string()
}

/// Parse `true|True|1` / `false|False|0` (clients differ, hub-protocol.md §1.3).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(route: Route) -> RevisionTail {
        match route {
            Route::Resolve { tail, .. } => tail,
            Route::Api {
                action: ApiAction::Tree(t) | ApiAction::Revision(t) | ApiAction::PathsInfo(t),
                ..
            } => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_routes() {
        assert_eq!(
            parse("/api/models/org/name").unwrap(),
            Route::Api {
                repo_type: UrlRepoType::Model,
                repo: "org/name".into(),
                action: ApiAction::Info
            }
        );
        assert_eq!(
            parse("//api/models/gpt2").unwrap(),
            Route::Api {
                repo_type: UrlRepoType::Model,
                repo: "gpt2".into(),
                action: ApiAction::Info
            }
        );
        let r = parse("/api/datasets/gpt2/revision/refs%2Fpr%2F1").unwrap();
        assert!(
            matches!(&r, Route::Api { repo, repo_type: UrlRepoType::Dataset, .. } if repo == "gpt2")
        );
        assert_eq!(tail(r).whole(), "refs/pr/1");
        let r = parse("/api/models/org/name/revision/refs/pr/1").unwrap();
        assert_eq!(tail(r).whole(), "refs/pr/1");
        let r = parse("/api/models/org/name/tree/main/sub%2Fdir").unwrap();
        assert_eq!(tail(r).splits(false)[0], ("main".into(), "sub/dir".into()));
        assert!(matches!(
            parse("/api/models/org/name/xet-read-token/main").unwrap(),
            Route::Api {
                action: ApiAction::XetReadToken(_),
                ..
            }
        ));
        assert!(matches!(
            parse("/api/models/org/name/xet-write-token/main").unwrap(),
            Route::Api {
                action: ApiAction::XetWriteToken,
                ..
            }
        ));
        assert_eq!(parse("/api/models/a/b/c/d"), Err(PathError::NoRoute));
        assert_eq!(parse("/api/foo/a/b"), Err(PathError::NoRoute));
        assert_eq!(parse("/api/models/a/b/tree"), Err(PathError::NoRoute));
    }

    #[test]
    fn resolve_routes() {
        let r = parse("/org/name/resolve/main/sub/f%20x.bin").unwrap();
        assert!(
            matches!(&r, Route::Resolve { repo, repo_type: UrlRepoType::Model, .. } if repo == "org/name")
        );
        assert_eq!(
            tail(r).splits(true),
            vec![
                ("main".into(), "sub/f x.bin".into()),
                ("main/sub".into(), "f x.bin".into())
            ]
        );
        let r = parse("/datasets/org/name/resolve/refs%2Fpr%2F1/a.txt").unwrap();
        assert!(matches!(
            &r,
            Route::Resolve {
                repo_type: UrlRepoType::Dataset,
                ..
            }
        ));
        assert_eq!(
            tail(r).splits(true),
            vec![("refs/pr/1".into(), "a.txt".into())]
        );
        let r = parse("/org/name/resolve/refs/pr/1/a/b.txt").unwrap();
        assert_eq!(
            tail(r).splits(true)[..2],
            [
                ("refs/pr/1".into(), "a/b.txt".into()),
                ("refs".into(), "pr/1/a/b.txt".into())
            ]
        );
        let r = parse("/gpt2/resolve/main/config.json").unwrap();
        assert!(matches!(&r, Route::Resolve { repo, .. } if repo == "gpt2"));
        // A model whose org is literally `datasets`.
        let r = parse("/datasets/resolve/main/x").unwrap();
        assert!(
            matches!(&r, Route::Resolve { repo, repo_type: UrlRepoType::Model, .. } if repo == "datasets")
        );
        assert_eq!(parse("/org/name/resolve/main"), Err(PathError::NoRoute));
        assert_eq!(parse("/org/name/blob/main/x"), Err(PathError::NoRoute));
        assert_eq!(parse("/org/name/resolve/%ff/x"), Err(PathError::Encoding));
    }

    #[test]
    fn encoding() {
        assert_eq!(encode_component("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_component("a b+c"), "a%20b%2Bc");
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
    }
}

/// Property tests: hostile request paths (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzzing::{any_text, hostile_text};
    use proptest::prelude::*;

    fn request_path() -> impl Strategy<Value = String> {
        let keyword = proptest::sample::select(vec![
            "api",
            "models",
            "datasets",
            "spaces",
            "resolve",
            "raw",
            "revision",
            "tree",
            "paths-info",
            "xet-read-token",
            "xet-write-token",
            "refs",
            "pr",
            "HEAD",
            "main",
        ]);
        let segment = prop_oneof![
            3 => keyword.prop_map(str::to_owned),
            2 => "[a-z0-9]{1,4}",
            1 => hostile_text(3),
        ];
        prop_oneof![
            4 => proptest::collection::vec(segment, 0..9).prop_map(|s| format!("/{}", s.join("/"))),
            1 => any_text(12),
        ]
    }

    fn check_tail(tail: &RevisionTail, need_path: bool) -> Result<(), TestCaseError> {
        let whole = tail.segments.join("/");
        for (revision, path) in tail.splits(need_path) {
            prop_assert!(!need_path || !path.is_empty());
            let rejoined = if path.is_empty() {
                revision.clone()
            } else {
                format!("{revision}/{path}")
            };
            if revision == "main" && tail.segments.first().map(String::as_str) == Some(DEFAULT_HEAD)
            {
                continue;
            }
            prop_assert_eq!(rejoined, whole.clone());
        }
        let _ = tail.likely(need_path);
        let _ = tail.whole();
        Ok(())
    }

    const DEFAULT_HEAD: &str = crate::hub::DEFAULT_BRANCH_ALIAS;

    proptest! {
        /// Any request path routes or is refused without a panic; a route's revision and
        /// path splits put the tail back together.
        #[test]
        fn request_paths(path in request_path()) {
            match parse(&path) {
                Ok(Route::Api { repo, action, .. }) => {
                    prop_assert!(!repo.is_empty());
                    match action {
                        ApiAction::Revision(tail) | ApiAction::Tree(tail) | ApiAction::PathsInfo(tail) | ApiAction::XetReadToken(tail) => {
                            check_tail(&tail, false)?;
                        }
                        ApiAction::Info | ApiAction::XetWriteToken => {}
                    }
                }
                Ok(Route::Resolve { tail, .. } | Route::Raw { tail, .. }) => check_tail(&tail, true)?,
                Err(_) => {}
            }
        }
    }
}
