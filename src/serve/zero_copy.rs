//! Writing a response to a client socket without copying file bytes through user space:
//! in-memory bytes with `send(2)` (flagged `MSG_MORE` while more follows, so a head and the
//! first slice leave in full packets), file slices with `sendfile(2)` from the page cache.
//!
//! Each `sendfile` call moves at most [`SENDFILE_CHUNK`] bytes and then gives the runtime a
//! chance to run other tasks, so a fast client on loopback cannot monopolize a worker thread;
//! a client that stops reading for [`STALL`] is dropped, and with it the file descriptor.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::body::{FileSlice, Segment, Segments};

/// Most bytes moved by one `sendfile` call (nginx's `sendfile_max_chunk` default is 2 MiB).
pub const SENDFILE_CHUNK: usize = 1 << 20;

/// How long a client may accept no bytes at all before the mirror gives up on it.
pub const STALL: Duration = Duration::from_secs(120);

/// In-memory bytes up to this size are gathered with the head into one write.
const GATHER: usize = 64 << 10;

/// Write `head`, then the segments.
pub async fn send(stream: &TcpStream, head: &[u8], segments: &Segments) -> io::Result<()> {
    let mut pending: Vec<u8> = head.to_vec();
    for part in segments.parts() {
        match part {
            Segment::Bytes(bytes) if pending.len() + bytes.len() <= GATHER => {
                pending.extend_from_slice(bytes);
            }
            Segment::Bytes(bytes) => {
                write_all(stream, &pending, true).await?;
                pending.clear();
                write_all(stream, bytes, true).await?;
            }
            Segment::File(slice) => {
                write_all(stream, &pending, true).await?;
                pending.clear();
                send_file(stream, slice).await?;
            }
        }
    }
    write_all(stream, &pending, false).await
}

/// Write all of `bytes`; `more`: further bytes follow at once (`MSG_MORE`).
pub async fn write_all(stream: &TcpStream, mut bytes: &[u8], more: bool) -> io::Result<()> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    while !bytes.is_empty() {
        let sent = stalled(stream.async_io(Interest::WRITABLE, || {
            // SAFETY: the pointer and length describe `bytes`, alive for the call.
            let n = unsafe {
                libc::send(
                    stream.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    flags,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }))
        .await?;
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[sent..];
    }
    Ok(())
}

/// Send a file slice with `sendfile(2)`.
pub async fn send_file(stream: &TcpStream, slice: &FileSlice) -> io::Result<()> {
    let mut offset = i64::try_from(slice.offset()).map_err(io::Error::other)?;
    let mut left = slice.len();
    while left > 0 {
        let want = left.min(SENDFILE_CHUNK as u64) as usize;
        let sent = stalled(stream.async_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call; `offset` is a valid `off_t` the
            // kernel advances by the bytes sent.
            let n = unsafe {
                libc::sendfile(
                    stream.as_raw_fd(),
                    slice.file().as_raw_fd(),
                    &mut offset,
                    want,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }))
        .await?;
        if sent == 0 {
            // The file ended before the slice did (it was truncated under us): never pad.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than the body being sent",
            ));
        }
        left -= sent as u64;
        tokio::task::consume_budget().await;
    }
    Ok(())
}

/// Fail when the client accepts nothing for [`STALL`].
async fn stalled<T>(io: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(STALL, io).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client accepted no bytes for two minutes",
        )),
    }
}
