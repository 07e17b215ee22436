//! `taiyi serve` against bad settings and slow clients (issue 25): an unusable value is an
//! error naming its flag, never silently replaced; SIGTERM ends the server within its grace
//! whatever its clients hold open.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fails, serve_tiny};

#[test]
fn unusable_serve_settings_name_their_flag() {
    for (args, needle) in [
        (
            &["serve", "--api-key", ""][..],
            "the API key must be non-empty",
        ),
        (
            &["serve", "--max-wait-ms", "100000000"],
            "--max-wait-ms must be between 0 ms and 10000 ms, got 100000000 ms",
        ),
        (
            &["serve", "--max-batch-items", "0"],
            "--max-batch-items must be at least 1",
        ),
        (
            &["serve", "--max-concurrent-requests", "0"],
            "--max-concurrent-requests must be at least 1",
        ),
        (
            &["serve", "--request-timeout", "0s"],
            "--request-timeout must be between 1 ms and 3600000 ms",
        ),
        (
            &["serve", "--payload-limit", "0"],
            "--payload-limit must be at least 1",
        ),
    ] {
        let err = fails(args, needle);
        assert!(err.contains("invalid") || err.contains("must"), "{err}");
    }
}

/// The case through the binary: a client holding a half-sent request (headers and 11
/// of 100 body bytes) and an idle one do not keep `taiyi serve` from ending on SIGTERM: it
/// exits 0 within its grace, the half-sent request answered 503.
#[test]
fn sigterm_ends_serve_despite_a_half_sent_request() {
    let (mut child, port) =
        serve_tiny(&[], &["--request-timeout", "60s", "--shutdown-grace", "5s"]);
    let _idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    half.write_all(
        b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"texts\": [",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut reply = String::new();
    let _ = half.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit {status:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "still serving after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
