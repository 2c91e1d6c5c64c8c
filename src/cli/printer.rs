//! The one way the CLI writes messages that are not a command's output: `error:`, `warning:`,
//! `note:` and `hint:` lines on stderr. Progress goes through the reporters in
//! [`super::progress`]; results go to stdout.

/// `error: …` — why a command failed.
pub fn error(message: &str) {
    line("error", message);
}

/// `warning: …` — something is wrong but the command goes on.
pub fn warning(message: &str) {
    line("warning", message);
}

/// `note: …` — something worth knowing about what the command did or will do.
pub fn note(message: &str) {
    line("note", message);
}

/// `hint: …` — what the user can do about an error or warning just printed.
pub fn hint(message: &str) {
    line("hint", message);
}

fn line(prefix: &str, message: &str) {
    eprintln!("{prefix}: {message}");
}
