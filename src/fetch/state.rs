//! The resume state of a part file: what it should become and which ranges are durable.
//!
//! Written next to the part as `<key>.state`, replaced atomically (write, fsync, rename). Only
//! ranges recorded here after the part was synced are trusted on resume.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ranges::RangeSet;
use crate::registry::Sha256;
use crate::store::StoreError;

const STATE_VERSION: u32 = 1;

/// Persisted progress of one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// Format version.
    pub version: u32,
    /// Expected size.
    pub size: u64,
    /// Expected sha256 (LFS files), if known.
    pub sha256: Option<Sha256>,
    /// Expected git blob oid (regular files), if known.
    pub git_oid: Option<String>,
    /// Ranges written and synced.
    pub done: RangeSet,
}

impl PartState {
    /// A fresh state with nothing done.
    pub fn new(size: u64, sha256: Option<Sha256>, git_oid: Option<String>) -> Self {
        PartState {
            version: STATE_VERSION,
            size,
            sha256,
            git_oid,
            done: RangeSet::new(),
        }
    }

    /// Load a state file; `None` when absent, unreadable or for other content (a stale or
    /// damaged state is never trusted: the part is then started afresh).
    pub fn load(path: &Path, expect: &PartState) -> Option<PartState> {
        let bytes = fs::read(path).ok()?;
        let mut state: PartState = serde_json::from_slice(&bytes).ok()?;
        let same = state.version == STATE_VERSION
            && state.size == expect.size
            && state.sha256 == expect.sha256
            && state.git_oid == expect.git_oid;
        if !same {
            return None;
        }
        state.done = RangeSet::from_ranges(state.done.ranges().iter().copied(), state.size);
        Some(state)
    }

    /// Write atomically: temp file, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let tmp = path.with_extension("state.tmp");
        let json = serde_json::to_vec(self).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_data()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| StoreError::io("could not write resume state", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state");
        let sha = Sha256::parse(&"a".repeat(64)).unwrap();
        let mut state = PartState::new(100, Some(sha), None);
        state.done.insert(0, 40);
        state.save(&path).unwrap();
        assert_eq!(PartState::load(&path, &state).unwrap(), state);
        let other = PartState::new(101, Some(sha), None);
        assert!(PartState::load(&path, &other).is_none());
        fs::write(&path, b"{garbage").unwrap();
        assert!(PartState::load(&path, &state).is_none());
    }
}
