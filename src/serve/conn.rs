//! The mirror's connections: the accept loop (with the connection limit) and an HTTP/1.1
//! connection driven by Larder itself, so that file bodies can leave by `sendfile(2)`.
//!
//! hyper owns a connection's socket and only takes body bytes from user space, so a body it
//! writes is always copied through the process. Here each request head is parsed
//! ([`http1::parse_request`]), the request goes through the same axum [`Router`] (access guard,
//! access log, every handler), and the response head is written with hyper's rules
//! ([`http1::encode_response`]); a response carrying [`Segments`] then sends them with
//! [`zero_copy::send`], any other body is written as it streams. Requests this driver does not
//! take on — a chunked or `Expect: 100-continue` request body, or one larger than
//! [`MAX_INLINE_BODY`] — hand the connection, with the bytes already read, to hyper for the
//! rest of its life; such a connection streams file bodies the ordinary way.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt;

use super::body::Segments;
use super::http1::{self, BodySize, Framing, HeadError, RequestHead};
use super::zero_copy;

/// Largest request head accepted (hyper's default buffer limit is about this order).
const MAX_HEAD: usize = 64 << 10;
/// Request bodies up to this size (with a `Content-Length`) are read here; larger ones go to
/// hyper. The mirror's own limit on request bodies is lower (paths-info: 8 MiB).
pub const MAX_INLINE_BODY: u64 = 16 << 20;
/// How long a mirror waits on a client that sends nothing, or sends it too slowly.
///
/// A connection that holds a socket without finishing a request (a slowloris client) is closed
/// when the first of these runs out, so idle or half-sent requests cannot pile up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Between requests on a kept-alive connection (nginx's `keepalive_timeout`: 75 s).
    pub idle: Duration,
    /// From the first byte of a request head to its end (hyper's and Go's default: 30 s).
    pub head: Duration,
    /// Request bodies must arrive at least this fast (bytes per second), after a grace of
    /// `head`; a body that trickles slower is cut.
    pub body_min_rate: u64,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts {
            idle: Duration::from_secs(75),
            head: Duration::from_secs(30),
            body_min_rate: 64 << 10,
        }
    }
}

impl ClientTimeouts {
    /// How long a request body of `len` bytes may take to arrive.
    fn body(&self, len: u64) -> Duration {
        self.head + Duration::from_secs(len / self.body_min_rate.max(1))
    }
}
/// Streamed body bytes up to this size are gathered into one write.
const GATHER: usize = 64 << 10;

/// Accept connections on `listener` and serve `router` on each until `shutdown` resolves;
/// then stop accepting, let in-flight requests finish, close idle connections and return.
/// With `slots`, a connection is accepted only while a slot is free: further clients wait in
/// the listen backlog.
pub async fn run(
    listener: TcpListener,
    router: Router,
    slots: Option<Arc<Semaphore>>,
    timeouts: ClientTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = match &slots {
            Some(slots) => tokio::select! {
                permit = slots.clone().acquire_owned() => permit.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // Out of descriptors or memory: wait rather than spin.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, stop, alive) = (router.clone(), stop_rx.clone(), alive_tx.clone());
        tokio::spawn(async move {
            connection(stream, peer, router, stop, timeouts).await;
            drop(permit);
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Why reading a request head ended.
enum ReadError {
    /// The socket failed or closed mid-head.
    Io,
    /// The client sent nothing for too long, or took too long over a head.
    TimedOut,
    /// The head is not acceptable.
    Head(HeadError),
}

/// What follows a request head.
enum RequestBody {
    /// Nothing.
    None,
    /// This many bytes.
    Length(u64),
    /// Something hyper should handle (chunked, `Expect`, large).
    Hyper,
}

fn request_body(head: &RequestHead) -> RequestBody {
    if head.headers.contains_key(header::TRANSFER_ENCODING)
        || head.headers.contains_key(header::EXPECT)
    {
        return RequestBody::Hyper;
    }
    let mut lengths = head
        .headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    match (lengths.next(), lengths.next()) {
        (None, _) => RequestBody::None,
        (Some(Some(0)), None) => RequestBody::None,
        (Some(Some(len)), None) if len <= MAX_INLINE_BODY => RequestBody::Length(len),
        // Invalid, repeated or large: hyper's checks and streaming apply.
        _ => RequestBody::Hyper,
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
    timeouts: ClientTimeouts,
) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(8 << 10);
    loop {
        let read = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            read = read_head(&mut stream, &mut buf, &timeouts) => read,
        };
        let head = match read {
            Ok(None) | Err(ReadError::Io | ReadError::TimedOut) => return,
            Ok(Some(head)) => head,
            Err(ReadError::Head(error)) => {
                // As hyper does: answer the status, then close.
                let status = error.status();
                let reply = format!(
                    "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\ndate: {}\r\n\r\n",
                    status.as_str(),
                    status.canonical_reason().unwrap_or(""),
                    httpdate::fmt_http_date(std::time::SystemTime::now()),
                );
                let _ = zero_copy::write_all(&stream, reply.as_bytes(), false).await;
                return;
            }
        };
        let body = match request_body(&head) {
            RequestBody::Hyper => {
                hand_to_hyper(stream, buf, peer, router, stop, timeouts).await;
                return;
            }
            RequestBody::None => {
                buf.advance(head.len);
                Body::empty()
            }
            RequestBody::Length(len) => {
                buf.advance(head.len);
                let read = read_exact(&mut stream, &mut buf, len as usize);
                match tokio::time::timeout(timeouts.body(len), read).await {
                    Ok(Ok(bytes)) => Body::from(bytes),
                    Ok(Err(_)) | Err(_) => return,
                }
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.uri.clone();
        *request.version_mut() = head.version;
        *request.headers_mut() = head.headers.clone();
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        match respond(&stream, response, &head).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                return;
            }
        }
    }
}

/// Resolves once the mirror is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Read until `buf` starts with a whole request head; `None` when the client closed cleanly
/// between requests. The client has `timeouts.idle` to start a request (bytes left over from
/// the previous one count as a start) and `timeouts.head` from then on to finish its head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timeouts: &ClientTimeouts,
) -> Result<Option<RequestHead>, ReadError> {
    if buf.is_empty() {
        buf.reserve(8 << 10);
        match tokio::time::timeout(timeouts.idle, stream.read_buf(buf)).await {
            Err(_) => return Err(ReadError::TimedOut),
            Ok(Ok(0)) => return Ok(None),
            Ok(Err(_)) => return Err(ReadError::Io),
            Ok(Ok(_)) => {}
        }
    }
    match tokio::time::timeout(timeouts.head, read_rest_of_head(stream, buf)).await {
        Ok(read) => read.map(Some),
        Err(_) => Err(ReadError::TimedOut),
    }
}

/// Read until `buf` (not empty) starts with a whole request head.
async fn read_rest_of_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<RequestHead, ReadError> {
    loop {
        if !buf.is_empty() {
            match http1::parse_request(buf) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) if buf.len() >= MAX_HEAD => {
                    return Err(ReadError::Head(HeadError::TooLarge));
                }
                Ok(None) => {}
                Err(error) => return Err(ReadError::Head(error)),
            }
        }
        buf.reserve(8 << 10);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(ReadError::Io),
            Ok(_) => {}
        }
    }
}

/// The next `len` bytes: first those already in `buf`, then from the socket.
async fn read_exact(stream: &mut TcpStream, buf: &mut BytesMut, len: usize) -> io::Result<Bytes> {
    while buf.len() < len {
        buf.reserve((len - buf.len()).min(1 << 20));
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.split_to(len).freeze())
}

/// Write a response; `Ok(true)` when the connection may carry another request.
async fn respond(
    stream: &TcpStream,
    response: Response,
    request: &RequestHead,
) -> io::Result<bool> {
    let (mut parts, body) = response.into_parts();
    let segments = parts.extensions.remove::<Segments>();
    let size = if body.is_end_stream() {
        BodySize::Empty
    } else {
        match body.size_hint().exact() {
            Some(len) => BodySize::Exact(len),
            None => BodySize::Unknown,
        }
    };
    let head = http1::encode_response(parts.status, parts.headers, request, size);
    match head.framing {
        Framing::None => zero_copy::write_all(stream, &head.bytes, false).await?,
        Framing::Length(len) if segments.as_ref().is_some_and(|s| s.len() == len) => {
            if let Some(segments) = segments {
                zero_copy::send(stream, &head.bytes, &segments).await?;
            }
        }
        framing => write_streamed(stream, head.bytes, body, framing).await?,
    }
    Ok(head.keep_alive)
}

/// Write a head and a body as it streams, framed as the head says. A body that ends short of
/// its length, or runs past it, ends the connection (the client sees a truncated response,
/// never a wrong one).
async fn write_streamed(
    stream: &TcpStream,
    head: Vec<u8>,
    body: Body,
    framing: Framing,
) -> io::Result<()> {
    let mut out = head;
    let mut left = match framing {
        Framing::Length(len) => Some(len),
        _ => None,
    };
    let chunked = framing == Framing::Chunked;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(io::Error::other)?;
        if chunk.is_empty() {
            continue;
        }
        if let Some(left) = left.as_mut() {
            if chunk.len() as u64 > *left {
                return Err(io::Error::other(
                    "the body is longer than its Content-Length",
                ));
            }
            *left -= chunk.len() as u64;
        }
        if chunked {
            out.extend_from_slice(format!("{:X}\r\n", chunk.len()).as_bytes());
        }
        if out.len() + chunk.len() <= GATHER {
            out.extend_from_slice(&chunk);
        } else {
            zero_copy::write_all(stream, &out, true).await?;
            out.clear();
            zero_copy::write_all(stream, &chunk, true).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        // Stream what has arrived (pull-through clients wait for the first bytes).
        zero_copy::write_all(stream, &out, false).await?;
        out.clear();
    }
    if left.is_some_and(|left| left > 0) {
        return Err(io::Error::other("the body ended before its Content-Length"));
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    zero_copy::write_all(stream, &out, false).await
}

/// Serve the rest of a connection with hyper, replaying the bytes already read.
async fn hand_to_hyper(
    stream: TcpStream,
    buffered: BytesMut,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
    timeouts: ClientTimeouts,
) {
    let io = hyper_util::rt::TokioIo::new(Replay {
        buffered: buffered.freeze(),
        stream,
    });
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router
                .oneshot(request)
                .await
                .map_err(|never: Infallible| match never {})
        }
    });
    // hyper's head timeout runs from the moment it waits for a request, so it bounds idle
    // keep-alive too (at `head`, shorter than `idle`). It does not bound request bodies; the
    // routes that take one (paths-info, `/v1`) read it with a size limit.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeouts.head)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A socket whose first reads return bytes read from it earlier.
struct Replay {
    buffered: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            buf.put_slice(&self.buffered[..n]);
            self.buffered.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
