//! Accepting and serving connections: hyper's HTTP/1 server with a header-read deadline (which
//! is also the idle keep-alive timeout: hyper starts it whenever a connection waits for the
//! next request's head), a bound on open connections, and a shutdown that closes idle and
//! half-sent connections at once and gives complete requests a grace period.
//!
//! A client that stops reading its answer is cut off too: a write that makes no progress for
//! the request deadline fails ([`WriteDeadline`]).
//!
//! `axum::serve` has none of these, so the router is served here through hyper directly.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How connections are bounded (from [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Header-read deadline and idle keep-alive timeout.
    pub request_timeout: Duration,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long complete requests get to be answered once shutdown starts.
    pub shutdown_grace: Duration,
}

/// How long an idle connection's last response, or a refused connection's 503, gets to be
/// written out before the socket is closed.
const LINGER: Duration = Duration::from_secs(1);

/// A stream whose writes fail once they have made no progress for `limit`: a client that
/// stops reading cannot hold a connection (and its answer's memory) for ever.
struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Running while a write is pending; reset by every write that makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After an inner poll: progress clears the timer; `Pending` starts it (or fails once it
    /// has run out).
    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}

/// Marks a connection busy (a request's head has been read and its answer is not yet made)
/// for as long as it lives.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn new(flag: &Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Keeps the open-connection gauge right however a connection task ends.
struct Open(Arc<Metrics>);

impl Open {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.connections_add(1);
        Self(metrics.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections_add(-1);
    }
}

/// Serve `router` on `listener` until `stop` turns true, then shut down: no new connections;
/// idle connections and those still sending a request's head are closed (after at most
/// [`LINGER`]); connections with a request being answered finish it; after `shutdown_grace`
/// whatever is left is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopping(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of descriptors or a connection reset before it was accepted: the listener
            // itself is fine; back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        if metrics.open_connections() >= limits.max_connections {
            metrics.connection_refused();
            tasks.spawn(refuse(stream));
            continue;
        }
        let open = Open::new(&metrics);
        tasks.spawn(connection(
            stream,
            router.clone(),
            limits.request_timeout,
            stop.clone(),
            open,
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connection, until the client or the server closes it.
async fn connection(
    stream: TcpStream,
    router: Router,
    request_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _open: Open,
) {
    let _ = stream.set_nodelay(true);
    let busy = Arc::new(AtomicBool::new(false));
    let flag = busy.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        let busy = Busy::new(&flag);
        async move {
            let response = router.oneshot(req).await;
            drop(busy);
            Ok::<_, Infallible>(match response {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(WriteDeadline::new(stream, request_timeout)),
            service,
        );
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopping(&mut stop) => {}
    }
    // Shutting down: no keep-alive; a request being answered (or its body being read, which
    // the body reader ends at once with 503) is finished, bounded by the server's grace.
    conn.as_mut().graceful_shutdown();
    if busy.load(Ordering::Acquire) {
        let _ = conn.await;
    } else {
        // Idle, or a request's head half sent: a last response gets LINGER to be written.
        let _ = tokio::time::timeout(LINGER, conn).await;
    }
}

/// The answer to a connection over `max_connections`: 503 with `Retry-After`, then close,
/// reading what the client sent meanwhile (at most [`LINGER`]) so that it sees the answer
/// rather than a reset.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({"error": {
        "message": "too many open connections; retry later",
        "type": "unavailable",
        "index": null,
        "code": 503,
    }})
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
#[allow(clippy::panic)] // tests fail loudly
mod tests {
    use super::*;

    /// A peer that never reads: the write fails after the deadline instead of waiting for
    /// ever; a peer that reads keeps the writes going.
    #[test]
    fn a_stalled_write_fails_at_the_deadline() -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        rt.block_on(async {
            let (near, far) = tokio::io::duplex(1024);
            let mut w = WriteDeadline::new(near, Duration::from_millis(200));
            let data = vec![7u8; 64 * 1024];
            let t = std::time::Instant::now();
            let stalled = tokio::time::timeout(Duration::from_secs(10), w.write_all(&data)).await;
            let err = match stalled {
                Ok(Err(e)) => e,
                other => panic!("expected a timed-out write, got {other:?}"),
            };
            assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
            assert!(t.elapsed() >= Duration::from_millis(200));
            drop(far);
            // Reading on the far side lets a write of the same size through.
            let (near, mut far2) = tokio::io::duplex(1024);
            let mut w = WriteDeadline::new(near, Duration::from_millis(200));
            let reader = tokio::spawn(async move {
                let mut sink = Vec::new();
                far2.read_to_end(&mut sink).await.map(|_| sink.len())
            });
            w.write_all(&data).await?;
            w.shutdown().await?;
            drop(w);
            let read = reader.await.map_err(std::io::Error::other)??;
            assert_eq!(read, data.len());
            Ok(())
        })
    }
}
