//! The content-addressed blob store.
//!
//! Blobs are immutable files named by the sha256 of their content. A blob only ever appears
//! by renaming a fully written and verified part file into place, so a reader that sees a
//! blob sees all of it. Partial data lives in `tmp/` until then.

mod fs;
pub mod materialize;

pub use fs::{LocalStore, StoreError};
