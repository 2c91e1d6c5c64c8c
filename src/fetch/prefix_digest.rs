//! Verifying a Xet part while it is assembled: a blocking thread follows the part's contiguous
//! prefix and hashes each chunk as soon as every byte before it has landed (sha256 of the whole,
//! the Xet chunk hashes and so the file's Xet hash), so that when the last term lands only the
//! tail is left to hash, instead of a second pass over the whole file.
//!
//! The transfer feeds [`PrefixDigest`] the chunk lengths of each stretch that joins the prefix,
//! in file order; the thread reads those bytes back from the part (they are in the page cache)
//! and hashes them. Bytes are hashed only after they were written, exactly as a pass after the
//! transfer would read them. A stretch may come with its chunk hashes, computed by the transfer
//! from the very buffers it wrote (so they hash in parallel across ranges); the thread then only
//! runs sha256, the one hash that must go through the file in order.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::xet::{ChunkEntry, MerkleHash, XetChunking};

/// Most bytes read back at once.
const READ_BYTES: usize = 4 << 20;

/// The sha256 (hex) and Xet chunking of a part, as hashed.
pub type PartDigest = (String, XetChunking);

/// What the transfer tells the thread.
#[derive(Default)]
struct Feed {
    /// Stretches that joined the prefix and are not hashed yet.
    ready: VecDeque<Stretch>,
    /// Every stretch has been fed.
    finished: bool,
    /// The transfer gave up: stop without a result.
    abandoned: bool,
}

/// Chunks that joined the prefix together.
struct Stretch {
    /// Where the first starts.
    offset: u64,
    /// Their lengths.
    lengths: Vec<u32>,
    /// Their Xet hashes, one per length, or none (the thread computes them).
    hashes: Vec<MerkleHash>,
}

/// The feeding side of a prefix digest; its thread hashes what it is fed.
pub struct PrefixDigest {
    shared: Arc<(Mutex<Feed>, Condvar)>,
    thread: Mutex<Option<tokio::task::JoinHandle<std::io::Result<Option<PartDigest>>>>>,
}

impl PrefixDigest {
    /// Starts hashing `file` (a handle on the part) on a blocking thread.
    pub fn start(file: File) -> Self {
        let shared = Arc::new((Mutex::new(Feed::default()), Condvar::new()));
        let feed = shared.clone();
        let thread = tokio::task::spawn_blocking(move || hash_fed(&file, &feed));
        PrefixDigest {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Feed> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stretch at `offset` made of chunks of `lengths` now continues the prefix (stretches
    /// must be fed in file order, each starting where the one before ended). `hashes` are the
    /// chunks' Xet hashes, computed from the bytes written, or empty to have them computed here.
    pub fn feed(&self, offset: u64, lengths: Vec<u32>, hashes: Vec<MerkleHash>) {
        let hashes = if hashes.len() == lengths.len() {
            hashes
        } else {
            Vec::new()
        };
        self.lock().ready.push_back(Stretch {
            offset,
            lengths,
            hashes,
        });
        self.shared.1.notify_one();
    }

    /// Every stretch has been fed: the digest of the whole part, once the thread has hashed it.
    /// Only the first call gets it.
    pub async fn finish(&self) -> std::io::Result<PartDigest> {
        self.lock().finished = true;
        self.shared.1.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = thread else {
            return Err(std::io::Error::other("the part's digest was already taken"));
        };
        match thread.await {
            Ok(Ok(Some(digest))) => Ok(digest),
            Ok(Ok(None)) => Err(std::io::Error::other("the part's digest was abandoned")),
            Ok(Err(error)) => Err(error),
            Err(join) => Err(std::io::Error::other(join.to_string())),
        }
    }
}

impl Drop for PrefixDigest {
    /// A transfer that ends without [`PrefixDigest::finish`] stops the thread.
    fn drop(&mut self) {
        if self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            self.lock().abandoned = true;
            self.shared.1.notify_one();
        }
    }
}

fn hash_fed(file: &File, shared: &(Mutex<Feed>, Condvar)) -> std::io::Result<Option<PartDigest>> {
    let (lock, ready) = shared;
    let mut sha = Sha256::new();
    let mut chunks: Vec<ChunkEntry> = Vec::new();
    let mut buffer = Vec::new();
    let mut expected_offset = 0u64;
    loop {
        let next = {
            let mut feed = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if feed.abandoned {
                    return Ok(None);
                }
                if let Some(next) = feed.ready.pop_front() {
                    break Some(next);
                }
                if feed.finished {
                    break None;
                }
                feed = ready.wait(feed).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(Stretch {
            offset,
            lengths,
            hashes,
        }) = next
        else {
            break;
        };
        if offset != expected_offset {
            return Err(std::io::Error::other(format!(
                "a stretch at byte {offset} was fed where the prefix ends at {expected_offset}"
            )));
        }
        // Read runs of whole chunks, up to READ_BYTES at a time (a chunk is at most 128 KiB).
        let mut at = 0;
        while at < lengths.len() {
            let mut end = at;
            let mut bytes = 0usize;
            while end < lengths.len() && (end == at || bytes + lengths[end] as usize <= READ_BYTES)
            {
                bytes += lengths[end] as usize;
                end += 1;
            }
            buffer.resize(bytes, 0);
            file.read_exact_at(&mut buffer, expected_offset)?;
            sha.update(&buffer);
            if hashes.is_empty() {
                let mut start = 0usize;
                for &length in &lengths[at..end] {
                    let piece = &buffer[start..start + length as usize];
                    chunks.push(ChunkEntry {
                        hash: crate::xet::chunk_hash(piece),
                        length,
                    });
                    start += length as usize;
                }
            } else {
                chunks.extend(
                    hashes[at..end]
                        .iter()
                        .zip(&lengths[at..end])
                        .map(|(&hash, &length)| ChunkEntry { hash, length }),
                );
            }
            expected_offset += bytes as u64;
            at = end;
        }
    }
    let file_hash = crate::xet::file_hash(chunks.iter().map(|c| (c.hash, u64::from(c.length))));
    Ok(Some((
        hex::encode(sha.finalize()),
        XetChunking { file_hash, chunks },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn fed_stretches_hash_like_the_whole_file() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let lengths = [65_536u32, 100_000, 34_464, 131_072, 200_000, 168_928];
        assert_eq!(
            lengths.iter().map(|&l| l as usize).sum::<usize>(),
            data.len()
        );
        let digest = PrefixDigest::start(file.try_clone().unwrap());
        digest.feed(0, lengths[..2].to_vec(), Vec::new());
        // Hashes handed over (computed by the transfer from what it wrote) are taken as they
        // are: a marker in place of the middle one shows it was not recomputed.
        let marker = crate::xet::chunk_hash(b"handed over");
        let given: Vec<MerkleHash> = [165_536usize, 200_000, 331_072, 531_072]
            .windows(2)
            .map(|w| crate::xet::chunk_hash(&data[w[0]..w[1]]))
            .enumerate()
            .map(|(i, hash)| if i == 1 { marker } else { hash })
            .collect();
        digest.feed(165_536, lengths[2..5].to_vec(), given);
        // A stretch whose hashes do not match its chunks gets them computed.
        digest.feed(531_072, lengths[5..].to_vec(), vec![marker; 2]);
        let (sha, chunking) = digest.finish().await.unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
        let mut offset = 0usize;
        for (i, (chunk, &length)) in chunking.chunks.iter().zip(&lengths).enumerate() {
            let bytes = &data[offset..offset + length as usize];
            let expected = if i == 3 {
                marker
            } else {
                crate::xet::chunk_hash(bytes)
            };
            assert_eq!(chunk.hash, expected, "chunk {i}");
            offset += length as usize;
        }
        assert_eq!(chunking.chunks.len(), lengths.len());
        assert_eq!(chunking.size(), data.len() as u64);
    }

    #[tokio::test]
    async fn a_gap_in_the_feed_is_an_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[1u8; 1000]).unwrap();
        let digest = PrefixDigest::start(file);
        digest.feed(0, vec![400], Vec::new());
        digest.feed(500, vec![500], Vec::new());
        assert!(digest.finish().await.is_err());
    }

    #[tokio::test]
    async fn dropping_it_stops_the_thread() {
        let file = tempfile::tempfile().unwrap();
        let digest = PrefixDigest::start(file);
        let shared = digest.shared.clone();
        drop(digest);
        // The thread ends and lets go of the feed.
        for _ in 0..200 {
            if Arc::strong_count(&shared) == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the hashing thread kept running after its transfer ended");
    }
}
