//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod common;
mod convert;
mod daemon;
mod disk;
mod faults;
mod gc;
mod licence;
mod offline;
mod pull;
mod resume;
mod s3;
mod serve;
mod verify;
