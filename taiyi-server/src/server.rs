//! Starting, running and stopping the server: the router, its middleware (metrics, API key,
//! body intake, concurrency limit) and graceful shutdown. Connections are served by
//! [`crate::conn`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::tensor::backend::Backend;
use http_body_util::BodyExt;
use taiyi_core::{ClipError, ClipModel};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::conn::{self, ConnLimits};
use crate::error::{ApiError, ServerError};
use crate::metrics::Metrics;
use crate::routes::{self, AppState};
use crate::{ServerConfig, engine};

/// The routes, as `/metrics` labels them (anything else is `other`).
const ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/embed",
    "/classify",
    "/logits",
    "/health",
    "/info",
    "/metrics",
];

/// Routes that run the model, under the concurrency limit.
const MODEL_ROUTES: &[&str] = &["/v1/embeddings", "/embed", "/classify", "/logits"];

struct Shared {
    app: Arc<AppState>,
    in_flight: AtomicUsize,
    /// Body bytes held by requests still being received, all together.
    buffered: AtomicUsize,
    /// Turns true when the server starts shutting down.
    stop: watch::Receiver<bool>,
}

/// Count every answer by route and status.
async fn count(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = ROUTES
        .iter()
        .find(|r| **r == req.uri().path())
        .copied()
        .unwrap_or("other");
    let response = next.run(req).await;
    s.app.metrics.request(route, response.status().as_u16());
    response
}

/// `Authorization: Bearer <key>` on every route but `/health`, when a key is set.
async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.app.config.api_key
        && req.uri().path() != "/health"
    {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme's case does not
/// matter (RFC 7235 §2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decrements the in-flight count when the request is done (or dropped).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

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
async fn read_body(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
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

/// At most `max_concurrent_requests` model requests at once; more are answered 429.
async fn limit(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !MODEL_ROUTES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let max = s.app.config.limits.max_concurrent_requests;
    let before = s.in_flight.fetch_add(1, Ordering::AcqRel);
    let _guard = InFlight(&s.in_flight);
    if before >= max {
        return ApiError::TooManyRequests { limit: max }.into_response();
    }
    next.run(req).await
}

fn router(app: Arc<AppState>, stop: watch::Receiver<bool>) -> Router {
    let payload = app.config.limits.payload_limit;
    let shared = Arc::new(Shared {
        app: app.clone(),
        in_flight: AtomicUsize::new(0),
        buffered: AtomicUsize::new(0),
        stop,
    });
    Router::new()
        .route("/v1/embeddings", post(routes::embeddings))
        .route("/embed", post(routes::embed))
        .route("/classify", post(routes::classify))
        .route("/logits", post(routes::logits))
        .route("/health", get(routes::health))
        .route("/info", get(routes::info))
        .route("/metrics", get(routes::metrics))
        .fallback(|method: Method, uri: axum::http::Uri| async move {
            ApiError::NotFound {
                method: method.to_string(),
                path: uri.path().to_string(),
            }
        })
        .method_not_allowed_fallback(|method: Method, uri: axum::http::Uri| async move {
            ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: uri.path().to_string(),
            }
        })
        .layer(DefaultBodyLimit::max(payload))
        .with_state(app)
        .layer(middleware::from_fn_with_state(shared.clone(), limit))
        .layer(middleware::from_fn_with_state(shared.clone(), read_body))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .layer(middleware::from_fn_with_state(shared, count))
}

/// A running server: listening, loading or serving. Stop it with
/// [`RunningServer::shutdown`] or wait for a signal with [`RunningServer::wait_for_signal`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<()>,
    engine: std::thread::JoinHandle<Result<(), ClipError>>,
    metrics: Arc<Metrics>,
}

/// Start the server on `config.addr` and return at once: it listens (and answers `/health`
/// with 503) while the inference thread loads the model with `load` and runs a warm-up
/// batch; `/health` then answers 200.
///
/// `load` runs on the inference thread, which owns the model from then on.
///
/// # Errors
/// [`ServerError::Config`] when a setting cannot work ([`ServerConfig::validate`]),
/// [`ServerError::Bind`] when the address cannot be bound, [`ServerError::Start`] when the
/// threads cannot be started. A failed `load` is reported by [`RunningServer::shutdown`] /
/// [`RunningServer::wait_for_signal`] (the server stops by itself).
pub fn spawn<B, F>(config: ServerConfig, load: F) -> Result<RunningServer, ServerError>
where
    B: Backend,
    F: FnOnce() -> Result<ClipModel<B>, ClipError> + Send + 'static,
{
    config.validate().map_err(ServerError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("taiyi-http")
        .build()
        .map_err(ServerError::Start)?;
    let addr = config.addr;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| ServerError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = watch::channel(false);
    let stop_on_failure = stop.clone();
    let (engine, thread) = engine::start(
        load,
        config.batch.clone(),
        config.limits.max_image_pixels,
        metrics.clone(),
        Box::new(move || {
            // The engine only ends early when loading failed: stop serving then.
            let _ = stop_on_failure.send(true);
        }),
    )
    .map_err(ServerError::Start)?;
    let limits = ConnLimits {
        request_timeout: config.timeouts.request,
        max_connections: config.limits.max_connections,
        shutdown_grace: config.timeouts.shutdown_grace,
    };
    let app = Arc::new(AppState {
        config,
        engine,
        metrics: metrics.clone(),
    });
    let service = router(app, stopped.clone());
    let http = runtime.spawn(conn::serve(
        listener,
        service,
        limits,
        stopped,
        metrics.clone(),
    ));
    Ok(RunningServer {
        addr,
        runtime,
        stop,
        http,
        engine: thread,
        metrics,
    })
}

impl RunningServer {
    /// The address it listens on (the real port when `config.addr` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's metrics (as `/metrics` renders them).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stop accepting connections, close idle ones and those still sending a request, let
    /// every complete request finish (each gets its answer, within `timeouts.shutdown_grace`),
    /// then stop the inference thread once its queue is drained.
    ///
    /// # Errors
    /// The model's loading error if it failed to load; [`ServerError::Serve`] if serving
    /// failed; [`ServerError::EnginePanicked`] if the inference thread panicked.
    pub fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.finish()
    }

    /// Serve until SIGINT (Ctrl-C) or SIGTERM, then [`RunningServer::shutdown`]. Also returns
    /// when the model fails to load (with that error).
    ///
    /// # Errors
    /// As [`RunningServer::shutdown`].
    pub fn wait_for_signal(self) -> Result<(), ServerError> {
        let on_ctrl_c = self.stop.clone();
        self.runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = on_ctrl_c.send(true);
            }
        });
        #[cfg(unix)]
        {
            let on_term = self.stop.clone();
            self.runtime.spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut term) = signal(SignalKind::terminate()) {
                    term.recv().await;
                    let _ = on_term.send(true);
                }
            });
        }
        let mut stopped = self.stop.subscribe();
        self.runtime.block_on(async {
            let _ = stopped.wait_for(|s| *s).await;
        });
        self.shutdown()
    }

    fn finish(self) -> Result<(), ServerError> {
        let served = self.runtime.block_on(self.http);
        // Dropping the runtime drops the router, its state and the last queue sender: the
        // inference thread drains the queue and ends.
        drop(self.runtime);
        let loaded = self
            .engine
            .join()
            .map_err(|_| ServerError::EnginePanicked)?;
        loaded.map_err(ServerError::Load)?;
        served.map_err(|_| ServerError::Serve(std::io::Error::other("the HTTP task panicked")))
    }
}

/// [`spawn`], then [`RunningServer::wait_for_signal`]: serve until SIGINT/SIGTERM, drain, and
/// return. Prints `listening on http://ADDR` on stderr once bound (the model may still be
/// loading: `/health` answers 503 until it is ready).
///
/// # Errors
/// As [`spawn`] and [`RunningServer::shutdown`].
pub fn serve<B, F>(config: ServerConfig, load: F) -> Result<(), ServerError>
where
    B: Backend,
    F: FnOnce() -> Result<ClipModel<B>, ClipError> + Send + 'static,
{
    let server = spawn(config, load)?;
    eprintln!("listening on http://{}", server.local_addr());
    server.wait_for_signal()
}
