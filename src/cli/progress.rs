//! Turning pull events into output: indicatif bars on a terminal, log lines otherwise, or one
//! JSON object per line with `--json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use larder::fetch::progress::{PullEvent, Reporter};

use super::format;

/// Pick the reporter for this invocation.
pub fn reporter(json: bool) -> Box<dyn Reporter> {
    if json {
        Box::new(JsonLines::default())
    } else if std::io::stderr().is_terminal() && std::env::var_os("LARDER_NO_PROGRESS").is_none() {
        Box::new(Bars::new())
    } else {
        Box::new(LogLines)
    }
}

/// One JSON event per line on stdout; progress is coalesced to a few lines a second per file.
#[derive(Default)]
pub struct JsonLines {
    pending: Mutex<HashMap<String, (u64, Instant)>>,
}

impl JsonLines {
    fn emit(value: &impl serde::Serialize) {
        if let Ok(line) = serde_json::to_string(value) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

impl Reporter for JsonLines {
    fn report(&self, event: &PullEvent) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            PullEvent::FileProgress { path, bytes } => {
                let entry = pending.entry(path.clone()).or_insert((0, Instant::now()));
                entry.0 += bytes;
                if entry.1.elapsed() >= Duration::from_millis(250) {
                    Self::emit(&PullEvent::FileProgress {
                        path: path.clone(),
                        bytes: entry.0,
                    });
                    *entry = (0, Instant::now());
                }
            }
            PullEvent::FileVerified { path, .. } | PullEvent::FileFailed { path, .. } => {
                if let Some((bytes, _)) = pending.remove(path)
                    && bytes > 0
                {
                    Self::emit(&PullEvent::FileProgress {
                        path: path.clone(),
                        bytes,
                    });
                }
                Self::emit(event);
            }
            other => Self::emit(other),
        }
    }
}

/// Plain log lines on stderr (not a terminal).
pub struct LogLines;

impl Reporter for LogLines {
    fn report(&self, event: &PullEvent) {
        let line = match event {
            PullEvent::Resolved {
                repo,
                revision,
                commit,
                files,
                bytes,
                fetch_files,
                fetch_bytes,
                ..
            } => format!(
                "{repo}@{revision} -> {commit}: {files} files ({}), fetching {fetch_files} ({})",
                format::size(*bytes),
                format::size(*fetch_bytes)
            ),
            PullEvent::FileStarted {
                path,
                size,
                resumed,
            } if *resumed > 0 => format!(
                "resuming {path} ({} of {} already on disk)",
                format::size(*resumed),
                format::size(*size)
            ),
            PullEvent::FileStarted { path, size, .. } => {
                format!("fetching {path} ({})", format::size(*size))
            }
            PullEvent::FileVerified { path, .. } => format!("verified {path}"),
            PullEvent::Retrying {
                path,
                attempt,
                error,
                wait_ms,
            } => format!("retrying {path} in {wait_ms} ms (attempt {attempt}): {error}"),
            PullEvent::Mismatch { path, .. } => {
                format!("{path} failed verification; discarding it and fetching it again")
            }
            PullEvent::FileFailed { path, error } => format!("failed {path}: {error}"),
            PullEvent::Done {
                repo,
                commit,
                fetched_files,
                fetched_bytes,
                reused_files,
                reused_bytes,
                seconds,
            } if *reused_bytes > 0 => format!(
                "pulled {repo}@{commit}: reused {} from held revisions, fetched {} ({fetched_files} files, {reused_files} already held), {seconds:.1}s",
                format::size(*reused_bytes),
                format::size(*fetched_bytes)
            ),
            PullEvent::Done {
                repo,
                commit,
                fetched_files,
                fetched_bytes,
                reused_files,
                seconds,
                ..
            } => format!(
                "pulled {repo}@{commit}: {fetched_files} files fetched ({}), {reused_files} already held, {seconds:.1}s",
                format::size(*fetched_bytes)
            ),
            PullEvent::FileDelta {
                path,
                fetched,
                reused,
            } => format!(
                "{path}: reused {} from held revisions, fetched {} over Xet",
                format::size(*reused),
                format::size(*fetched)
            ),
            PullEvent::XetFallback { path, reason } => {
                format!("{path}: Xet storage unusable ({reason}); falling back to plain HTTP")
            }
            PullEvent::FileProgress { .. } | PullEvent::FileReused { .. } => return,
        };
        eprintln!("{line}");
    }
}

/// indicatif bars: a total bar (bytes, rate, ETA) and one line per active file.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bars {
            multi,
            total,
            files: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn report(&self, event: &PullEvent) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            PullEvent::Resolved {
                repo,
                commit,
                fetch_bytes,
                ..
            } => {
                self.total.set_length(*fetch_bytes);
                self.total
                    .set_message(format!("{repo}@{}", &commit[..commit.len().min(10)]));
            }
            PullEvent::FileStarted {
                path,
                size,
                resumed,
            } => {
                let bar = self.multi.add(ProgressBar::new(*size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {msg:40!} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(path.clone());
                bar.set_position(*resumed);
                self.total.inc(*resumed);
                files.insert(path.clone(), bar);
            }
            PullEvent::FileProgress { path, bytes } => {
                if let Some(bar) = files.get(path) {
                    bar.inc(*bytes);
                }
                self.total.inc(*bytes);
            }
            PullEvent::FileVerified { path, .. } => {
                if let Some(bar) = files.remove(path) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let _ = self.multi.println(format!("verified {path}"));
            }
            PullEvent::FileFailed { path, error } => {
                if let Some(bar) = files.remove(path) {
                    bar.abandon();
                }
                let _ = self.multi.println(format!("failed {path}: {error}"));
            }
            PullEvent::Retrying { path, error, .. } => {
                let _ = self.multi.println(format!("retrying {path}: {error}"));
            }
            PullEvent::Mismatch { path, .. } => {
                if let Some(bar) = files.remove(path) {
                    bar.finish_and_clear();
                }
                let _ = self
                    .multi
                    .println(format!("{path} failed verification; fetching it again"));
            }
            PullEvent::Done { .. } => {
                self.total.finish_and_clear();
                LogLines.report(event);
            }
            PullEvent::FileDelta { .. } | PullEvent::XetFallback { .. } => {
                self.multi.suspend(|| LogLines.report(event));
            }
            PullEvent::FileReused { .. } => {}
        }
    }
}
