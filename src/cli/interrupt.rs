//! Ctrl-C (SIGINT) and SIGTERM for the commands that write a lot: `pull`, `convert`,
//! `export` and `import`. The first signal cancels the command's token, so the library stops
//! at its next safe point and keeps what it wrote; the command then prints one line saying
//! what was kept (and, with `--json`, an `interrupted` event) and exits 130. A second signal
//! exits at once, still 130.

use std::io::Write;
use std::process::ExitCode;

use larder::interrupt::{CancellationToken, Interrupted};
use tokio::signal::unix::{SignalKind, signal};

use super::{EXIT_INTERRUPTED, format};

/// Take over SIGINT and SIGTERM for the rest of the process; the token is cancelled on the
/// first of them.
pub fn install() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("stopping, keeping what is done (press Ctrl-C again to quit at once)");
        cancel.cancel();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("interrupted again: quitting at once");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    Ok(token)
}

/// Say that the command was interrupted: `line` on stderr, and with `json` an `interrupted`
/// event on stdout (unless the command's own event stream already carried one). Returns 130.
pub fn finish(line: &str, interrupted: Option<Interrupted>, json: bool) -> ExitCode {
    eprintln!("interrupted: {line}");
    if json && let Some(interrupted) = interrupted {
        let event = serde_json::json!({
            "event": "interrupted",
            "kept": interrupted.kept,
            "total": interrupted.total,
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{event}");
        let _ = out.flush();
    }
    ExitCode::from(EXIT_INTERRUPTED)
}

/// `1.2 GiB of 3.4 GiB`.
pub fn kept_of(interrupted: &Interrupted) -> String {
    format!(
        "{} of {}",
        format::size(interrupted.kept),
        format::size(interrupted.total)
    )
}
