//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod common;
mod convert;
mod daemon;
mod daemon_jobs;
mod disk;
mod faults;
mod gc;
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
mod tracking;
mod ui;
mod verify;
mod xet_pull;
