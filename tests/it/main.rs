//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod common;
mod disk;
mod faults;
mod offline;
mod pull;
mod resume;
mod verify;
