//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod cli_output;
mod common;
mod convert;
mod daemon;
mod daemon_jobs;
mod disk;
mod faults;
mod gc;
mod hardening;
mod hostile;
mod job_failures;
mod layering;
mod licence;
mod metrics;
mod offline;
mod pull;
mod quota;
mod resume;
mod s3;
mod serve;
mod serve_body;
mod tracking;
mod ui;
mod verify;
mod xet;
mod xet_pull;
