//! Integration tests of `larder pull` and friends against the Hub stand-in (no internet).

mod common;
mod faults;
mod pull;
mod resume;
mod serve;
mod verify;
