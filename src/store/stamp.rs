//! A blob file's stamp: what it looked like on disk (size, device, inode, mtime and ctime to the
//! nanosecond) when its bytes were last found to match their digest.
//!
//! A file that still carries its stamp has not been written, replaced, renamed over, chmod-ed or
//! hard-linked since (each of those moves the ctime, which a user cannot set back), so its bytes
//! can be trusted without hashing them again. Decay of the medium leaves the stamp alone; the
//! scrub ([`crate::serve`]'s background re-hash) and `larder verify` are what find that.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The stamp of the file at `path`, as text (`v1:size:dev:ino:mtime_ns:ctime_ns`).
pub fn stamp(path: &Path) -> io::Result<String> {
    Ok(of_metadata(&fs::metadata(path)?))
}

/// The file's stamp now, if it is still `before` (the file did not change while it was read):
/// the stamp to record after a good hash; `None` when it changed or cannot be read.
pub fn unchanged(path: &Path, before: Option<&str>) -> Option<String> {
    let after = stamp(path).ok()?;
    (Some(after.as_str()) == before).then_some(after)
}

/// The stamp of an open file's metadata.
pub fn of_metadata(meta: &fs::Metadata) -> String {
    let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    format!(
        "v1:{}:{}:{}:{}:{}",
        meta.len(),
        meta.dev(),
        meta.ino(),
        nanos(meta.mtime(), meta.mtime_nsec()),
        nanos(meta.ctime(), meta.ctime_nsec()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_or_a_chmod_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, b"bytes").unwrap();
        let first = stamp(&path).unwrap();
        assert_eq!(stamp(&path).unwrap(), first);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut perms = fs::metadata(&path).unwrap().permissions();
        perms.set_readonly(true);
        fs::set_permissions(&path, perms).unwrap();
        let chmodded = stamp(&path).unwrap();
        assert_ne!(chmodded, first);
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::hard_link(&path, dir.path().join("link")).unwrap();
        assert_ne!(stamp(&path).unwrap(), chmodded);
    }
}
