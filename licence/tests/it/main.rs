//! Integration tests for larder-licence: one binary, one module per area.

mod catalog;
mod detect;
mod fixtures;
mod policy;
mod report;
