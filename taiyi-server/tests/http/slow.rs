//! Slow and hostile clients on raw sockets (issue 25): header and body deadlines, the model slot
//! taken only once a body is complete, the bound on connections, 413/429 instead of resets,
//! shutdown with half-sent requests, per-request work bounds, `dimensions`, the bearer scheme.
//! Every socket read has a timeout, so a regression fails instead of hanging.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use taiyi_server::{RunningServer, ServerError};

use crate::common::*;

/// A raw connection to `server` whose reads give up after `secs`.
fn connect(server: &RunningServer, secs: u64) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("read timeout");
    s
}

/// Everything the server sends until it closes the connection (or the read timeout, which
/// fails the test).
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // The server may reset after its answer; what arrived before counts.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&out).into_owned();
            }
            Err(e) => panic!("no close within the read timeout ({e}); got {out:?}"),
        }
    }
}

/// The head of a POST /embed of `len` body bytes.
fn post_head(len: usize) -> String {
    format!(
        "POST /embed HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

fn embed_body() -> String {
    json!({"texts": ["猫"]}).to_string()
}

/// Two clients that send headers and 11 of 100 body bytes, then stall, hold no model slot
/// (limit 1): a normal request is answered 200 meanwhile. Each stalled client gets 408 at
/// the body deadline, and the connection is closed.
#[test]
fn a_stalled_body_holds_no_model_slot_and_gets_408() {
    let mut cfg = config();
    cfg.limits.max_concurrent_requests = 1;
    cfg.timeouts.request = Duration::from_secs(2);
    let server = start(cfg);
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&server, 20);
            s.write_all(post_head(100).as_bytes()).expect("head");
            s.write_all(b"{\"texts\": [").expect("11 bytes");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, body) = post(&server, "/embed", &embed_body(), &[]);
    assert_eq!(status, 200, "{body}");
    let t = Instant::now();
    for s in &mut stalled {
        let reply = read_to_close(s);
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(reply.contains("did not arrive within 2 s"), "{reply}");
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    server.shutdown().expect("clean shutdown");
}

/// Headers that never finish, and an idle keep-alive connection after a complete exchange,
/// are both closed at the request deadline.
#[test]
fn half_sent_headers_and_idle_keep_alive_are_closed_at_the_deadline() {
    let mut cfg = config();
    cfg.timeouts.request = Duration::from_secs(1);
    let server = start(cfg);
    let mut slow = connect(&server, 20);
    slow.write_all(b"POST /embed HTTP/1.1\r\nHost: te")
        .expect("partial head");
    let mut idle = connect(&server, 20);
    let body = embed_body();
    idle.write_all(format!("{}{body}", post_head(body.len())).as_bytes())
        .expect("request");
    let t = Instant::now();
    assert_eq!(read_to_close(&mut slow), "");
    let reply = read_to_close(&mut idle);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    server.shutdown().expect("clean shutdown");
}

/// `GET path` on a new connection (the test client's pool may hold one open, which would
/// count against the bound), the whole answer.
fn fresh_get(server: &RunningServer, path: &str) -> String {
    let mut s = connect(server, 20);
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("request");
    read_to_close(&mut s)
}

/// A counter or gauge of `/metrics`, read without a connection.
fn metric(server: &RunningServer, name: &str) -> i64 {
    let text = server.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Wait (at most 10 s) until `name` reads `want`.
fn wait_metric(server: &RunningServer, name: &str, want: i64) {
    let t = Instant::now();
    while metric(server, name) != want {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name} never reached {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Over `max_connections`, a new connection is answered 503 with Retry-After; once the idle
/// ones go, requests are served again. `/metrics` counts the refusal.
#[test]
fn connections_over_the_bound_get_503() {
    let mut cfg = config();
    cfg.limits.max_connections = 2;
    cfg.timeouts.request = Duration::from_secs(30);
    let server = taiyi_server::spawn(cfg, tiny_model).expect("server starts");
    // Raw connections only: a pooled client connection would count against the bound.
    let t = Instant::now();
    while !fresh_get(&server, "/health").starts_with("HTTP/1.1 200") {
        assert!(t.elapsed() < Duration::from_secs(10), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_metric(&server, "taiyi_open_connections", 0);
    let idle: Vec<TcpStream> = (0..2).map(|_| connect(&server, 20)).collect();
    wait_metric(&server, "taiyi_open_connections", 2);
    let reply = fresh_get(&server, "/health");
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("retry-after: 1"), "{reply}");
    assert!(reply.contains("too many open connections"), "{reply}");
    assert_eq!(metric(&server, "taiyi_connections_refused_total"), 1);
    drop(idle);
    wait_metric(&server, "taiyi_open_connections", 0);
    assert!(fresh_get(&server, "/health").starts_with("HTTP/1.1 200"));
    server.shutdown().expect("clean shutdown");
}

/// Bodies over the limit get 413 and busy-server bodies 429, not a connection reset, for
/// every one of 12 concurrent clients.
#[test]
fn over_limit_clients_read_413_and_429_not_a_reset() {
    let mut cfg = config();
    cfg.limits.payload_limit = 64 * 1024;
    cfg.limits.max_concurrent_requests = 1;
    cfg.batch.max_wait = Duration::from_millis(1500);
    let server = start(cfg);
    let addr = server.local_addr();
    let big = json!({"texts": ["x".repeat(1024 * 1024)]}).to_string();
    let ok = json!({"texts": ["x".repeat(32 * 1024)]}).to_string();
    std::thread::scope(|s| {
        // Holds the one model slot for ~1.5 s (the batch wait).
        let first = s.spawn(|| post(&server, "/embed", &embed_body(), &[]));
        std::thread::sleep(Duration::from_millis(300));
        let clients: Vec<_> = (0..12)
            .map(|i| {
                let body = if i % 2 == 0 { big.clone() } else { ok.clone() };
                s.spawn(move || {
                    ureq::post(&format!("http://{addr}/embed"))
                        .set("Content-Type", "application/json")
                        .send_string(&body)
                        .map(|r| r.status())
                        .or_else(|e| match e {
                            ureq::Error::Status(code, _) => Ok(code),
                            other => Err(other.to_string()),
                        })
                })
            })
            .collect();
        for (i, c) in clients.into_iter().enumerate() {
            let want = if i % 2 == 0 { 413 } else { 429 };
            assert_eq!(c.join().expect("client"), Ok(want), "client {i}");
        }
        assert_eq!(first.join().expect("first").0, 200);
    });
    server.shutdown().expect("clean shutdown");
}

/// Shutdown with an idle connection, half-sent headers and a half-sent body (request
/// deadline 60 s): the half-sent body is answered 503, every socket is closed, and the
/// server has stopped well within its 3 s grace, not at the deadline.
#[test]
fn shutdown_closes_half_sent_requests_at_once() {
    let mut cfg = config();
    cfg.timeouts.request = Duration::from_secs(60);
    cfg.timeouts.shutdown_grace = Duration::from_secs(3);
    let server = start(cfg);
    let mut idle = connect(&server, 20);
    let mut head = connect(&server, 20);
    head.write_all(b"POST /embed HTTP/1.1\r\nHost: te")
        .expect("partial head");
    let mut body = connect(&server, 20);
    body.write_all(post_head(100).as_bytes()).expect("head");
    body.write_all(b"{\"texts\": [").expect("partial body");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    server.shutdown().expect("clean shutdown");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let reply = read_to_close(&mut body);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("shutting down"), "{reply}");
    assert_eq!(read_to_close(&mut head), "");
    assert_eq!(read_to_close(&mut idle), "");
}

/// Work is bounded in the model's units: labels × templates and tokens, each 413 with the
/// numbers, before any inference; at the bounds the requests are served.
#[test]
fn work_bounds_count_prompts_and_tokens() {
    let mut cfg = config();
    cfg.limits.max_prompts = 24;
    cfg.limits.max_request_tokens = 64;
    let server = start(cfg);
    let png = png_b64(1);
    let labels: Vec<String> = (0..3).map(|i| format!("猫{i}")).collect();
    // 3 labels × 12 zh templates = 36 prompts.
    let (status, _, body) = post(
        &server,
        "/classify",
        &json!({"images": [png], "labels": labels, "templates": "zh"}).to_string(),
        &[],
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("36 prompts (labels × templates), more than the server's limit of 24"),
        "{body}"
    );
    let two = &labels[..2];
    let (status, _, body) = post(
        &server,
        "/classify",
        &json!({"images": [png], "labels": two, "templates": "zh"}).to_string(),
        &[],
    );
    // 24 prompts, but their tokens (≥ 5 each with [CLS]/[SEP]) pass 64.
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("tokens, more than the server's limit of 64"),
        "{body}"
    );
    let (status, _, body) = post(
        &server,
        "/classify",
        &json!({"images": [png], "labels": two}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    // Texts: 70 characters is 72 tokens.
    let (status, _, body) = post(
        &server,
        "/embed",
        &json!({"texts": ["猫".repeat(70)]}).to_string(),
        &[],
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("72 tokens"), "{body}");
    let (status, _, body) = post(
        &server,
        "/logits",
        &json!({"images": [png], "texts": (0..4).map(|i| format!("{i}{}", "猫".repeat(20))).collect::<Vec<_>>()}).to_string(),
        &[],
    );
    assert_eq!(status, 413, "{body}");
    // The same text 4 times goes to the tower once (the label cache's look-up): 22 tokens.
    let (status, _, body) = post(
        &server,
        "/logits",
        &json!({"images": [png], "texts": vec!["猫".repeat(20); 4]}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(post(&server, "/embed", &embed_body(), &[]).0, 200);
    server.shutdown().expect("clean shutdown");
}

/// OpenAI's `dimensions`: the model's own width is accepted, anything else is 400.
#[test]
fn dimensions_other_than_the_model_width_are_400() {
    let server = start(config());
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": "猫"}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let dim = json(&body)["data"][0]["embedding"]
        .as_array()
        .expect("embedding")
        .len();
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": "猫", "dimensions": 8}).to_string(),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(&format!("have {dim} dimensions")), "{body}");
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": "猫", "dimensions": dim}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    server.shutdown().expect("clean shutdown");
}

/// The `Bearer` scheme is case-insensitive (RFC 7235); an empty key is refused at start.
#[test]
fn bearer_scheme_in_any_case_and_no_empty_key() {
    let server = start(taiyi_server::ServerConfig {
        api_key: Some("s3cret".into()),
        ..config()
    });
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} s3cret");
        let (status, _, body) = post(
            &server,
            "/embed",
            &embed_body(),
            &[("Authorization", auth.as_str())],
        );
        assert_eq!(status, 200, "{scheme}: {body}");
    }
    let (status, _, _) = post(
        &server,
        "/embed",
        &embed_body(),
        &[("Authorization", "Basic s3cret")],
    );
    assert_eq!(status, 401);
    server.shutdown().expect("clean shutdown");
    let refused = taiyi_server::spawn(
        taiyi_server::ServerConfig {
            api_key: Some(String::new()),
            ..config()
        },
        tiny_model,
    );
    assert!(
        matches!(refused, Err(ServerError::Config(_))),
        "{refused:?}"
    );
}
