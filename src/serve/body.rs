//! Blob response bodies: a list of segments, each bytes in memory or a slice of a held file.
//!
//! A file body ([`Segments`]) is attached to its response twice: as the ordinary streamed body
//! (reads of the file in [`READ_CHUNK`] pieces, for any connection that cannot do better) and
//! as a response extension that the connection layer ([`super::conn`]) takes instead, sending
//! file slices with `sendfile(2)` and in-memory segments with plain writes, so no byte of a
//! held file is copied through user space. Xet xorb ranges synthesized from held blobs are the
//! same shape: an 8-byte chunk header (bytes) before each slice of a blob (file).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Bytes per read when streaming a blob (from the store, or from a part still being fetched).
pub const READ_CHUNK: usize = 256 << 10;

/// Streamed file slices up to this length are read inline (a positioned read from the page
/// cache takes microseconds; a blocking-pool hand-off costs more than the read).
const INLINE_READ: u64 = 64 << 10;

/// A slice of an open file: `len` bytes from `offset`.
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl FileSlice {
    /// A slice of an already open file (shared by the slices of one body).
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        FileSlice { file, offset, len }
    }

    /// Open `path` and take `len` bytes from `offset`.
    pub fn open(path: &Path, offset: u64, len: u64) -> io::Result<Self> {
        Ok(FileSlice::new(Arc::new(File::open(path)?), offset, len))
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// First byte of the slice in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes in the slice.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read `want` bytes at `at` (relative to the slice); a file shorter than the slice is an
    /// error, never a short body.
    fn read(&self, at: u64, want: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, self.offset + at)?;
        Ok(Bytes::from(buf))
    }
}

/// One piece of a body.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes in memory (a header, a small file).
    Bytes(Bytes),
    /// A slice of a file, sent without copying where the connection allows.
    File(FileSlice),
}

impl Segment {
    /// Bytes in the segment.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Bytes(bytes) => bytes.len() as u64,
            Segment::File(slice) => slice.len(),
        }
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response body made of segments, sent in order.
#[derive(Debug, Clone, Default)]
pub struct Segments {
    parts: Vec<Segment>,
    len: u64,
}

impl Segments {
    /// An empty body.
    pub fn new() -> Self {
        Segments::default()
    }

    /// Append in-memory bytes.
    pub fn push_bytes(&mut self, bytes: Bytes) {
        self.push(Segment::Bytes(bytes));
    }

    /// Append a file slice.
    pub fn push_file(&mut self, slice: FileSlice) {
        self.push(Segment::File(slice));
    }

    /// Append a segment (empty ones are dropped).
    pub fn push(&mut self, segment: Segment) {
        if !segment.is_empty() {
            self.len += segment.len();
            self.parts.push(segment);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments in order.
    pub fn parts(&self) -> &[Segment] {
        &self.parts
    }

    /// A response with `headers` (which should carry the `Content-Length` of [`Self::len`]) whose
    /// body is these segments: streamed for any connection, sent without copying by the
    /// mirror's own connection layer.
    pub fn into_response(self, status: StatusCode, headers: HeaderMap) -> Response {
        let body = self.clone().into_stream_body();
        let mut response = (status, headers, body).into_response();
        response.extensions_mut().insert(self);
        response
    }

    /// The segments as a streamed body: in-memory bytes as they are, file slices read in
    /// [`READ_CHUNK`] pieces on the blocking pool (small ones inline).
    pub fn into_stream_body(self) -> Body {
        let state = (self.parts.into_iter(), None::<(FileSlice, u64)>);
        let stream = futures::stream::try_unfold(state, |(mut parts, mut current)| async move {
            loop {
                if let Some((slice, at)) = current.take() {
                    let left = slice.len() - at;
                    if left == 0 {
                        continue;
                    }
                    let want = left.min(READ_CHUNK as u64);
                    let bytes = if want <= INLINE_READ {
                        slice.read(at, want as usize)?
                    } else {
                        let reader = slice.clone();
                        tokio::task::spawn_blocking(move || reader.read(at, want as usize))
                            .await
                            .map_err(io::Error::other)??
                    };
                    return Ok(Some((bytes, (parts, Some((slice, at + want))))));
                }
                match parts.next() {
                    None => return Ok::<_, io::Error>(None),
                    Some(Segment::Bytes(bytes)) => return Ok(Some((bytes, (parts, None)))),
                    Some(Segment::File(slice)) => current = Some((slice, 0)),
                }
            }
        });
        Body::from_stream(stream)
    }
}

impl From<FileSlice> for Segments {
    fn from(slice: FileSlice) -> Self {
        let mut segments = Segments::new();
        segments.push_file(slice);
        segments
    }
}
