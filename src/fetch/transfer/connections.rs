//! The ranged connections: segments handed out lowest offset first (an idle connection
//! splits the largest remainder in flight), one request per segment with retries and the
//! stall watchdog, and the bytes buffered and written at their offsets.

use super::*;

pub(super) fn segment_size(size: u64, settings: &TransferSettings) -> u64 {
    let per = size / (settings.connections_per_file.max(1) as u64 * 2);
    per.clamp(
        settings.min_segment,
        settings.max_segment.max(settings.min_segment),
    )
}

/// Take the next segment for `slot`: the lowest pending one, or half of the largest
/// remainder in flight.
pub(super) fn claim(shared: &Shared, slot: usize, min_steal: u64) -> bool {
    let mut schedule = shared.lock();
    if schedule.error.is_some() {
        return false;
    }
    if let Some((start, end)) = schedule.pending.pop_front() {
        schedule.active[slot] = Some(Active { pos: start, end });
        return true;
    }
    let victim = schedule
        .active
        .iter()
        .enumerate()
        // `pos` may pass a freshly lowered `end`: a flush writes outside the lock, so a split
        // can land inside the chunk being written (the bytes are the same either way).
        .filter_map(|(i, a)| a.as_ref().map(|a| (i, a.end.saturating_sub(a.pos))))
        .max_by_key(|&(_, remaining)| remaining);
    if let Some((index, remaining)) = victim
        && remaining >= 2 * min_steal
        && let Some(active) = schedule.active[index].as_mut()
    {
        let mid = (active.pos + remaining / 2).div_ceil(SPLIT_ALIGN) * SPLIT_ALIGN;
        if mid > active.pos && mid < active.end {
            let end = active.end;
            active.end = mid;
            schedule.active[slot] = Some(Active { pos: mid, end });
            return true;
        }
    }
    false
}

/// One connection: claim segments until none are left. Returns bytes received.
pub(super) async fn worker(env: &TransferEnv, shared: &Arc<Shared>, slot: usize) -> u64 {
    let mut received = 0;
    loop {
        let permit = tokio::select! {
            biased;
            () = env.cancel.cancelled() => return received,
            permit = env.permits.acquire() => permit,
        };
        let Ok(_permit) = permit else {
            return received;
        };
        if env.cancel.is_cancelled() || !claim(shared, slot, env.settings.min_segment / 2) {
            return received;
        }
        received += fetch_segment(env, shared, slot).await;
        shared.lock().active[slot] = None;
        if shared.stop.load(Ordering::SeqCst) || env.cancel.is_cancelled() {
            return received;
        }
    }
}

pub(super) enum Attempt {
    /// The segment is complete.
    Done,
    /// The connection stalled; reconnect without counting a failure.
    Stalled,
    /// A transient failure.
    Failed(HubError),
    /// The CDN URL expired; resolve again.
    Expired,
    /// The token was cancelled; what was received is written.
    Cancelled,
}

/// Fetch the segment in `slot` to its (possibly shrinking) end, retrying as needed.
pub(super) async fn fetch_segment(env: &TransferEnv, shared: &Arc<Shared>, slot: usize) -> u64 {
    let path = shared.job.path.clone();
    let mut received = 0;
    let mut expirations = 0;
    loop {
        if shared.stop.load(Ordering::SeqCst) || env.cancel.is_cancelled() {
            return received;
        }
        let (pos, end) = match &shared.lock().active[slot] {
            Some(a) => (a.pos, a.end),
            None => return received,
        };
        if pos >= end {
            return received;
        }
        let mut permit = match &env.request_limit {
            Some(limit) => tokio::select! {
                biased;
                () = env.cancel.cancelled() => return received,
                permit = limit.acquire() => Some(permit),
            },
            None => None,
        };
        let (outcome, bytes) = attempt(env, shared, slot, pos, end, permit.as_mut()).await;
        drop(permit);
        received += bytes;
        match outcome {
            Ok(Attempt::Done | Attempt::Cancelled) => return received,
            Ok(Attempt::Stalled) => {
                tracing::warn!(path = %path, pos, "connection stalled; reconnecting");
            }
            Ok(Attempt::Expired) => {
                expirations += 1;
                *shared.location.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if expirations > 3 {
                    shared.fail(TransferError::Protocol {
                        path,
                        why: "the download URL keeps expiring; check the machine's clock"
                            .to_owned(),
                    });
                    return received;
                }
            }
            Ok(Attempt::Failed(error)) => {
                let failures = {
                    let mut schedule = shared.lock();
                    schedule.failures += 1;
                    schedule.failures
                };
                if failures > env.settings.retry.max_retries {
                    shared.fail(TransferError::Exhausted {
                        path,
                        attempts: failures,
                        source: error,
                    });
                    return received;
                }
                let wait = env.settings.retry.delay(failures, error.retry_after());
                env.reporter.report(&PullEvent::Retrying {
                    path: path.clone(),
                    attempt: failures,
                    error: error_chain(&error),
                    wait_ms: wait.as_millis() as u64,
                });
                tokio::select! {
                    biased;
                    () = env.cancel.cancelled() => return received,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(fatal) => {
                shared.fail(fatal);
                return received;
            }
        }
    }
}

/// One request for `[pos, end)`. Returns the outcome and the bytes written.
pub(super) async fn attempt(
    env: &TransferEnv,
    shared: &Arc<Shared>,
    slot: usize,
    pos: u64,
    end: u64,
    permit: Option<&mut RequestPermit>,
) -> (Result<Attempt, TransferError>, u64) {
    let job = &shared.job;
    let stall = env.settings.stall_timeout;
    let cached = shared
        .location
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let target = cached.clone().unwrap_or_else(|| job.url.clone());
    let request = env.client.get_range(target.clone(), pos, end - 1);
    let answered = tokio::select! {
        biased;
        () = env.cancel.cancelled() => return (Ok(Attempt::Cancelled), 0),
        answered = tokio::time::timeout(stall, request) => answered,
    };
    let (response, final_url) = match answered {
        Err(_) => return (Ok(Attempt::Stalled), 0),
        Ok(Err(error)) if error.is_transient() => return (Ok(Attempt::Failed(error)), 0),
        Ok(Err(error)) => {
            return (
                Err(TransferError::Hub {
                    path: job.path.clone(),
                    source: error,
                }),
                0,
            );
        }
        Ok(Ok(pair)) => pair,
    };
    let status = response.status();
    if let Some(permit) = permit {
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => permit.throttled(),
            _ if status.is_success() => permit.answered(),
            _ => {}
        }
    }
    let off_origin = final_url.origin() != job.url.origin();
    if off_origin
        && matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::GONE | StatusCode::UNAUTHORIZED
        )
    {
        return (Ok(Attempt::Expired), 0);
    }
    if !status.is_success() {
        let checked = check_status(
            response,
            job.kind,
            &job.repo,
            None,
            Some(&job.path),
            &env.client,
        )
        .await;
        let Err(error) = checked else {
            return (Ok(Attempt::Failed(premature_end(job))), 0);
        };
        if error.is_transient() {
            return (Ok(Attempt::Failed(error)), 0);
        }
        return (
            Err(TransferError::Hub {
                path: job.path.clone(),
                source: error,
            }),
            0,
        );
    }
    if off_origin && cached.is_none() {
        *shared.location.lock().unwrap_or_else(|p| p.into_inner()) = Some(final_url);
    }
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((start, _, total)) if start == pos && total == job.size => {}
                Some((start, _, total)) => {
                    return (
                        Err(TransferError::Protocol {
                            path: job.path.clone(),
                            why: format!(
                                "asked for bytes from {pos} of {} but the server sent bytes from {start} of {total}",
                                job.size
                            ),
                        }),
                        0,
                    );
                }
                None => {
                    return (
                        Err(TransferError::Protocol {
                            path: job.path.clone(),
                            why: "a 206 answer without a valid Content-Range".to_owned(),
                        }),
                        0,
                    );
                }
            }
        }
        StatusCode::OK if pos == 0 => {
            if response.content_length().is_some_and(|len| len != job.size) {
                return (
                    Err(TransferError::Protocol {
                        path: job.path.clone(),
                        why: format!(
                            "the server sent {} bytes but the listing says {}",
                            response.content_length().unwrap_or_default(),
                            job.size
                        ),
                    }),
                    0,
                );
            }
        }
        _ => {
            return (
                Err(TransferError::Protocol {
                    path: job.path.clone(),
                    why: format!("the server ignored the Range request (answered {status})"),
                }),
                0,
            );
        }
    }
    stream_body(env, shared, slot, response, pos).await
}

/// Parse `bytes a-b/total`.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// Stream a response body to the part from `pos`, stopping at the slot's current end.
pub(super) async fn stream_body(
    env: &TransferEnv,
    shared: &Arc<Shared>,
    slot: usize,
    mut response: reqwest::Response,
    mut pos: u64,
) -> (Result<Attempt, TransferError>, u64) {
    let stall = env.settings.stall_timeout;
    let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut received = 0;
    loop {
        // Cancelled: stop reading, but still write what is buffered (it has landed).
        let next = tokio::select! {
            biased;
            () = env.cancel.cancelled() => None,
            next = tokio::time::timeout(stall, response.chunk()) => Some(next),
        };
        let (chunk, outcome) = match next {
            None => (None, Some(Ok(Attempt::Cancelled))),
            Some(Err(_)) => (None, Some(Ok(Attempt::Stalled))),
            Some(Ok(Ok(Some(chunk)))) => (Some(chunk), None),
            Some(Ok(Ok(None))) => (None, Some(Ok(Attempt::Failed(premature_end(&shared.job))))),
            Some(Ok(Err(source))) => (
                None,
                Some(Ok(Attempt::Failed(HubError::Network {
                    url: crate::hub::client::redact(&shared.job.url),
                    source,
                }))),
            ),
        };
        if let Some(chunk) = &chunk {
            if let Some(limiter) = &env.rate_limit {
                tokio::select! {
                    biased;
                    () = env.cancel.cancelled() => {}
                    () = limiter.take(chunk.len()) => {}
                }
            }
            buffer.extend_from_slice(chunk);
        }
        let outcome = match outcome {
            None if env.cancel.is_cancelled() => Some(Ok(Attempt::Cancelled)),
            outcome => outcome,
        };
        let end = match &shared.lock().active[slot] {
            Some(a) => a.end,
            None => pos,
        };
        // Write when the buffer is full, the stream ended, or the slot's end (which another
        // connection may have pulled in by taking over half the range) is reached: reading on
        // would only fetch bytes that are thrown away.
        if buffer.len() >= WRITE_BUFFER || outcome.is_some() || pos + buffer.len() as u64 >= end {
            match flush(env, shared, slot, &mut buffer, &mut pos) {
                Ok(Flushed::More(n)) => received += n,
                Ok(Flushed::Reached(n)) => return (Ok(Attempt::Done), received + n),
                Err(e) => return (Err(e), received),
            }
        }
        if let Some(outcome) = outcome {
            return (outcome, received);
        }
        if shared.stop.load(Ordering::SeqCst) {
            return (Ok(Attempt::Done), received);
        }
    }
}

pub(super) fn premature_end(job: &FileJob) -> HubError {
    HubError::Status {
        url: crate::hub::client::redact(&job.url),
        status: 502,
        message: Some("the connection closed before the range was complete".to_owned()),
        code: None,
        retry_after: None,
    }
}

pub(super) enum Flushed {
    More(u64),
    Reached(u64),
}

/// Write the buffer at `pos`, clipped to the slot's current end, and record it.
pub(super) fn flush(
    env: &TransferEnv,
    shared: &Shared,
    slot: usize,
    buffer: &mut Vec<u8>,
    pos: &mut u64,
) -> Result<Flushed, TransferError> {
    let end = match &shared.lock().active[slot] {
        Some(a) => a.end,
        None => *pos,
    };
    let n = (buffer.len() as u64).min(end.saturating_sub(*pos));
    if n > 0 {
        shared
            .file
            .write_all_at(&buffer[..n as usize], *pos)
            .map_err(|e| {
                TransferError::store(
                    &shared.job.path,
                    StoreError::io("could not write", &shared.part_path, e),
                )
            })?;
        {
            let mut schedule = shared.lock();
            schedule.done.insert(*pos, *pos + n);
            schedule.failures = 0;
            if let Some(active) = schedule.active[slot].as_mut() {
                active.pos = *pos + n;
            }
        }
        shared.changed.notify_all();
        env.reporter.report(&PullEvent::FileProgress {
            path: shared.shown_path.clone(),
            bytes: n,
        });
        *pos += n;
    }
    let reached = *pos >= end;
    buffer.clear();
    Ok(if reached {
        Flushed::Reached(n)
    } else {
        Flushed::More(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }

    #[test]
    fn segments_are_clamped() {
        let s = TransferSettings::default();
        assert_eq!(segment_size(1 << 30, &s), 64 << 20);
        assert_eq!(segment_size(100, &s), 8 << 20);
        assert_eq!(segment_size(256 << 20, &s), 16 << 20);
    }
}
