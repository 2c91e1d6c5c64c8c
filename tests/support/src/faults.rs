//! Fault injection: tests arm faults that hit the next N matching requests.
//!
//! A [`Fault`] names what goes wrong ([`FaultKind`]), which requests it hits
//! ([`Target`] and optionally a set of [`Route`]s) and how many times. Status
//! faults (503/429, expired CDN URL) replace the response; body faults
//! (cut, flip, stall, throttle) change how a file body is streamed.

use std::sync::Mutex;
use std::time::Duration;

/// The kind of request, used for counters, the request log and fault scoping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Any `/api/...` request (info, tree, paths-info, xet-read-token).
    Api,
    /// `HEAD …/resolve/…`.
    ResolveHead,
    /// `GET …/resolve/…`.
    ResolveGet,
    /// `GET /cdn/{sha256}` on the CDN listener.
    CdnGet,
    /// `HEAD /cdn/{sha256}` on the CDN listener.
    CdnHead,
    /// Anything else (unknown routes).
    Other,
}

/// Which requests a fault matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every request on the fault's routes.
    Any,
    /// Requests for this file path (resolve), or for content that appears under it (CDN).
    Path(String),
    /// Requests for the LFS file with this SHA-256 (resolve or CDN).
    Sha256(String),
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// End the body with an error after this many body bytes (a broken transfer).
    CutAfter(u64),
    /// Answer with this status (e.g. 503, 429) and optional `Retry-After` seconds.
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` value in seconds.
        retry_after: Option<u64>,
    },
    /// Flip (xor 0xFF) the byte at this offset **of the file** if the served range covers it.
    FlipByte(u64),
    /// Send this many body bytes, then send nothing for the duration (`None`: forever).
    Stall {
        /// Body bytes sent before stalling.
        after: u64,
        /// How long to stall; `None` keeps the connection open forever.
        duration: Option<Duration>,
    },
    /// The CDN answers 403 as if the signed URL had expired.
    ExpireCdn,
    /// Cap the response body at this many bytes per second.
    Throttle(u64),
    /// Accept the request and never answer (no status line), or answer after the duration.
    Hang(Option<Duration>),
    /// Answer `status` with an error body of this many bytes (`u64::MAX`: endless), streamed.
    HugeErrorBody {
        /// HTTP status code.
        status: u16,
        /// Body length.
        bytes: u64,
    },
    /// Answer 200 with a body that is not what was asked for (an HTML page).
    Garbage,
}

impl FaultKind {
    pub(crate) fn is_body(&self) -> bool {
        matches!(
            self,
            FaultKind::CutAfter(_)
                | FaultKind::FlipByte(_)
                | FaultKind::Stall { .. }
                | FaultKind::Throttle(_)
        )
    }
}

/// One armed fault. Build with the constructors, refine with the `self` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Which requests it matches.
    pub target: Target,
    /// How many more matching requests it hits (`usize::MAX`: forever).
    pub times: usize,
    /// Restricts the fault to these routes; `None` uses the default (see [`Fault::on`]).
    pub routes: Option<Vec<Route>>,
}

impl Fault {
    /// A fault of `kind` hitting the next matching request once.
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            target: Target::Any,
            times: 1,
            routes: None,
        }
    }

    /// Break the body after `bytes` bytes.
    pub fn cut_after(bytes: u64) -> Fault {
        Fault::new(FaultKind::CutAfter(bytes))
    }

    /// Answer `status` with `Retry-After: retry_after` (seconds) if given.
    pub fn status(status: u16, retry_after: Option<u64>) -> Fault {
        Fault::new(FaultKind::Status {
            status,
            retry_after,
        })
    }

    /// `503 Service Unavailable` with `Retry-After`.
    pub fn unavailable(retry_after: u64) -> Fault {
        Fault::status(503, Some(retry_after))
    }

    /// `429 Too Many Requests` with `Retry-After`.
    pub fn too_many_requests(retry_after: u64) -> Fault {
        Fault::status(429, Some(retry_after))
    }

    /// Corrupt the byte at file offset `offset`.
    pub fn flip_byte(offset: u64) -> Fault {
        Fault::new(FaultKind::FlipByte(offset))
    }

    /// Send `after` bytes, then stall for `duration` (`None`: forever).
    pub fn stall(after: u64, duration: Option<Duration>) -> Fault {
        Fault::new(FaultKind::Stall { after, duration })
    }

    /// The CDN rejects the URL as expired (403).
    pub fn expire_cdn() -> Fault {
        Fault::new(FaultKind::ExpireCdn)
    }

    /// Never answer (the connection stays open, no status line is sent).
    pub fn hang() -> Fault {
        Fault::new(FaultKind::Hang(None))
    }

    /// Answer `status` with an error body of `bytes` bytes (`u64::MAX`: it never ends).
    pub fn huge_error_body(status: u16, bytes: u64) -> Fault {
        Fault::new(FaultKind::HugeErrorBody { status, bytes })
    }

    /// Answer 200 with an HTML page instead of what was asked for.
    pub fn garbage() -> Fault {
        Fault::new(FaultKind::Garbage)
    }

    /// Limit the body to `bytes_per_second`.
    pub fn throttle(bytes_per_second: u64) -> Fault {
        Fault::new(FaultKind::Throttle(bytes_per_second.max(1)))
    }

    /// Only requests for this file path.
    pub fn path(mut self, path: &str) -> Fault {
        self.target = Target::Path(path.trim_matches('/').to_owned());
        self
    }

    /// Only requests for the LFS content with this SHA-256.
    pub fn sha256(mut self, sha256: &str) -> Fault {
        self.target = Target::Sha256(sha256.to_ascii_lowercase());
        self
    }

    /// Hit the next `times` matching requests.
    pub fn times(mut self, times: usize) -> Fault {
        self.times = times;
        self
    }

    /// Hit every matching request until cleared.
    pub fn forever(mut self) -> Fault {
        self.times = usize::MAX;
        self
    }

    /// Restrict to `route` (may be called several times to allow several).
    ///
    /// Defaults: body faults apply wherever a file body is served
    /// (`ResolveGet` of a regular file, `CdnGet`); expiry applies to the CDN;
    /// status faults apply to resolve and CDN requests, and with
    /// [`Target::Any`] to API requests too.
    pub fn on(mut self, route: Route) -> Fault {
        self.routes.get_or_insert_with(Vec::new).push(route);
        self
    }

    fn matches(&self, request: &FaultContext<'_>) -> bool {
        let route_ok = match &self.routes {
            Some(routes) => routes.contains(&request.route),
            None => match self.kind {
                FaultKind::ExpireCdn => matches!(request.route, Route::CdnGet | Route::CdnHead),
                FaultKind::Status { .. }
                | FaultKind::Hang(_)
                | FaultKind::HugeErrorBody { .. }
                | FaultKind::Garbage => request.route != Route::Api || self.target == Target::Any,
                _ => matches!(request.route, Route::ResolveGet | Route::CdnGet),
            },
        };
        route_ok
            && match &self.target {
                Target::Any => true,
                Target::Path(path) => request.paths.iter().any(|candidate| candidate == path),
                Target::Sha256(sha256) => request.sha256 == Some(sha256.as_str()),
            }
    }
}

/// What a fault is matched against.
pub(crate) struct FaultContext<'a> {
    pub(crate) route: Route,
    pub(crate) paths: &'a [String],
    pub(crate) sha256: Option<&'a str>,
}

/// Body faults picked for one response.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyFaults {
    pub(crate) cut_after: Option<u64>,
    pub(crate) flip_at: Option<u64>,
    pub(crate) stall: Option<(u64, Option<Duration>)>,
    pub(crate) throttle: Option<u64>,
}

impl BodyFaults {
    pub(crate) fn is_empty(&self) -> bool {
        self.cut_after.is_none()
            && self.flip_at.is_none()
            && self.stall.is_none()
            && self.throttle.is_none()
    }
}

/// The armed faults of one stand-in.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Mutex<Vec<Fault>>,
}

impl Faults {
    /// Arms a fault.
    pub fn add(&self, fault: Fault) {
        if fault.times > 0 {
            self.lock().push(fault);
        }
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Faults still armed (with their remaining counts).
    pub fn pending(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the first matching status or expiry fault, consuming one use.
    pub(crate) fn take_response_fault(&self, request: &FaultContext<'_>) -> Option<FaultKind> {
        let mut armed = self.lock();
        let index = armed
            .iter()
            .position(|fault| !fault.kind.is_body() && fault.matches(request))?;
        Some(consume(&mut armed, index))
    }

    /// Takes every matching body fault (the first of each kind), consuming one use each.
    pub(crate) fn take_body_faults(&self, request: &FaultContext<'_>) -> BodyFaults {
        let mut armed = self.lock();
        let mut picked = BodyFaults::default();
        let mut index = 0;
        while index < armed.len() {
            let fault = &armed[index];
            if !(fault.kind.is_body() && fault.matches(request)) {
                index += 1;
                continue;
            }
            let slot_free = match fault.kind {
                FaultKind::CutAfter(_) => picked.cut_after.is_none(),
                FaultKind::FlipByte(_) => picked.flip_at.is_none(),
                FaultKind::Stall { .. } => picked.stall.is_none(),
                FaultKind::Throttle(_) => picked.throttle.is_none(),
                _ => false,
            };
            if !slot_free {
                index += 1;
                continue;
            }
            let before = armed.len();
            match consume(&mut armed, index) {
                FaultKind::CutAfter(bytes) => picked.cut_after = Some(bytes),
                FaultKind::FlipByte(offset) => picked.flip_at = Some(offset),
                FaultKind::Stall { after, duration } => picked.stall = Some((after, duration)),
                FaultKind::Throttle(rate) => picked.throttle = Some(rate),
                _ => {}
            }
            if armed.len() == before {
                index += 1;
            }
        }
        picked
    }
}

fn consume(armed: &mut Vec<Fault>, index: usize) -> FaultKind {
    let fault = &mut armed[index];
    let kind = fault.kind.clone();
    if fault.times != usize::MAX {
        fault.times -= 1;
    }
    if fault.times == 0 {
        armed.remove(index);
    }
    kind
}
