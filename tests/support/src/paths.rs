//! Parsing raw request paths into endpoints.
//!
//! The raw path is split on `/` **before** percent-decoding each segment, so
//! `refs%2Fpr%2F1` stays one segment while `refs/pr/1` becomes three; the
//! handlers then match the longest existing ref name. Empty segments are
//! dropped, which tolerates `//` from clients that do not strip a trailing
//! slash off the endpoint.

use crate::model::RepoKind;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters Python's `quote(s, safe="")` leaves alone.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (also `/`), like `quote(s, safe="")`.
pub(crate) fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, UNRESERVED).to_string()
}

/// Splits on `/`, drops empty segments, decodes each.
pub(crate) fn segments(raw: &str) -> Vec<String> {
    raw.split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect()
}

/// What a request on the API listener asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/api/{kind}s/{repo}[/{op}/{rest…}]`; `op` is empty for plain repo info.
    Api {
        kind: RepoKind,
        repo: String,
        op: String,
        rest: Vec<String>,
    },
    /// `/{prefix}{repo}/resolve/{rest…}`.
    Resolve {
        kind: RepoKind,
        repo: String,
        rest: Vec<String>,
    },
    /// Anything else.
    Unknown,
}

const API_OPS: &[&str] = &[
    "revision",
    "tree",
    "paths-info",
    "xet-read-token",
    "xet-write-token",
    "refs",
    "commits",
];

/// Parses a raw path; `exists` disambiguates one- and two-segment repo ids.
pub(crate) fn parse(raw_path: &str, exists: impl Fn(RepoKind, &str) -> bool) -> Endpoint {
    let segments = segments(raw_path);
    if segments.first().map(String::as_str) == Some("api") {
        let Some(kind) = segments.get(1).and_then(|plural| RepoKind::parse(plural)) else {
            return Endpoint::Unknown;
        };
        let rest = &segments[2..];
        let two = rest.len() >= 2 && exists(kind, &format!("{}/{}", rest[0], rest[1]));
        let one = match rest.len() {
            0 => return Endpoint::Unknown,
            1 => true,
            _ => !two && API_OPS.contains(&rest[1].as_str()) && exists(kind, &rest[0]),
        };
        let (repo, tail) = if one {
            (rest[0].clone(), &rest[1..])
        } else {
            (format!("{}/{}", rest[0], rest[1]), &rest[2..])
        };
        let op = tail.first().cloned().unwrap_or_default();
        let rest = tail.iter().skip(1).cloned().collect();
        return Endpoint::Api {
            kind,
            repo,
            op,
            rest,
        };
    }
    let (kind, rest) = match segments.first().map(String::as_str) {
        Some("datasets") => (RepoKind::Dataset, &segments[1..]),
        Some("spaces") => (RepoKind::Space, &segments[1..]),
        _ => (RepoKind::Model, &segments[..]),
    };
    let two = rest.len() >= 3 && rest[2] == "resolve";
    let one = rest.len() >= 2 && rest[1] == "resolve";
    let use_two = two
        && (!one || exists(kind, &format!("{}/{}", rest[0], rest[1])) || !exists(kind, &rest[0]));
    if use_two {
        Endpoint::Resolve {
            kind,
            repo: format!("{}/{}", rest[0], rest[1]),
            rest: rest[3..].to_vec(),
        }
    } else if one {
        Endpoint::Resolve {
            kind,
            repo: rest[0].clone(),
            rest: rest[2..].to_vec(),
        }
    } else {
        Endpoint::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_and_literal_revisions() {
        let none = |_: RepoKind, _: &str| false;
        assert_eq!(
            parse("/api/models/a/b/revision/refs%2Fpr%2F1", none),
            Endpoint::Api {
                kind: RepoKind::Model,
                repo: "a/b".into(),
                op: "revision".into(),
                rest: vec!["refs/pr/1".into()]
            }
        );
        assert_eq!(
            parse("//datasets/a/b/resolve/refs/pr/1/x%20y.txt", none),
            Endpoint::Resolve {
                kind: RepoKind::Dataset,
                repo: "a/b".into(),
                rest: vec!["refs".into(), "pr".into(), "1".into(), "x y.txt".into()]
            }
        );
        let gpt2 = |_: RepoKind, id: &str| id == "gpt2";
        assert_eq!(
            parse("/gpt2/resolve/main/config.json", gpt2),
            Endpoint::Resolve {
                kind: RepoKind::Model,
                repo: "gpt2".into(),
                rest: vec!["main".into(), "config.json".into()]
            }
        );
        assert_eq!(
            parse("/api/models/gpt2/tree/main", gpt2),
            Endpoint::Api {
                kind: RepoKind::Model,
                repo: "gpt2".into(),
                op: "tree".into(),
                rest: vec!["main".into()]
            }
        );
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
    }
}
