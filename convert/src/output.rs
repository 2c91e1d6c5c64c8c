//! The file a conversion writes. Bytes are gathered into chunks that two threads of their own
//! hash (sha256, the store's name for the file) and write, so that quantizing the next chunk
//! overlaps hashing and writing this one. On Linux the file is written with direct I/O where the
//! filesystem allows it: a large output then costs no copy into the page cache and leaves no
//! dirty pages for the final sync to wait on. Elsewhere, or where the filesystem refuses direct
//! I/O, it is written the ordinary way.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes per chunk handed to the threads; a multiple of [`ALIGN`].
const CHUNK: usize = 8 << 20;
/// Alignment of direct I/O buffers, file offsets and lengths (covers 512- and 4096-byte devices).
const ALIGN: usize = 4096;
/// Chunks queued for each thread before the producer waits for it.
const QUEUE: usize = 2;

/// A chunk-sized buffer whose window starts on an [`ALIGN`] boundary.
struct Chunk {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl Chunk {
    fn new() -> Self {
        let bytes = vec![0u8; CHUNK + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN);
        Chunk {
            bytes,
            start,
            len: 0,
        }
    }

    /// The bytes written into the chunk.
    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// The data followed by zeros up to the next [`ALIGN`] boundary (see [`Chunk::zero_tail`]).
    fn padded(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len.next_multiple_of(ALIGN)]
    }

    fn zero_tail(&mut self) {
        let end = self.start + self.len.next_multiple_of(ALIGN);
        self.bytes[self.start + self.len..end].fill(0);
    }

    fn spare(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start + self.len..self.start + CHUNK]
    }
}

/// A file being written: `Write` gathers chunks, [`OutputFile::finish`] returns its sha256 and
/// size once every byte is written (not synced: whoever names the file syncs it).
pub struct OutputFile {
    path: PathBuf,
    chunk: Chunk,
    size: u64,
    to_hasher: Option<SyncSender<Arc<Chunk>>>,
    to_writer: Option<SyncSender<Arc<Chunk>>>,
    spent: Receiver<Arc<Chunk>>,
    hasher: Option<JoinHandle<Sha256>>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl OutputFile {
    /// Creates (or truncates) `path` and starts the hashing and writing threads.
    pub fn create(path: &Path) -> io::Result<Self> {
        let sink = Sink::open(path)?;
        let (to_hasher, hasher_rx) = sync_channel::<Arc<Chunk>>(QUEUE);
        let (to_writer, writer_rx) = sync_channel::<Arc<Chunk>>(QUEUE);
        let (spent_tx, spent) = channel();
        let hasher_spent = spent_tx.clone();
        let hasher = std::thread::Builder::new()
            .name("convert-hash".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in hasher_rx {
                    hasher.update(chunk.data());
                    let _ = hasher_spent.send(chunk);
                }
                hasher
            })?;
        let writer = std::thread::Builder::new()
            .name("convert-write".into())
            .spawn(move || sink.run(writer_rx, spent_tx))?;
        Ok(OutputFile {
            path: path.to_owned(),
            chunk: Chunk::new(),
            size: 0,
            to_hasher: Some(to_hasher),
            to_writer: Some(to_writer),
            spent,
            hasher: Some(hasher),
            writer: Some(writer),
        })
    }

    /// Sends the remaining bytes, waits for both threads and returns the file's sha256 (hex)
    /// and size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        if self.chunk.len > 0 {
            self.chunk.zero_tail();
            self.ship()?;
        }
        self.to_hasher = None;
        self.to_writer = None;
        join(self.writer.take())??;
        let sha256 = hex::encode(join(self.hasher.take())?.finalize());
        Ok((sha256, self.size))
    }

    /// Hands the full chunk to both threads and takes an empty one.
    fn ship(&mut self) -> io::Result<()> {
        let empty = self.recycled();
        let full = Arc::new(std::mem::replace(&mut self.chunk, empty));
        let hashing = self
            .to_hasher
            .as_ref()
            .is_some_and(|tx| tx.send(Arc::clone(&full)).is_ok());
        let writing = self
            .to_writer
            .as_ref()
            .is_some_and(|tx| tx.send(full).is_ok());
        if hashing && writing {
            return Ok(());
        }
        // A thread has stopped: the writer with an error (a full disk, say), which is the one
        // worth reporting.
        self.to_hasher = None;
        self.to_writer = None;
        match join(self.writer.take()) {
            Ok(Err(e)) | Err(e) => Err(e),
            Ok(Ok(_)) => Err(io::Error::other(format!(
                "the hashing thread for {} stopped",
                self.path.display()
            ))),
        }
    }

    /// A chunk both threads are done with, or a new one.
    fn recycled(&mut self) -> Chunk {
        while let Ok(chunk) = self.spent.try_recv() {
            // Each chunk comes back twice; the second return is the last reference.
            if let Ok(mut chunk) = Arc::try_unwrap(chunk) {
                chunk.len = 0;
                return chunk;
            }
        }
        Chunk::new()
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let spare = self.chunk.spare();
        let n = spare.len().min(buf.len());
        spare[..n].copy_from_slice(&buf[..n]);
        self.chunk.len += n;
        self.size += n as u64;
        if self.chunk.len == CHUNK {
            self.ship()?;
        }
        Ok(n)
    }

    /// Bytes leave in whole chunks; [`OutputFile::finish`] sends the last one.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for OutputFile {
    /// An abandoned output (the conversion failed) stops its threads before going away.
    fn drop(&mut self) {
        self.to_hasher = None;
        self.to_writer = None;
        let _ = join(self.writer.take());
        let _ = join(self.hasher.take());
    }
}

fn join<T>(handle: Option<JoinHandle<T>>) -> io::Result<T> {
    handle
        .ok_or_else(|| io::Error::other("output already finished"))?
        .join()
        .map_err(|_| io::Error::other("an output thread panicked"))
}

/// The writing end: the open file and how it is written.
struct Sink {
    path: PathBuf,
    file: File,
    direct: bool,
    written: u64,
}

impl Sink {
    fn open(path: &Path) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            match OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
            {
                Ok(file) => {
                    return Ok(Sink {
                        path: path.to_owned(),
                        file,
                        direct: true,
                        written: 0,
                    });
                }
                // The filesystem has no direct I/O (tmpfs on older kernels, some FUSE mounts).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Sink {
            path: path.to_owned(),
            file: File::create(path)?,
            direct: false,
            written: 0,
        })
    }

    /// Writes chunks in order until the producer is done, leaving the file at its exact size.
    fn run(
        mut self,
        chunks: Receiver<Arc<Chunk>>,
        spent: std::sync::mpsc::Sender<Arc<Chunk>>,
    ) -> io::Result<()> {
        for chunk in chunks {
            self.write_chunk(&chunk)?;
            let _ = spent.send(chunk);
        }
        if self.direct {
            // The last chunk went out padded to a whole block.
            self.file.set_len(self.written)?;
        }
        Ok(())
    }

    fn write_chunk(&mut self, chunk: &Chunk) -> io::Result<()> {
        // Every chunk but the last is exactly CHUNK bytes, so direct writes stay aligned.
        let result = if self.direct {
            self.file.write_all(chunk.padded())
        } else {
            self.file.write_all(chunk.data())
        };
        match result {
            Ok(()) => {}
            // Accepted at open but refused at write time: carry on without direct I/O, from
            // the start of this chunk.
            #[cfg(target_os = "linux")]
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %self.path.display(), "direct I/O refused; writing through the page cache");
                self.file = OpenOptions::new().write(true).open(&self.path)?;
                self.file.seek(SeekFrom::Start(self.written))?;
                self.direct = false;
                self.file.write_all(chunk.data())?;
            }
            Err(e) => return Err(e),
        }
        self.written += chunk.len as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Sizes around the chunk and block boundaries, written in odd pieces: the file holds
    /// exactly the bytes, and the digest is theirs.
    #[test]
    fn writes_exact_bytes_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 12_345,
        ] {
            let data = pattern(size);
            let path = dir.path().join(format!("out-{size}"));
            let mut out = OutputFile::create(&path).unwrap();
            for piece in data.chunks(1_000_003) {
                out.write_all(piece).unwrap();
            }
            let (sha256, n) = out.finish().unwrap();
            assert_eq!(n, size as u64);
            assert_eq!(std::fs::read(&path).unwrap(), data, "size {size}");
            assert_eq!(sha256, hex::encode(Sha256::digest(&data)), "size {size}");
        }
    }

    /// A write error on the writing thread reaches the producer.
    #[test]
    fn reports_write_errors() {
        let path = Path::new("/dev/full");
        if !path.exists() {
            return;
        }
        let mut out = OutputFile::create(path).unwrap();
        let data = pattern(4 * CHUNK);
        let err = out
            .write_all(&data)
            .err()
            .or_else(|| out.finish().err())
            .expect("a full device must fail the write");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    }
}
