//! Live updates: `GET /v1/events`, a server-sent-events stream of what changes in the mirror:
//! job progress and ends (`job`), revisions newly held (`revision`), licence changes and
//! reviews (`licence`), and what the console's actions changed (`pin`, `track`).
//!
//! Each event is one SSE message whose `event:` is the type and whose `data:` is JSON. Events
//! go through one bounded broadcast channel: a subscriber that falls behind by more than
//! [`BUFFER`] events gets a `resync` event (re-read everything) instead of unbounded memory.
//! The watcher ([`spawn_watcher`]) turns the registry's state into events by comparing it with
//! what it saw last, and reads the registry only while someone listens. Private repos never
//! appear, as on the page.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast;

use super::Mirror;
use crate::daemon::jobs::JobView;
use crate::registry::{CommitId, RepoKind};

/// Events a subscriber may fall behind by before it is told to resync.
pub const BUFFER: usize = 256;
/// Most subscribers at once; more get 503 (each holds a connection and a buffer slot).
pub const MAX_SUBSCRIBERS: usize = 64;
/// How often jobs are compared while someone listens.
const JOBS_EVERY: Duration = Duration::from_millis(400);
/// How often held revisions and the audit log are compared (every this many job ticks).
const REPOS_EVERY_TICKS: u32 = 5;

/// One change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job was queued, moved or ended.
    Job {
        /// The job as `GET /v1/jobs/{id}` shows it.
        job: Box<JobView>,
    },
    /// A revision is newly held.
    Revision {
        /// `model` or `dataset`.
        kind: RepoKind,
        /// `org/name`.
        repo: String,
        /// The commit.
        commit: CommitId,
    },
    /// A licence changed (tracking saw a relicensing) or was reviewed.
    Licence {
        /// `model` or `dataset`.
        kind: RepoKind,
        /// `org/name`.
        repo: String,
        /// The audit-log action (`licence_changed`, `review_licence`, `accept_licence`).
        action: String,
        /// The commit, when the entry names one.
        commit: Option<CommitId>,
    },
    /// A revision was pinned or unpinned.
    Pin {
        /// `model` or `dataset`.
        kind: RepoKind,
        /// `org/name`.
        repo: String,
        /// The commit.
        commit: CommitId,
        /// Pinned now.
        pinned: bool,
    },
    /// A ref was tracked or untracked.
    Track {
        /// `model` or `dataset`.
        kind: RepoKind,
        /// `org/name`.
        repo: String,
        /// The ref.
        #[serde(rename = "ref")]
        reference: String,
        /// Tracked now.
        tracked: bool,
    },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Job { .. } => "job",
            Event::Revision { .. } => "revision",
            Event::Licence { .. } => "licence",
            Event::Pin { .. } => "pin",
            Event::Track { .. } => "track",
        }
    }
}

/// The mirror's event channel.
pub struct Events {
    sender: broadcast::Sender<Event>,
    /// Cancelled when the mirror shuts down: open streams end, so that shutdown does not wait
    /// on them.
    closing: tokio_util::sync::CancellationToken,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(BUFFER).0,
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }
}

impl Events {
    /// The token whose cancelling ends every open stream.
    pub fn closing(&self) -> tokio_util::sync::CancellationToken {
        self.closing.clone()
    }

    /// Send an event to every subscriber (none listening: dropped).
    pub fn send(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    fn listening(&self) -> bool {
        self.sender.receiver_count() > 0
    }
}

/// `GET /v1/events`: the stream, starting with a `hello` event.
pub async fn stream(State(mirror): State<Arc<Mirror>>) -> axum::response::Response {
    if mirror.events.sender.receiver_count() >= MAX_SUBSCRIBERS {
        return super::api_error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open; poll /v1/jobs instead",
        )
        .into_response();
    }
    let receiver = mirror.events.sender.subscribe();
    let hello = futures::stream::once(async {
        Ok::<_, Infallible>(SseEvent::default().event("hello").data("{}"))
    });
    let updates = futures::stream::unfold(receiver, |mut receiver| async move {
        let message = match receiver.recv().await {
            Ok(event) => {
                let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
                SseEvent::default().event(event.name()).data(data)
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => SseEvent::default()
                .event("resync")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(message), receiver))
    });
    let closing = mirror.events.closing.clone().cancelled_owned();
    let mut response = Sse::new(hello.chain(updates).take_until(closing))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// What the watcher saw last.
#[derive(Default)]
struct Seen {
    /// Jobs by id: (state, bytes, updated).
    jobs: BTreeMap<i64, (String, u64, i64)>,
    /// Held public revisions; `None` until first read (nothing is "new" on the first look).
    revisions: Option<BTreeSet<(RepoKind, String, CommitId)>>,
    /// The last audit-log id looked at.
    audit_id: Option<i64>,
}

/// Compare the registry with what was seen, while anyone listens; stops with the mirror.
pub fn spawn_watcher(mirror: std::sync::Weak<Mirror>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut tick: u32 = 0;
        loop {
            tokio::time::sleep(JOBS_EVERY).await;
            let Some(mirror) = mirror.upgrade() else {
                return;
            };
            if !mirror.events.listening() {
                continue;
            }
            watch_jobs(&mirror, &mut seen).await;
            if tick.is_multiple_of(REPOS_EVERY_TICKS) {
                watch_repos(&mirror, &mut seen).await;
                watch_audit(&mirror, &mut seen).await;
            }
            tick = tick.wrapping_add(1);
        }
    })
}

async fn watch_jobs(mirror: &Mirror, seen: &mut Seen) {
    let jobs = match &mirror.daemon {
        Some(daemon) => daemon.jobs().await.ok(),
        None => mirror.larder.registry.jobs().await.ok(),
    };
    for job in jobs.into_iter().flatten() {
        let view = JobView::from(job);
        let key = (
            view.state.as_str().to_owned(),
            view.progress.bytes,
            view.updated_at,
        );
        if seen.jobs.get(&view.id) != Some(&key) {
            seen.jobs.insert(view.id, key);
            mirror.events.send(Event::Job {
                job: Box::new(view),
            });
        }
    }
}

async fn watch_repos(mirror: &Mirror, seen: &mut Seen) {
    let Ok(repos) = mirror.larder.registry.list_repos().await else {
        return;
    };
    let now: BTreeSet<(RepoKind, String, CommitId)> = repos
        .into_iter()
        .filter(|r| !r.private)
        .flat_map(|r| {
            let (kind, name) = (r.kind, r.name);
            r.revisions
                .into_iter()
                .map(move |v| (kind, name.clone(), v.sha))
        })
        .collect();
    if let Some(before) = &seen.revisions {
        for (kind, repo, commit) in now.difference(before) {
            mirror.events.send(Event::Revision {
                kind: *kind,
                repo: repo.clone(),
                commit: *commit,
            });
        }
    }
    seen.revisions = Some(now);
}

async fn watch_audit(mirror: &Mirror, seen: &mut Seen) {
    let Ok(entries) = mirror.larder.registry.audit_log(None).await else {
        return;
    };
    let last = entries.iter().map(|e| e.id).max().unwrap_or(0);
    let Some(after) = seen.audit_id.replace(last) else {
        return;
    };
    for entry in entries.into_iter().filter(|e| e.id > after) {
        let licence = matches!(
            entry.action.as_str(),
            crate::daemon::track::LICENCE_CHANGED_ACTION
                | crate::licence::ACCEPT_ACTION
                | crate::licence::REVIEW_ACTION
        );
        let Some((kind, repo)) = entry.repo.as_deref().and_then(split_audit_repo) else {
            continue;
        };
        if !licence || mirror.is_private(kind, &repo).await {
            continue;
        }
        let commit = entry
            .detail
            .as_ref()
            .and_then(|d| d.get("commit").or_else(|| d.get("new_commit")))
            .and_then(|c| c.as_str())
            .and_then(|c| CommitId::parse(c).ok());
        mirror.events.send(Event::Licence {
            kind,
            repo,
            action: entry.action,
            commit,
        });
    }
}

/// `model:org/name` → (kind, name).
fn split_audit_repo(text: &str) -> Option<(RepoKind, String)> {
    let (kind, name) = text.split_once(':')?;
    let kind = match kind {
        "model" => RepoKind::Model,
        "dataset" => RepoKind::Dataset,
        _ => return None,
    };
    Some((kind, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_repo_names_split() {
        assert_eq!(
            split_audit_repo("dataset:acme/x"),
            Some((RepoKind::Dataset, "acme/x".to_owned()))
        );
        assert_eq!(split_audit_repo("space:acme/x"), None);
        assert_eq!(split_audit_repo("acme/x"), None);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_to_resync() {
        let events = Events::default();
        let mut receiver = events.sender.subscribe();
        for i in 0..(BUFFER + 10) {
            events.send(Event::Track {
                kind: RepoKind::Model,
                repo: format!("acme/{i}"),
                reference: "main".to_owned(),
                tracked: true,
            });
        }
        assert!(matches!(
            receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }
}
