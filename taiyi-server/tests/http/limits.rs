//! Status codes, bad input, limits, health transitions, graceful shutdown.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use taiyi_server::ServerError;

use crate::common::*;

fn error_of(body: &str) -> (String, Option<u64>) {
    let v = json(body);
    let e = &v["error"];
    (
        e["message"].as_str().unwrap_or_default().to_string(),
        e["index"].as_u64(),
    )
}

/// One server, every kind of bad input: each gets its 4xx with a JSON error naming the item
/// and the cause, and the server keeps answering good requests in between.
#[test]
fn bad_input_is_a_4xx_and_the_server_keeps_serving() {
    let mut cfg = config();
    cfg.limits.max_batch_items = 8;
    cfg.limits.payload_limit = 256 * 1024;
    let server = start(cfg);
    let good = || {
        let (status, _, body) = post(
            &server,
            "/embed",
            &json!({"texts": ["猫"]}).to_string(),
            &[],
        );
        assert_eq!(status, 200, "{body}");
    };
    let png = image_b64("fixtures/vision/gradient_300x200.png");
    // A PNG header claiming 100000 x 100000 pixels: refused before decoding.
    let mut bomb =
        std::fs::read(root().join("fixtures/vision/waves_grey_100x150.png")).expect("png");
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let bomb = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bomb);
    let long = "猫".repeat(600);
    let cases: Vec<(&str, String, u16, &str, Option<u64>)> = vec![
        ("/embed", "{\"texts\": [".into(), 400, "", None),
        (
            "/embed",
            json!({"texts": 5}).to_string(),
            422,
            "texts: expected",
            None,
        ),
        (
            "/embed",
            json!({"texts": ["a", 7]}).to_string(),
            422,
            "texts[1]: expected a string",
            Some(1),
        ),
        (
            "/embed",
            json!({"texts": []}).to_string(),
            422,
            "texts: is empty",
            None,
        ),
        (
            "/embed",
            json!({"texts": ["a"], "images": [png]}).to_string(),
            422,
            "exactly one",
            None,
        ),
        (
            "/embed",
            json!({"texts": ["a"], "mode": "nope"}).to_string(),
            422,
            "unknown text mode",
            None,
        ),
        (
            "/embed",
            json!({"normalize": "yes", "texts": ["a"]}).to_string(),
            422,
            "invalid request body",
            None,
        ),
        (
            "/embed",
            json!({"images": [png, "!!not base64!!"]}).to_string(),
            422,
            "images[1]: invalid base64",
            Some(1),
        ),
        (
            "/embed",
            json!({"images": ["aGVsbG8gd29ybGQ="]}).to_string(),
            422,
            "images[0]: is not a usable image",
            Some(0),
        ),
        (
            "/embed",
            json!({"images": [png, bomb]}).to_string(),
            422,
            "decompression bomb",
            Some(1),
        ),
        (
            "/embed",
            json!({"texts": vec!["猫"; 9]}).to_string(),
            413,
            "texts has 9 items, more than the server's limit of 8",
            None,
        ),
        (
            "/embed",
            json!({"texts": ["x".repeat(300 * 1024)]}).to_string(),
            413,
            "",
            None,
        ),
        (
            "/v1/embeddings",
            json!({"input": []}).to_string(),
            422,
            "input: is empty",
            None,
        ),
        (
            "/v1/embeddings",
            json!({"input": ["猫", format!("data:image/png;base64,{png}")]}).to_string(),
            422,
            "cannot be mixed",
            Some(1),
        ),
        (
            "/v1/embeddings",
            json!({"input": [format!("data:image/png;base64,{png}"), "猫"], "modality": "image"})
                .to_string(),
            422,
            "cannot be mixed",
            Some(1),
        ),
        (
            "/v1/embeddings",
            json!({"input": ["https://example.com/cat.jpg"], "modality": "image"}).to_string(),
            422,
            "not fetched",
            Some(0),
        ),
        (
            "/v1/embeddings",
            json!({"input": "猫", "encoding_format": "int8"}).to_string(),
            422,
            "encoding_format",
            None,
        ),
        (
            "/v1/embeddings",
            json!({"input": "猫", "modality": "audio"}).to_string(),
            422,
            "modality",
            None,
        ),
        (
            "/classify",
            json!({"images": [png], "labels": ["猫"], "templates": ["没有占位符"]}).to_string(),
            422,
            "templates[0]: has no {}",
            Some(0),
        ),
        (
            "/classify",
            json!({"images": [png]}).to_string(),
            422,
            "labels",
            None,
        ),
        (
            "/logits",
            json!({"images": [png], "texts": "猫"}).to_string(),
            422,
            "texts: expected an array",
            None,
        ),
    ];
    for (route, body, want, needle, index) in &cases {
        let (status, _, reply) = post(&server, route, body, &[]);
        assert_eq!(
            status,
            *want,
            "{route} {}: {reply}",
            &body[..body.len().min(80)]
        );
        let (message, got_index) = error_of(&reply);
        assert!(
            message.contains(needle),
            "{route}: '{message}' lacks '{needle}'"
        );
        assert_eq!(got_index, *index, "{route}: {message}");
        good();
    }
    // 415: not JSON.
    let r = ureq::post(&url(&server, "/embed"))
        .set("Content-Type", "text/plain")
        .send_string("{\"texts\": [\"猫\"]}");
    let status = match r {
        Err(ureq::Error::Status(s, _)) => s,
        other => panic!("expected 415, got {other:?}"),
    };
    assert_eq!(status, 415);
    // 404, 405 with JSON bodies.
    let (status, _, body) = get(&server, "/nope");
    assert_eq!(status, 404);
    assert!(error_of(&body).0.contains("/nope"));
    let (status, _, body) = get(&server, "/embed");
    assert_eq!(status, 405);
    assert!(error_of(&body).0.contains("GET"));
    // Over-long texts are truncated (tiny model: 96 positions), not refused.
    let (status, _, body) = post(
        &server,
        "/embed",
        &json!({"texts": [long, "猫"]}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["tokens"], json!([96, 3]));
    // Every answer was counted.
    let (_, _, metrics) = get(&server, "/metrics");
    assert!(
        metrics.contains("taiyi_requests_total{route=\"/embed\",status=\"422\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("taiyi_requests_total{route=\"other\",status=\"404\"} 1"),
        "{metrics}"
    );
    server.shutdown().expect("clean shutdown");
}

#[test]
fn api_key_is_required_except_on_health() {
    let mut cfg = config();
    cfg.api_key = Some("s3cret".into());
    let server = start(cfg);
    let body = json!({"texts": ["猫"]}).to_string();
    assert_eq!(post(&server, "/embed", &body, &[]).0, 401);
    assert_eq!(
        post(
            &server,
            "/embed",
            &body,
            &[("Authorization", "Bearer wrong")]
        )
        .0,
        401
    );
    assert_eq!(
        post(
            &server,
            "/embed",
            &body,
            &[("Authorization", "Bearer s3cret")]
        )
        .0,
        200
    );
    assert_eq!(get(&server, "/info").0, 401);
    assert_eq!(get(&server, "/health").0, 200);
    server.shutdown().expect("clean shutdown");
}

/// With one request allowed at a time and a long batching wait, a second concurrent request is
/// answered 429 with Retry-After; the first still succeeds.
#[test]
fn over_the_concurrency_limit_is_429() {
    let mut cfg = config();
    cfg.limits.max_concurrent_requests = 1;
    cfg.batch.max_wait = Duration::from_millis(400);
    let server = start(cfg);
    let body = json!({"texts": ["猫"]}).to_string();
    std::thread::scope(|s| {
        let first = s.spawn(|| post(&server, "/embed", &body, &[]));
        std::thread::sleep(Duration::from_millis(150));
        let (status, retry, reply) = post(&server, "/embed", &body, &[]);
        assert_eq!(status, 429, "{reply}");
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(error_of(&reply).0.contains("limit 1"));
        // Non-model routes are not limited.
        assert_eq!(get(&server, "/health").0, 200);
        assert_eq!(first.join().expect("first").0, 200);
    });
    server.shutdown().expect("clean shutdown");
}

/// 503 while the weights load (on every model route), 200 once loaded and warmed up.
#[test]
fn health_is_503_until_the_model_is_ready() {
    let (release, wait) = mpsc::channel::<()>();
    let server = taiyi_server::spawn(config(), move || {
        let _ = wait.recv();
        tiny_model()
    })
    .expect("spawn");
    let (status, retry, body) = get(&server, "/health");
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (503, json!("loading"))
    );
    assert_eq!(retry, None);
    let (status, retry, body) = post(
        &server,
        "/embed",
        &json!({"texts": ["猫"]}).to_string(),
        &[],
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(error_of(&body).0.contains("loading"));
    assert_eq!(json(&get(&server, "/info").2)["ready"], false);
    release.send(()).expect("release");
    wait_ready(&server);
    assert_eq!(json(&get(&server, "/health").2)["status"], "ok");
    server.shutdown().expect("clean shutdown");
}

/// A model that fails to load stops the server, which reports the loading error.
#[test]
fn a_failed_load_stops_the_server_with_the_error() {
    let server = taiyi_server::spawn(config(), || {
        taiyi_core::ClipModel::<B>::from_paths(
            "/nonexistent/text",
            "/nonexistent/v.safetensors",
            &Default::default(),
        )
    })
    .expect("spawn");
    match server.wait_for_signal() {
        Err(ServerError::Load(_)) => {}
        other => panic!("expected a load error, got {other:?}"),
    }
}

/// Shutdown while 16 requests are queued: every one is answered 200, then the server stops.
#[test]
fn shutdown_drains_requests_in_flight() {
    let mut cfg = config();
    cfg.batch.max_wait = Duration::from_millis(500);
    let server = start(cfg);
    let addr = server.local_addr();
    let clients: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let body = if i % 2 == 0 {
                    json!({"texts": [format!("第{i}只猫")]})
                } else {
                    json!({"images": [png_b64(i as u8)]})
                };
                ureq::post(&format!("http://{addr}/embed"))
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string())
                    .map(|r| r.status())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    server.shutdown().expect("clean shutdown");
    for c in clients {
        assert_eq!(c.join().expect("client"), Ok(200));
    }
    // Nothing listens any more.
    assert!(ureq::get(&format!("http://{addr}/health")).call().is_err());
}
