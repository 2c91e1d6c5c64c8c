//! [`PipelinedXetHasher`]: an [`XetHasher`] that runs beside its caller.
//!
//! A caller that hashes sha256 and Xet over the same bytes would otherwise spend the sum of
//! both; with this, a large input is chunked on a thread of its own while the caller goes on
//! with sha256, so the slower of the two sets the pace. Bytes are copied into a few recycled
//! buffers (a handful of [`BUFFER`]s at most: the queue to the thread is bounded); small inputs are hashed inline,
//! where a thread would cost more than it saves.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::chunking::{XetChunking, XetHasher};

/// Inputs smaller than this are hashed on the caller's thread.
const THREAD_THRESHOLD: u64 = 16 << 20;
/// Bytes handed to the thread at a time.
const BUFFER: usize = 4 << 20;
/// Buffers in circulation (being filled, queued, being hashed).
const BUFFERS: usize = 3;

/// Computes an [`XetChunking`] on a thread of its own for large inputs, inline for small ones.
#[derive(Debug)]
pub struct PipelinedXetHasher {
    mode: Mode,
    fed: u64,
}

#[derive(Debug)]
enum Mode {
    Inline(XetHasher),
    Thread(Worker),
}

#[derive(Debug)]
struct Worker {
    /// The buffer being filled.
    current: Vec<u8>,
    /// Full buffers to the thread (`None`: the thread ended early, which only a panic does).
    full: Option<SyncSender<Vec<u8>>>,
    /// Emptied buffers back from the thread.
    empty: Receiver<Vec<u8>>,
    thread: JoinHandle<XetChunking>,
}

impl PipelinedXetHasher {
    /// A hasher for an input of about `size` bytes (the size only picks inline or threaded).
    pub fn new(size: u64) -> Self {
        let mode = if size < THREAD_THRESHOLD {
            Mode::Inline(XetHasher::new())
        } else {
            match Worker::spawn() {
                Some(worker) => Mode::Thread(worker),
                None => Mode::Inline(XetHasher::new()),
            }
        };
        PipelinedXetHasher { mode, fed: 0 }
    }

    /// Feed the next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.fed += bytes.len() as u64;
        match &mut self.mode {
            Mode::Inline(hasher) => hasher.update(bytes),
            Mode::Thread(worker) => {
                while !bytes.is_empty() {
                    let room = BUFFER - worker.current.len();
                    let take = room.min(bytes.len());
                    worker.current.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if worker.current.len() == BUFFER {
                        worker.send();
                    }
                }
            }
        }
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Wait for the chunking of everything fed.
    pub fn finish(self) -> XetChunking {
        match self.mode {
            Mode::Inline(hasher) => hasher.finish(),
            Mode::Thread(mut worker) => {
                if !worker.current.is_empty() {
                    worker.send();
                }
                drop(worker.full.take());
                match worker.thread.join() {
                    Ok(chunking) => chunking,
                    // The thread only ends early by a panic in the chunker: re-raise it here
                    // rather than return a chunking that would silently be wrong.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

impl Worker {
    fn spawn() -> Option<Worker> {
        let (full_tx, full_rx) = sync_channel::<Vec<u8>>(BUFFERS - 1);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("larder-xet-hash".to_owned())
            .spawn(move || {
                let mut hasher = XetHasher::new();
                for mut buffer in full_rx {
                    hasher.update(&buffer);
                    buffer.clear();
                    // The feeding side may have finished already; then the buffer is dropped.
                    let _ = empty_tx.try_send(buffer);
                }
                hasher.finish()
            })
            .ok()?;
        Some(Worker {
            current: Vec::with_capacity(BUFFER),
            full: Some(full_tx),
            empty: empty_rx,
            thread,
        })
    }

    /// Hand the current buffer over and take an empty one (recycled when one is back).
    fn send(&mut self) {
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        let full = std::mem::replace(&mut self.current, next);
        if let Some(sender) = &self.full
            && sender.send(full).is_err()
        {
            // The thread is gone (a panic); `finish` reports it.
            self.full = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::hash_bytes;

    #[test]
    fn threaded_equals_inline() {
        let mut x = 99u64;
        let data: Vec<u8> = (0..(THREAD_THRESHOLD as usize + 3 * BUFFER + 12345))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut hasher = PipelinedXetHasher::new(data.len() as u64);
        assert!(matches!(hasher.mode, Mode::Thread(_)));
        for piece in data.chunks(1_000_003) {
            hasher.update(piece);
        }
        assert_eq!(hasher.fed(), data.len() as u64);
        assert_eq!(hasher.finish(), hash_bytes(&data));
    }
}
