//! Tracking events sent to the webhook of `[daemon] webhook`: one JSON POST per new commit
//! pulled for a tracked ref. Delivery is best effort (a few tries, then a warning in the log).

use std::time::Duration;

use serde::Serialize;

use crate::registry::CommitId;

/// Tries per event.
const TRIES: u32 = 3;

/// A tracked ref moved and its new commit was pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackEvent {
    /// `revision`.
    pub event: &'static str,
    /// `model` or `dataset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `org/name`.
    pub repo: String,
    /// The tracked ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The commit held before (none when the repo was not held).
    pub old_commit: Option<CommitId>,
    /// The commit pulled.
    pub new_commit: CommitId,
    /// Licence of the old commit (Hub id), when known.
    pub licence_before: Option<String>,
    /// Licence of the new commit (Hub id), when known.
    pub licence_after: Option<String>,
    /// Whether the licence differs between the two.
    pub licence_changed: bool,
    /// The pull job.
    pub job: i64,
}

/// POST `event` to `url`; errors are logged, not returned.
pub async fn send(client: &reqwest::Client, url: &str, event: &TrackEvent) {
    post(client, url, event).await;
}

/// POST any tracking event (`{"event": ..., "repo": ..., ...}`) to `url`, with the same tries;
/// errors are logged, not returned.
pub async fn post(client: &reqwest::Client, url: &str, event: &impl Serialize) {
    for attempt in 1..=TRIES {
        let sent = client
            .post(url)
            .timeout(Duration::from_secs(10))
            .json(event)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::debug!("webhook delivered");
                return;
            }
            Ok(response) => tracing::warn!(
                attempt,
                status = response.status().as_u16(),
                "the webhook refused a tracking event"
            ),
            Err(error) => tracing::warn!(attempt, %error, "the webhook could not be reached"),
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
    tracing::warn!("tracking event dropped after {TRIES} tries");
}
