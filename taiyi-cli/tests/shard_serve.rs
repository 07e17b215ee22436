//! `taiyi embed-image --shard` (N shards together are one unsharded run, in clip-retrieval's
//! layout) and `taiyi serve` through the binary (listens, answers, drains on SIGTERM).

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{VISION_ST, cmd, http, npy_f32, serve_tiny};

const VISION: &str = VISION_ST;

fn embed(out_dir: &Path, shard: Option<&str>) {
    let mut c = cmd(&[]);
    c.args([
        "embed-image",
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--images-dir",
        "fixtures/jpeg",
        "--dtype",
        "float32",
        "--out-dir",
    ])
    .arg(out_dir);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shards_together_equal_one_unsharded_run() {
    let scratch = common::scratch("shard-cli");
    let d = scratch.to_path_buf();
    embed(&d.join("all"), None);
    let (shape, all) = npy_f32(&d.join("all/img_emb/img_emb_0.npy"));
    assert!(shape[0] >= 3, "{shape:?}");
    let mut joined = Vec::new();
    let mut rows = 0;
    for i in 0..3 {
        embed(&d.join("sharded"), Some(&format!("{i}/3")));
        let (s, v) = npy_f32(&d.join(format!("sharded/img_emb/img_emb_{i}.npy")));
        assert!(
            d.join(format!("sharded/metadata/metadata_{i}.parquet"))
                .is_file()
        );
        rows += s[0];
        joined.extend(v);
    }
    assert_eq!(rows, shape[0], "every image in exactly one shard");
    assert_eq!(joined, all, "bitwise equal to the unsharded run");
    // The metadata lists the paths in row order (a parquet string column holds them raw).
    let meta = std::fs::read(d.join("all/metadata/metadata_0.parquet")).unwrap();
    assert!(meta.starts_with(b"PAR1") && meta.ends_with(b"PAR1"));
    let text = String::from_utf8_lossy(&meta);
    let first = text.find("fixtures/jpeg/").expect("a path");
    assert!(text[first..].contains(".jpg"));
}

#[test]
fn serve_answers_and_drains_on_sigterm() {
    serve_case("f32");
}

#[test]
fn serve_in_bf16_names_its_kernel() {
    serve_case("bf16");
}

/// `taiyi --precision PRECISION serve` on the tiny towers: healthy, `/info` names the precision
/// (and the bf16 kernel), embeddings answered, SIGTERM drains and exits 0.
fn serve_case(precision: &str) {
    let (mut child, port) = serve_tiny(&["--precision", precision], &[]);
    let r = http(
        port,
        "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let info: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(info["precision"], precision);
    match precision {
        "bf16" => assert!(
            matches!(info["cpu_kernel"].as_str(), Some("avx512bf16" | "f32")),
            "{info}"
        ),
        _ => assert_eq!(info["cpu_kernel"], serde_json::Value::Null),
    }
    let body = r#"{"input": ["一只猫", "一只狗"]}"#;
    let r = http(
        port,
        &format!(
            "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let json: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}
