//! Repo info as the upstream sent it: the mirror passes through what the upstream said of a
//! commit (kept at pull time, see `hub::info`) and overlays only what it owns.
//!
//! Owned by the mirror ([`OWNED`]): `id` and `modelId` (the name it serves the repo under),
//! `sha` (the commit it holds), `siblings` (that commit's files as it lists them), `private` and
//! `gated` (as it checks them) and `disabled` (as it last saw it). Everything else —
//! `pipeline_tag`, `library_name`, `tags`, `config`, `transformersInfo`, `safetensors`, `gguf`,
//! `cardData`, `model-index`, `widgetData`, `createdAt`, `lastModified` of that commit,
//! `xetEnabled`, ... — is the upstream's, passed through unchanged whatever its type. Without a
//! kept info (a revision recorded by an older Larder, an import, or an info too large to keep)
//! the mirror's own synthesised answer stands.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Mirror;
use super::cache::{RepoItemKey, TtlCache};
use crate::registry::CommitDetail;

/// How long a commit's kept info is reused between requests (it changes only when the
/// upstream is asked again, which also forgets it here).
const TTL: Duration = Duration::from_secs(30);
/// Most commits' kept info cached at once.
const CACHE_MAX: usize = 256;

/// The kept info of recently served commits, parsed (`None`: the commit has none).
pub struct UpstreamInfoCache(TtlCache<RepoItemKey, Option<Arc<Map<String, Value>>>>);

impl Default for UpstreamInfoCache {
    fn default() -> Self {
        UpstreamInfoCache(TtlCache::new(TTL, CACHE_MAX))
    }
}

impl UpstreamInfoCache {
    /// Forget what is cached of a repo (the upstream was asked again).
    pub fn forget(&self, kind: crate::registry::RepoKind, repo: &str) {
        self.0.forget(|key| key.kind == kind && key.repo == repo);
    }
}

/// The top-level info fields the mirror answers from its own records.
pub const OWNED: [&str; 7] = [
    "id", "modelId", "sha", "siblings", "private", "gated", "disabled",
];

/// Put the upstream's kept fields of `detail`'s commit into `body` (the mirror's own info of
/// it), leaving the [`OWNED`] ones as they are.
pub async fn overlay_upstream(mirror: &Mirror, detail: &CommitDetail, body: &mut Value) {
    let key = RepoItemKey::new(detail.kind, &detail.name, detail.sha);
    let cache = &mirror.upstream_info.0;
    let upstream = match cache.get(&key) {
        Some(cached) => cached,
        None => {
            let kept = match mirror
                .larder
                .registry
                .upstream_info(detail.kind, &detail.name, &detail.sha)
                .await
            {
                Ok(kept) => kept,
                Err(error) => {
                    tracing::warn!(repo = detail.name, %error, "reading the upstream info failed; serving Larder's own");
                    return;
                }
            };
            let parsed = kept
                .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok())
                .map(Arc::new);
            cache.insert(key, parsed.clone());
            parsed
        }
    };
    if let Some(upstream) = upstream {
        overlay(body, &upstream);
    }
}

/// `body` with every field of `upstream` but the [`OWNED`] ones.
pub fn overlay(body: &mut Value, upstream: &Map<String, Value>) {
    let Value::Object(map) = body else { return };
    for (key, value) in upstream {
        if !OWNED.contains(&key.as_str()) {
            map.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owned_fields_stay_the_mirrors() {
        let mut body = json!({"id": "a/b", "sha": "1", "siblings": [], "gated": false, "tags": ["license:mit"]});
        let upstream = json!({"id": "x", "sha": "2", "siblings": [1], "gated": "auto",
            "tags": ["transformers", "license:mit"], "pipeline_tag": 7});
        let Value::Object(upstream) = upstream else {
            unreachable!()
        };
        overlay(&mut body, &upstream);
        assert_eq!(body["id"], "a/b");
        assert_eq!(body["sha"], "1");
        assert_eq!(body["siblings"], json!([]));
        assert_eq!(body["gated"], false);
        assert_eq!(body["tags"], json!(["transformers", "license:mit"]));
        assert_eq!(body["pipeline_tag"], 7);
    }
}
