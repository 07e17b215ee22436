//! Request bodies: read whole before a request takes a model slot, within the request deadline,
//! the payload limit and a server-wide budget of bytes in transit; over-limit bodies drained so
//! the client reads its 413 rather than a reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::conn;
use crate::error::ApiError;
use crate::server::Shared;

/// Releases a request's share of the body budget.
struct Buffered<'a> {
    total: &'a AtomicUsize,
    held: usize,
}

impl Buffered<'_> {
    /// Take `n` more bytes from the budget of `max` for this request, or say it is spent.
    fn take(&mut self, n: usize, max: usize) -> bool {
        let before = self.total.fetch_add(n, Ordering::AcqRel);
        self.held += n;
        before.saturating_add(n) <= max
    }
}

impl Drop for Buffered<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// Why a body was not taken whole.
enum Intake {
    Complete,
    TooLarge,
    Busy,
}

/// Read `body` into `buf`: at most `limit` bytes, while the server-wide budget of `budget`
/// bytes held by bodies in transit lasts.
async fn collect(
    body: &mut Body,
    buf: &mut Vec<u8>,
    limit: usize,
    held: &mut Buffered<'_>,
    budget: usize,
) -> Result<Intake, axum::Error> {
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if buf.len().saturating_add(data.len()) > limit {
            return Ok(Intake::TooLarge);
        }
        if !held.take(data.len(), budget) {
            return Ok(Intake::Busy);
        }
        buf.extend_from_slice(&data);
    }
    Ok(Intake::Complete)
}

/// Bodies in transit hold at most `payload_limit × max_concurrent_requests` bytes together
/// (what the requests being answered may hold), and never less than this.
const BODY_BUDGET_AT_LEAST: usize = 256 << 20;

/// An over-limit body is read and dropped up to twice the payload limit, and at least this
/// much, before the 413 is sent (beyond it the connection is closed: the client may then see
/// a reset instead of the answer).
const DRAIN_AT_LEAST: usize = 64 << 20;

/// Read and drop what is left of an over-limit body (until `deadline`, at most `max` bytes),
/// so that the client reads its 413 instead of a connection reset.
async fn drain(body: &mut Body, deadline: Instant, max: usize) {
    let _ = tokio::time::timeout_at(deadline, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen = seen.saturating_add(frame.data_ref().map_or(0, |d| d.len()));
            if seen > max {
                break;
            }
        }
    })
    .await;
}

/// A POST's body is read in full here, before the request takes a model slot (`limit`): so a
/// slow upload costs a connection, never a slot. At most `payload_limit` bytes (more: 413,
/// the rest read and dropped, see [`DRAIN_AT_LEAST`]), within `timeouts.request` (408 after), while bodies in transit
/// hold less than `max_concurrent_requests × payload_limit` bytes together (at least
/// [`BODY_BUDGET_AT_LEAST`]; 503 beyond);
/// ended at once with 503 when the server shuts down.
pub(crate) async fn read_body(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let config = &s.app.config;
    let limit = config.limits.payload_limit;
    let budget = limit
        .saturating_mul(config.limits.max_concurrent_requests)
        .max(BODY_BUDGET_AT_LEAST);
    let deadline = Instant::now() + config.timeouts.request;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, mut body) = req.into_parts();
    let mut buf = Vec::new();
    let mut held = Buffered {
        total: &s.buffered,
        held: 0,
    };
    let mut stop = s.stop.clone();
    let outcome = if declared.is_some_and(|n| n > limit as u64) {
        Ok(Ok(Intake::TooLarge))
    } else {
        tokio::select! {
            r = tokio::time::timeout_at(
                deadline,
                collect(&mut body, &mut buf, limit, &mut held, budget),
            ) => r,
            () = conn::stopping(&mut stop) => {
                return ApiError::Unavailable("the server is shutting down").into_response();
            }
        }
    };
    match outcome {
        Ok(Ok(Intake::Complete)) => next.run(Request::from_parts(parts, Body::from(buf))).await,
        Ok(Ok(Intake::TooLarge)) => {
            drop(buf);
            drop(held);
            drain(
                &mut body,
                deadline,
                limit.saturating_mul(2).max(DRAIN_AT_LEAST),
            )
            .await;
            ApiError::PayloadTooLarge { limit }.into_response()
        }
        Ok(Ok(Intake::Busy)) => ApiError::Unavailable(
            "the server is receiving too many request bodies at once; retry later",
        )
        .into_response(),
        Ok(Err(e)) => ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            message: format!("the request body could not be read ({e})"),
        }
        .into_response(),
        Err(_) => ApiError::RequestTimeout {
            seconds: config.timeouts.request.as_secs_f64(),
        }
        .into_response(),
    }
}
