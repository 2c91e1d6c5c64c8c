//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod common;
mod disk;
mod faults;
mod licence;
mod pull;
mod resume;
mod verify;
