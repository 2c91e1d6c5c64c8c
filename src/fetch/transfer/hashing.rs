//! The hashing thread: it follows the part's contiguous written prefix, reading it back from
//! the page cache, so that when the last byte lands only the rest is left to hash.

use super::*;

/// Follow the contiguous written prefix with the hashers (sha256 or the git oid, and with
/// `index_chunks` the Xet chunking). `None` if the transfer stopped first.
pub(super) fn hash_prefix(shared: &Shared, git: bool, index_chunks: bool) -> Option<Digests> {
    let size = shared.job.size;
    let mut hasher = ContentHasher::new(size, git);
    if index_chunks {
        hasher = hasher.with_xet();
    }
    let mut buffer = vec![0u8; HASH_BUFFER.min(size.max(1) as usize)];
    loop {
        let target = {
            let mut schedule = shared.lock();
            loop {
                let prefix = schedule.done.prefix();
                if prefix > hasher.fed() || hasher.fed() == size {
                    break prefix;
                }
                if schedule.error.is_some() || schedule.finished {
                    return None;
                }
                schedule = shared
                    .changed
                    .wait(schedule)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
        };
        while hasher.fed() < target {
            let n = ((target - hasher.fed()) as usize).min(buffer.len());
            if shared
                .file
                .read_exact_at(&mut buffer[..n], hasher.fed())
                .is_err()
            {
                return None;
            }
            hasher.update(&buffer[..n]);
            if let Some(hook) = &shared.hook {
                hook(&shared.part_path, PartProgress::Prefix(hasher.fed()));
            }
        }
        if hasher.fed() == size {
            return Some(hasher.finish());
        }
    }
}
