//! HTTP/1.1 message heads for the mirror's own connection layer: parsing a request head
//! (`httparse`) and writing a response head with the framing, `Date` and `Connection` rules
//! hyper's server applies, so a response reads the same whichever path sent it.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

/// Most header fields in a request (hyper's default).
const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
    /// Bytes of the head in the buffer, blank line included.
    pub len: usize,
}

/// Why a request head could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x syntax, or a field or target that is not valid.
    #[error("malformed request head")]
    Malformed,
    /// More header fields than accepted.
    #[error("too many header fields")]
    TooLarge,
}

impl HeadError {
    /// The status hyper would answer with before closing.
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// Parse a request head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let method = Method::from_bytes(request.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed)?;
    let uri: Uri = request
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| HeadError::Malformed)?;
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| HeadError::Malformed)?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| HeadError::Malformed)?;
        headers.append(name, value);
    }
    Ok(Some(RequestHead {
        method,
        uri,
        version,
        headers,
        len,
    }))
}

/// Whether a `Connection` value lists `token`.
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body bytes follow the head (HEAD, 204, 304, an empty body).
    None,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Bytes until the connection closes (HTTP/1.0, unknown length).
    UntilClose,
}

/// What the body of a response is known to be, before the head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// Nothing (the body is at its end already).
    Empty,
    /// A known length.
    Exact(u64),
    /// Unknown until it ends.
    Unknown,
}

/// A response head ready to write, with how its body is framed and whether the connection
/// stays open after it.
#[derive(Debug)]
pub struct ResponseHead {
    /// The bytes of the head, blank line included.
    pub bytes: Vec<u8>,
    /// The body's framing.
    pub framing: Framing,
    /// Whether another request may follow on the connection.
    pub keep_alive: bool,
}

fn can_have_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn can_have_content_length(status: StatusCode) -> bool {
    !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

/// Encode a response head the way hyper's HTTP/1 server does: header names in lower case in
/// the map's order, a user `Content-Length` kept (and trusted as the framing), one added when
/// the body's size is known, chunked coding for an unknown size on HTTP/1.1, `Date` appended
/// when absent, `Connection: close` added when the client asked for it.
pub fn encode_response(
    status: StatusCode,
    mut headers: HeaderMap,
    request: &RequestHead,
    body: BodySize,
) -> ResponseHead {
    let method = &request.method;
    let http10 = request.version == Version::HTTP_10;
    let mut keep_alive = !http10 && !connection_has(&request.headers, "close");
    if !http10 && !keep_alive && !connection_has(&headers, "close") {
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if connection_has(&headers, "close") {
        keep_alive = false;
    }
    let mut out = Vec::with_capacity(128 + headers.len() * 48);
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");

    let mut framing = None;
    let mut wrote_date = false;
    let body_allowed = can_have_body(method, status);
    for (name, value) in headers.iter() {
        match *name {
            header::CONTENT_LENGTH => {
                if framing.is_some() {
                    continue;
                }
                let declared = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match (body, declared) {
                    // An empty body with a length: only HEAD keeps it (hyper drops it otherwise).
                    (BodySize::Empty, _) if method != Method::HEAD => continue,
                    (_, Some(len)) => {
                        framing = Some(if body_allowed {
                            Framing::Length(len)
                        } else {
                            Framing::None
                        });
                    }
                    (_, None) => continue,
                }
            }
            header::TRANSFER_ENCODING => {
                if http10 || !body_allowed || framing.is_some() {
                    continue;
                }
                framing = Some(Framing::Chunked);
            }
            header::DATE => wrote_date = true,
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = match framing {
        Some(framing) => framing,
        None => match body {
            BodySize::Unknown if !body_allowed => Framing::None,
            BodySize::Unknown if http10 => {
                keep_alive = false;
                Framing::UntilClose
            }
            BodySize::Unknown => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodySize::Empty | BodySize::Exact(0) => {
                if method != Method::HEAD && can_have_content_length(status) {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::None
            }
            BodySize::Exact(len) => {
                if can_have_content_length(status) {
                    out.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
                }
                if body_allowed {
                    Framing::Length(len)
                } else {
                    Framing::None
                }
            }
        },
    };
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    ResponseHead {
        bytes: out,
        framing,
        keep_alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn parses_heads() {
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        ));
        let head = get("GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\nrest");
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri.path(), "/a/b");
        assert_eq!(head.uri.query(), Some("c=d"));
        assert_eq!(head.headers["range"], "bytes=0-1");
        assert_eq!(
            head.len,
            "GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n".len()
        );
        assert_eq!(
            parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
    }

    fn text(head: &ResponseHead) -> String {
        let s = String::from_utf8(head.bytes.clone()).unwrap();
        // Drop the date line (it changes).
        s.lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn encodes_heads() {
        let request = get("GET / HTTP/1.1\r\n\r\n");
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let head = encode_response(
            StatusCode::OK,
            headers.clone(),
            &request,
            BodySize::Exact(5),
        );
        assert_eq!(text(&head), "HTTP/1.1 200 OK\nx-a: 1\ncontent-length: 5\n");
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert!(String::from_utf8_lossy(&head.bytes).contains("\r\ndate: "));

        let head = encode_response(
            StatusCode::OK,
            HeaderMap::new(),
            &request,
            BodySize::Unknown,
        );
        assert_eq!(text(&head), "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n");
        assert_eq!(head.framing, Framing::Chunked);

        let head = encode_response(
            StatusCode::NOT_FOUND,
            HeaderMap::new(),
            &request,
            BodySize::Empty,
        );
        assert_eq!(text(&head), "HTTP/1.1 404 Not Found\ncontent-length: 0\n");

        let head_request = get("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n");
        let head = encode_response(StatusCode::OK, headers, &head_request, BodySize::Empty);
        assert_eq!(
            text(&head),
            "HTTP/1.1 200 OK\nx-a: 1\ncontent-length: 5\nconnection: close\n"
        );
        assert_eq!(head.framing, Framing::None);
        assert!(!head.keep_alive);

        let old = get("GET / HTTP/1.0\r\n\r\n");
        let head = encode_response(
            StatusCode::NOT_MODIFIED,
            HeaderMap::new(),
            &old,
            BodySize::Empty,
        );
        assert_eq!(text(&head), "HTTP/1.0 304 Not Modified\n");
        assert!(!head.keep_alive);
    }
}
