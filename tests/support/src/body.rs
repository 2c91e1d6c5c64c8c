//! Streaming file bodies: `Range` handling and the body faults.
//!
//! Bodies are streamed in chunks from memory slices or from disk
//! (`ReaderStream`), so memory stays flat for benchmark-sized files. The
//! fault wrapper can end the stream with an error (the client sees a broken
//! transfer, not a clean EOF), flip a byte, stall, or throttle.

use crate::errors::HubError;
use crate::faults::BodyFaults;
use crate::model::{Content, FileEntry};
use crate::stats::Stats;
use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

const MEMORY_CHUNK: usize = 64 * 1024;
const DISK_CHUNK: usize = 256 * 1024;

/// The outcome of interpreting a `Range` header against a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No (usable) range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Interprets a single-range `bytes=` header; malformed or multi-range headers are ignored.
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header
        .map(str::trim)
        .and_then(|value| value.strip_prefix("bytes="))
    else {
        return RangeRequest::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Full;
        };
        if suffix == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Everything needed to answer with a file body.
pub(crate) struct BodyPlan<'a> {
    pub(crate) entry: &'a FileEntry,
    pub(crate) range: Option<&'a str>,
    /// The `If-Range` header: a validator that must match for `Range` to apply.
    pub(crate) if_range: Option<&'a str>,
    pub(crate) head: bool,
    pub(crate) faults: BodyFaults,
    /// Extra headers (ETag, X-Repo-Commit, …).
    pub(crate) headers: HeaderMap,
    /// Byte counters to credit.
    pub(crate) count_paths: Vec<String>,
    pub(crate) count_sha256: Option<String>,
    pub(crate) stats: Arc<Stats>,
}

/// Builds a 200/206/416 response streaming the requested part of the file.
pub(crate) async fn file_response(plan: BodyPlan<'_>) -> Response {
    let size = plan.entry.size;
    let validator_matches = plan.if_range.is_none_or(|validator| {
        let validator = validator.trim();
        let validator = validator
            .strip_prefix("W/")
            .unwrap_or(validator)
            .trim_matches('"');
        validator == plan.entry.etag() || validator == plan.entry.oid
    });
    let range = if validator_matches {
        parse_range(plan.range, size)
    } else {
        RangeRequest::Full
    };
    let mut headers = plan.headers;
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, start, length) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            response.headers_mut().extend(headers);
            return response;
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if plan.faults.cut_after.is_some() {
        // The connection will be broken: keep clients from reusing it.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let body = if plan.head || length == 0 {
        Body::empty()
    } else {
        let source = match open_source(&plan.entry.content, start, length).await {
            Ok(source) => source,
            Err(error) => {
                return HubError::internal(format!("cannot read {}: {error}", plan.entry.path))
                    .into_response();
            }
        };
        let counting = Counting {
            stats: plan.stats,
            paths: plan.count_paths,
            sha256: plan.count_sha256,
        };
        Body::from_stream(faulty(source, start, plan.faults, counting))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    response
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

async fn open_source(
    content: &Content,
    start: u64,
    length: u64,
) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
    match content {
        Content::Memory(data) => {
            let begin = usize::try_from(start).map_err(io::Error::other)?;
            let end = usize::try_from(start + length).map_err(io::Error::other)?;
            let slice = data.slice(begin..end.min(data.len()));
            let chunks = slice.len().div_ceil(MEMORY_CHUNK);
            Ok(stream::iter((0..chunks).map(move |index| {
                let from = index * MEMORY_CHUNK;
                Ok(slice.slice(from..(from + MEMORY_CHUNK).min(slice.len())))
            }))
            .boxed())
        }
        Content::Disk(path) => {
            let mut file = tokio::fs::File::open(path).await?;
            file.seek(io::SeekFrom::Start(start)).await?;
            Ok(ReaderStream::with_capacity(file.take(length), DISK_CHUNK).boxed())
        }
    }
}

struct Counting {
    stats: Arc<Stats>,
    paths: Vec<String>,
    sha256: Option<String>,
}

/// `response` with its (in-memory) body streamed through `faults`.
pub(crate) async fn with_faults(
    response: Response,
    faults: BodyFaults,
    stats: Arc<Stats>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    let source = stream::once(async move { Ok(bytes) }).boxed();
    let counting = Counting {
        stats,
        paths: Vec::new(),
        sha256: None,
    };
    Response::from_parts(
        parts,
        Body::from_stream(faulty(source, 0, faults, counting)),
    )
}

struct FaultState {
    source: BoxStream<'static, io::Result<Bytes>>,
    pending: Option<Bytes>,
    /// Bytes of this body already yielded.
    sent: u64,
    /// File offset of the body's first byte.
    offset: u64,
    faults: BodyFaults,
    stalled: bool,
    started: Instant,
    done: bool,
    counting: Counting,
}

fn faulty(
    source: BoxStream<'static, io::Result<Bytes>>,
    offset: u64,
    faults: BodyFaults,
    counting: Counting,
) -> BoxStream<'static, io::Result<Bytes>> {
    let state = FaultState {
        source,
        pending: None,
        sent: 0,
        offset,
        faults,
        stalled: false,
        started: Instant::now(),
        done: false,
        counting,
    };
    stream::unfold(state, step).boxed()
}

async fn step(mut state: FaultState) -> Option<(io::Result<Bytes>, FaultState)> {
    if state.done {
        return None;
    }
    let mut chunk = match state.pending.take() {
        Some(chunk) => chunk,
        None => match state.source.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                state.done = true;
                return Some((Err(error), state));
            }
            None => return None,
        },
    };
    if let Some((after, duration)) = state.faults.stall
        && !state.stalled
        && state.sent >= after
    {
        state.stalled = true;
        match duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending::<()>().await,
        }
        // The throttle clock should not count the stall.
        state.started = Instant::now() - rate_elapsed(state.sent, state.faults.throttle);
    }
    let mut limit = chunk.len() as u64;
    if let Some(cut) = state.faults.cut_after {
        if state.sent >= cut {
            state.done = true;
            // Let hyper flush the headers and the bytes so far: an error
            // returned while data is still buffered aborts without sending it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Some((
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "hub stand-in: injected cut",
                )),
                state,
            ));
        }
        limit = limit.min(cut - state.sent);
    }
    if let Some((after, _)) = state.faults.stall
        && !state.stalled
    {
        limit = limit.min(after - state.sent);
    }
    if let Some(rate) = state.faults.throttle {
        limit = limit.min((rate / 20).max(1));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit < chunk.len() {
        state.pending = Some(chunk.split_off(limit));
    }
    if let Some(rate) = state.faults.throttle {
        let due = state.started + rate_elapsed(state.sent + chunk.len() as u64, Some(rate));
        tokio::time::sleep_until(due).await;
    }
    if let Some(flip) = state.faults.flip_at {
        let begin = state.offset + state.sent;
        if (begin..begin + chunk.len() as u64).contains(&flip) {
            let mut copy = BytesMut::from(&chunk[..]);
            let index = usize::try_from(flip - begin).unwrap_or(0);
            copy[index] ^= 0xFF;
            chunk = copy.freeze();
        }
    }
    state.sent += chunk.len() as u64;
    let counting = &state.counting;
    counting.stats.add_bytes(
        &counting.paths,
        counting.sha256.as_deref(),
        chunk.len() as u64,
    );
    Some((Ok(chunk), state))
}

fn rate_elapsed(bytes: u64, rate: Option<u64>) -> Duration {
    match rate {
        Some(rate) if rate > 0 => Duration::from_secs_f64(bytes as f64 / rate as f64),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=0-0"), 10),
            RangeRequest::Partial { start: 0, end: 0 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-100"), 10),
            RangeRequest::Partial { start: 2, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            RangeRequest::Partial { start: 4, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            RangeRequest::Partial { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            RangeRequest::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=0-0"), 0),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=5-2"), 10), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Full);
    }
}
