//! The held repos as people see them: what the web page lists and `GET /v1/repos` answers.
//!
//! One row per public repo: its newest pulled revision (size held, refs), how many revisions are
//! held, the licence with the verdict of the mirror's policy (or, without one, of the empty
//! policy, which sends everything to review, as `larder audit` does), when it was last pulled,
//! served, and checked upstream (a tracked ref's check, or any ref seen by a pull or a
//! pull-through lookup), which refs are tracked and whether a revision is pinned. Private repos are left out (the mirror's Hub
//! API hides them from anonymous clients too) and only counted. Verdicts are cached per commit
//! for a minute: an audit reads the commit's tree and the audit log.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Mirror;
use super::cache::{RepoItemKey, TtlCache};
use crate::registry::{CommitId, RegistryError, RepoKind, RepoSummary, TrackedRef};

/// How long a licence verdict is reused.
const VERDICT_TTL: Duration = Duration::from_secs(60);
/// Most verdicts cached at once.
const VERDICT_CACHE_MAX: usize = 4096;

/// A repo's licence and what the policy says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenceView {
    /// The Hub id (or catalog key, or the card's own words); `unknown` when undetected.
    pub id: String,
    /// The licence's full name, when the catalog knows it.
    pub name: String,
    /// `allow`, `review`, `deny`, or `unknown` when the audit failed.
    pub verdict: String,
    /// Why.
    pub reasons: Vec<String>,
}

/// One held repo.
#[derive(Debug, Clone, Serialize)]
pub struct RepoRow {
    /// `model` or `dataset`.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// The gate (`auto`, `manual`), if any.
    pub gated: Option<String>,
    /// Held revisions.
    pub revisions: usize,
    /// The most recently pulled commit.
    pub commit: CommitId,
    /// Refs pointing at it when last seen.
    pub refs: Vec<String>,
    /// Files in its tree, and how many of them are held.
    pub files: u64,
    /// Files held.
    pub files_held: u64,
    /// Bytes of its held files.
    pub bytes_held: u64,
    /// Bytes of its whole tree.
    pub bytes_total: u64,
    /// Its licence and verdict.
    pub licence: LicenceView,
    /// When a revision was last pulled (unix seconds).
    pub last_pulled: i64,
    /// When the upstream was last asked about the repo (unix seconds): a tracked ref's
    /// check, or a ref seen by a pull or a pull-through lookup.
    pub last_checked: Option<i64>,
    /// When the mirror last served one of its revisions (recorded in batches).
    pub last_served: Option<i64>,
    /// Refs followed by `larder track`.
    pub tracked: Vec<String>,
    /// The last tracking check's error, if it failed.
    pub track_error: Option<String>,
    /// Whether a held revision is pinned (quota eviction keeps it).
    pub pinned: bool,
}

impl RepoRow {
    /// Whether the row matches a search: every word of `query` occurs (case-insensitively) in
    /// the name, kind or licence.
    pub fn matches(&self, query: &str) -> bool {
        let haystack = self.search_text();
        query
            .split_whitespace()
            .all(|word| haystack.contains(&word.to_lowercase()))
    }

    /// The lowercase text a search looks in (the page's script uses the same).
    pub fn search_text(&self) -> String {
        format!(
            "{} {} {} {}",
            self.name, self.kind, self.licence.id, self.licence.name
        )
        .to_lowercase()
    }
}

/// The page's (and `/v1/repos`') data.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Public repos, models then datasets, by name.
    pub repos: Vec<RepoRow>,
    /// Private repos held and not listed.
    pub private_hidden: usize,
    /// Whether a licence policy is configured.
    pub policy: bool,
    /// Whether the mirror fetches what it lacks (and runs jobs).
    pub online: bool,
    /// What was sent since start, by transport, when the mirror serves Xet.
    pub transports: Option<Transports>,
}

/// File bytes sent since the mirror started, by transport (for the page).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Transports {
    /// Xet reconstructions answered.
    pub reconstructions: u64,
    /// Xorb bytes sent.
    pub xet_bytes: u64,
    /// `/resolve` body bytes sent.
    pub http_bytes: u64,
    /// Bytes the mirror's own Xet pulls copied from held revisions instead of fetching.
    pub reused_bytes: u64,
}

/// Cached verdicts by commit.
pub struct Verdicts {
    cache: TtlCache<RepoItemKey, LicenceView>,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            cache: TtlCache::new(VERDICT_TTL, VERDICT_CACHE_MAX),
        }
    }
}

impl Verdicts {
    /// Forget the verdicts of a repo's commits (a review changed them).
    pub fn forget(&self, kind: RepoKind, name: &str) {
        self.cache
            .forget(|key| key.kind == kind && key.repo == name);
    }
}

/// Every held public repo (filtered by `query` when given).
pub async fn overview(mirror: &Mirror, query: Option<&str>) -> Result<Overview, RegistryError> {
    let summaries = mirror.larder.registry.list_repos().await?;
    let mut tracked: BTreeMap<(RepoKind, String), Vec<TrackedRef>> = BTreeMap::new();
    for entry in mirror.larder.registry.tracked().await? {
        tracked
            .entry((entry.kind, entry.name.clone()))
            .or_default()
            .push(entry);
    }
    let private_hidden = summaries.iter().filter(|r| r.private).count();
    let mut repos = Vec::new();
    for summary in summaries.into_iter().filter(|r| !r.private) {
        let refs = tracked
            .remove(&(summary.kind, summary.name.clone()))
            .unwrap_or_default();
        let Some(row) = row(mirror, summary, refs).await? else {
            continue;
        };
        if query.is_none_or(|q| row.matches(q)) {
            repos.push(row);
        }
    }
    Ok(Overview {
        repos,
        private_hidden,
        policy: mirror.options.policy.is_some(),
        online: mirror.pull.is_some(),
        transports: mirror.xet.is_some().then(|| {
            mirror
                .metrics
                .transports(mirror.daemon.as_ref().map_or(0, |d| d.xet_reused_bytes()))
        }),
    })
}

async fn row(
    mirror: &Mirror,
    summary: RepoSummary,
    tracked: Vec<TrackedRef>,
) -> Result<Option<RepoRow>, RegistryError> {
    let Some(newest) = summary.revisions.first() else {
        return Ok(None);
    };
    let seen = match mirror
        .larder
        .registry
        .ref_history(summary.kind, &summary.name)
        .await
    {
        Ok(history) => history.iter().map(|o| o.last_seen).max(),
        Err(RegistryError::UnknownRepo { .. }) => None,
        Err(e) => return Err(e),
    };
    let last_checked = tracked
        .iter()
        .filter_map(|t| t.last_checked)
        .chain(seen)
        .max();
    let track_error = tracked.iter().find_map(|t| t.last_error.clone());
    let licence = verdict(mirror, summary.kind, &summary.name, &newest.sha).await;
    Ok(Some(RepoRow {
        kind: summary.kind,
        gated: summary.gated.clone(),
        revisions: summary.revisions.len(),
        commit: newest.sha,
        refs: newest.refs.clone(),
        files: newest.files,
        files_held: newest.files_held,
        bytes_held: newest.bytes_held,
        bytes_total: newest.bytes_total,
        last_pulled: summary
            .revisions
            .iter()
            .map(|r| r.fetched_at)
            .max()
            .unwrap_or_default(),
        last_checked,
        last_served: summary.revisions.iter().filter_map(|r| r.last_served).max(),
        tracked: tracked.into_iter().map(|t| t.reference).collect(),
        track_error,
        pinned: summary.revisions.iter().any(|r| r.pinned),
        licence,
        name: summary.name,
    }))
}

/// The licence of a commit and the policy's verdict, cached.
pub(super) async fn verdict(
    mirror: &Mirror,
    kind: RepoKind,
    name: &str,
    sha: &CommitId,
) -> LicenceView {
    let key = RepoItemKey::new(kind, name, sha);
    if let Some(view) = mirror.verdicts.cache.get(&key) {
        return view;
    }
    let view = audit(mirror, kind, name, sha).await;
    mirror.verdicts.cache.insert(key, view.clone());
    view
}

async fn audit(mirror: &Mirror, kind: RepoKind, name: &str, sha: &CommitId) -> LicenceView {
    let unknown = |reason: String| LicenceView {
        id: "unknown".to_owned(),
        name: String::new(),
        verdict: "unknown".to_owned(),
        reasons: vec![reason],
    };
    let empty;
    let policy = match &mirror.options.policy {
        Some(policy) => policy.as_ref(),
        None => match larder_licence::Policy::from_toml("") {
            Ok(policy) => {
                empty = policy;
                &empty
            }
            Err(e) => return unknown(format!("the empty policy failed: {e}")),
        },
    };
    let targets = [(name.to_owned(), Some(sha.to_string()))];
    match crate::licence::audit(&mirror.larder, kind, &targets, policy).await {
        Ok(rows) => match rows.into_iter().next() {
            Some(audited) => LicenceView {
                id: audited.row.licence_id,
                name: audited.row.licence_name,
                verdict: audited.row.verdict,
                reasons: audited.row.reasons,
            },
            None => unknown("no audit row".to_owned()),
        },
        Err(error) => {
            let chain = crate::fetch::transfer::error_chain(&error);
            tracing::warn!(
                repo = name,
                commit = %sha,
                error = chain,
                "licence audit failed"
            );
            unknown(format!("the licence could not be determined: {chain}"))
        }
    }
}

/// `GET /v1/repos[?q=words]`.
pub async fn list(
    axum::extract::State(mirror): axum::extract::State<std::sync::Arc<Mirror>>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = search_query(uri.query());
    match overview(&mirror, query.as_deref()).await {
        Ok(overview) => axum::Json(overview).into_response(),
        Err(e) => super::errors::internal("listing repos failed", &e).into_response(),
    }
}

/// The `q` parameter of a query string, trimmed; `None` when absent or blank.
pub fn search_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, licence: &str) -> RepoRow {
        RepoRow {
            kind: RepoKind::Model,
            name: name.to_owned(),
            gated: None,
            revisions: 1,
            commit: CommitId::parse(&"a".repeat(40)).unwrap(),
            refs: vec!["main".to_owned()],
            files: 1,
            files_held: 1,
            bytes_held: 1,
            bytes_total: 1,
            licence: LicenceView {
                id: licence.to_owned(),
                name: "Apache License 2.0".to_owned(),
                verdict: "allow".to_owned(),
                reasons: Vec::new(),
            },
            last_pulled: 0,
            last_checked: None,
            last_served: None,
            tracked: Vec::new(),
            track_error: None,
            pinned: false,
        }
    }

    #[test]
    fn search_needs_every_word_in_any_case() {
        let r = row("Acme/Tiny-Llama", "apache-2.0");
        assert!(r.matches("tiny"));
        assert!(r.matches("TINY apache"));
        assert!(r.matches("model llama"));
        assert!(r.matches("License 2.0"));
        assert!(!r.matches("tiny mit"));
        assert!(!r.matches("dataset"));
        assert!(r.matches(""));
    }

    #[test]
    fn the_query_parameter_is_decoded_and_trimmed() {
        assert_eq!(search_query(Some("q=a+b%3C")), Some("a b<".to_owned()));
        assert_eq!(
            search_query(Some("x=1&q=%20tiny%20")),
            Some("tiny".to_owned())
        );
        assert_eq!(search_query(Some("q=+")), None);
        assert_eq!(search_query(None), None);
    }
}
