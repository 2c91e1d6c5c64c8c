//! Turning pull events into output: indicatif bars on a terminal, log lines otherwise, or one
//! JSON object per line with `--json`.
//!
//! A pull of many files (more than [`MANY_FILES`] to fetch) is shown in aggregate: one bar (or,
//! off a terminal, one line every few seconds) with files and bytes done and their rates, bars
//! only for large files, and retries summarised rather than printed one per file.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use larder::fetch::progress::PullEvent;
use larder::report::Reporter;

use super::format;

/// More files to fetch than this and progress is shown in aggregate.
pub const MANY_FILES: usize = 50;
/// In aggregate mode, files at least this large still get a bar of their own.
const LARGE_FILE_BAR: u64 = 64 << 20;
/// How often the aggregate line is printed off a terminal.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// In aggregate mode, at most one retry line this often.
const RETRY_LINE_EVERY: Duration = Duration::from_secs(2);

/// Pick the reporter for this invocation.
pub fn reporter(json: bool) -> Box<dyn Reporter<PullEvent>> {
    if json {
        Box::new(JsonLines::default())
    } else if std::io::stderr().is_terminal() && std::env::var_os("LARDER_NO_PROGRESS").is_none() {
        Box::new(Bars::new())
    } else {
        Box::new(LogLines::default())
    }
}

/// Files and bytes done so far, for the aggregate display.
#[derive(Debug)]
struct Tally {
    files: usize,
    bytes: u64,
    files_done: usize,
    bytes_done: u64,
    started: Instant,
    last_summary: Instant,
    last_retry: Option<Instant>,
    retries_unshown: usize,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            files: 0,
            bytes: 0,
            files_done: 0,
            bytes_done: 0,
            started: Instant::now(),
            last_summary: Instant::now(),
            last_retry: None,
            retries_unshown: 0,
        }
    }
}

impl Tally {
    fn many(&self) -> bool {
        self.files > MANY_FILES
    }

    /// `1234/5000 files, 12 MiB/50 MiB, 812 files/s, 3.4 MiB/s`.
    fn summary(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{}/{} files, {}/{}, {:.0} files/s, {}/s",
            self.files_done,
            self.files,
            format::size(self.bytes_done),
            format::size(self.bytes),
            self.files_done as f64 / seconds,
            format::size((self.bytes_done as f64 / seconds) as u64)
        )
    }

    /// Whether to show this retry (in aggregate mode, one every [`RETRY_LINE_EVERY`]); the
    /// note says how many were not shown since the last one.
    fn retry_note(&mut self) -> Option<String> {
        if !self.many() {
            return Some(String::new());
        }
        let due = self
            .last_retry
            .is_none_or(|at| at.elapsed() >= RETRY_LINE_EVERY);
        if !due {
            self.retries_unshown += 1;
            return None;
        }
        self.last_retry = Some(Instant::now());
        let note = match std::mem::take(&mut self.retries_unshown) {
            0 => String::new(),
            n => format!(" ({n} more retries not shown)"),
        };
        Some(note)
    }
}

/// One JSON event per line on stdout; progress is coalesced to a few lines a second per file.
#[derive(Default)]
pub struct JsonLines {
    pending: Mutex<HashMap<Arc<str>, (u64, Instant)>>,
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

impl Reporter<PullEvent> for JsonLines {
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
                if let Some((shown, (bytes, _))) = pending.remove_entry(path.as_str())
                    && bytes > 0
                {
                    Self::emit(&PullEvent::FileProgress { path: shown, bytes });
                }
                Self::emit(event);
            }
            other => Self::emit(other),
        }
    }
}

/// Plain log lines on stderr (not a terminal): one per file event, or for many files an
/// aggregate line every few seconds.
#[derive(Default)]
pub struct LogLines {
    tally: Mutex<Tally>,
}

impl Reporter<PullEvent> for LogLines {
    fn report(&self, event: &PullEvent) {
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let summary = match event {
            PullEvent::Resolved {
                fetch_files,
                fetch_bytes,
                ..
            } => {
                tally.files = *fetch_files;
                tally.bytes = *fetch_bytes;
                None
            }
            PullEvent::FileProgress { bytes, .. } => {
                tally.bytes_done += bytes;
                None
            }
            PullEvent::FileStarted { resumed, .. } => {
                tally.bytes_done += resumed;
                None
            }
            PullEvent::FileVerified { .. } => {
                tally.files_done += 1;
                (tally.many() && tally.last_summary.elapsed() >= SUMMARY_EVERY).then(|| {
                    tally.last_summary = Instant::now();
                    tally.summary()
                })
            }
            _ => None,
        };
        if let Some(summary) = summary {
            eprintln!("{summary}");
        }
        let quiet = tally.many()
            && matches!(
                event,
                PullEvent::FileStarted { .. } | PullEvent::FileVerified { .. }
            );
        let retry_note = match event {
            PullEvent::Retrying { .. } => match tally.retry_note() {
                Some(note) => note,
                None => return,
            },
            _ => String::new(),
        };
        drop(tally);
        if quiet {
            return;
        }
        if let Some(line) = line(event) {
            eprintln!("{line}{retry_note}");
        }
    }
}

/// The log line of an event, if it has one.
fn line(event: &PullEvent) -> Option<String> {
    {
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
            // The command prints what an interrupted pull kept.
            PullEvent::FileProgress { .. }
            | PullEvent::FileReused { .. }
            | PullEvent::Interrupted { .. } => return None,
        };
        Some(line)
    }
}

/// indicatif bars: a total bar (bytes, rate, ETA) and one line per active file; for many
/// files the total bar also counts files, and only large files get a line.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<String, ProgressBar>>,
    tally: Mutex<Tally>,
    title: Mutex<String>,
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
            tally: Mutex::new(Tally::default()),
            title: Mutex::new(String::new()),
        }
    }

    fn aggregate_style(&self) {
        self.total.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
    }

    /// `org/name@commit 1234/5000 files 812/s`.
    fn file_count(&self, tally: &Tally) {
        let seconds = tally.started.elapsed().as_secs_f64().max(0.001);
        let title = self.title.lock().unwrap_or_else(|p| p.into_inner());
        self.total.set_message(format!(
            "{title} {}/{} files {:.0}/s",
            tally.files_done,
            tally.files,
            tally.files_done as f64 / seconds
        ));
    }
}

impl Reporter<PullEvent> for Bars {
    fn report(&self, event: &PullEvent) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            PullEvent::Resolved {
                repo,
                commit,
                fetch_bytes,
                fetch_files,
                ..
            } => {
                tally.files = *fetch_files;
                tally.bytes = *fetch_bytes;
                self.total.set_length(*fetch_bytes);
                let title = format!("{repo}@{}", &commit[..commit.len().min(10)]);
                *self.title.lock().unwrap_or_else(|p| p.into_inner()) = title.clone();
                if tally.many() {
                    self.aggregate_style();
                    self.file_count(&tally);
                } else {
                    self.total.set_message(title);
                }
            }
            PullEvent::FileStarted {
                path,
                size,
                resumed,
            } => {
                self.total.inc(*resumed);
                if tally.many() && *size < LARGE_FILE_BAR {
                    return;
                }
                let bar = self.multi.add(ProgressBar::new(*size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {msg:40!} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(path.clone());
                bar.set_position(*resumed);
                files.insert(path.clone(), bar);
            }
            PullEvent::FileProgress { path, bytes } => {
                if let Some(bar) = files.get(&**path) {
                    bar.inc(*bytes);
                }
                self.total.inc(*bytes);
            }
            PullEvent::FileVerified { path, .. } => {
                tally.files_done += 1;
                if let Some(bar) = files.remove(path) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if tally.many() {
                    self.file_count(&tally);
                } else {
                    let _ = self.multi.println(format!("verified {path}"));
                }
            }
            PullEvent::FileFailed { path, error } => {
                if let Some(bar) = files.remove(path) {
                    bar.abandon();
                }
                let _ = self.multi.println(format!("failed {path}: {error}"));
            }
            PullEvent::Retrying { path, error, .. } => {
                if let Some(note) = tally.retry_note() {
                    let _ = self
                        .multi
                        .println(format!("retrying {path}: {error}{note}"));
                }
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
                if let Some(line) = line(event) {
                    eprintln!("{line}");
                }
            }
            PullEvent::Interrupted { .. } => {
                for (_, bar) in files.drain() {
                    bar.finish_and_clear();
                }
                self.total.finish_and_clear();
            }
            PullEvent::FileDelta { .. } | PullEvent::XetFallback { .. } => {
                if let Some(line) = line(event) {
                    self.multi.suspend(|| eprintln!("{line}"));
                }
            }
            PullEvent::FileReused { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_summary_counts_files_and_bytes_and_thins_out_retries() {
        let mut tally = Tally {
            files: 5000,
            bytes: 50 << 20,
            files_done: 1234,
            bytes_done: 12 << 20,
            ..Tally::default()
        };
        let summary = tally.summary();
        assert!(summary.starts_with("1234/5000 files, 12"), "{summary}");
        assert_eq!(tally.retry_note().as_deref(), Some(""));
        assert_eq!(tally.retry_note(), None);
        assert_eq!(tally.retry_note(), None);
        tally.last_retry = Some(Instant::now() - RETRY_LINE_EVERY);
        assert_eq!(
            tally.retry_note().as_deref(),
            Some(" (2 more retries not shown)")
        );
        tally.files = MANY_FILES;
        assert_eq!(
            tally.retry_note().as_deref(),
            Some(""),
            "few files: every retry"
        );
    }
}
