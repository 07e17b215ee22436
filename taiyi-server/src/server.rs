//! Starting, running and stopping the server: the router, its middleware (metrics, API key,
//! concurrency limit; the body intake is [`crate::intake`]) and graceful shutdown. Connections
//! are served by [`crate::conn`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::tensor::backend::Backend;
use taiyi_core::{ClipError, ClipModel, TextCache};
use tokio::sync::watch;

use crate::conn::{self, ConnLimits};
use crate::error::{ApiError, ServerError};
use crate::intake;
use crate::metrics::Metrics;
use crate::routes::{self, AppState};
use crate::{ServerConfig, engine};

/// The routes, as `/metrics` labels them (anything else is `other`).
const ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/embed",
    "/classify",
    "/logits",
    "/search",
    "/health",
    "/info",
    "/metrics",
];

/// Routes that run the model, under the concurrency limit.
const MODEL_ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/embed",
    "/classify",
    "/logits",
    "/search",
];

/// What the middleware shares.
pub(crate) struct Shared {
    pub(crate) app: Arc<AppState>,
    in_flight: AtomicUsize,
    /// Body bytes held by requests still being received, all together.
    pub(crate) buffered: AtomicUsize,
    /// Turns true when the server starts shutting down.
    pub(crate) stop: watch::Receiver<bool>,
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
        .route("/search", post(routes::search))
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
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            intake::read_body,
        ))
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
    let cache = Arc::new(TextCache::new(config.label_cache));
    let metrics = Arc::new(Metrics::with_cache(cache.clone()));
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
        cache,
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
