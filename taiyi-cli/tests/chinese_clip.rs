//! The Chinese-CLIP family through the CLI: `--model DIR` with the tiny transformers
//! `ChineseCLIPModel` directory of fixtures/chinese_clip/ (scripts/fixtures/chinese_clip.py).
//! Probabilities and logits against transformers 4.57.6 (tolerances as
//! tests/chinese_clip_parity.rs: 1e-4 on logits scaled by exp(2.6592), 2e-5 on probabilities).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::{fails, http, npy_f32, ok, root, s, scratch, serve, stderr, taiyi};

const MODEL: &str = "fixtures/chinese_clip/tiny";

fn cases() -> serde_json::Value {
    taiyi_testkit::json_fixture("chinese_clip", "cases.json")
}

use taiyi_testkit::json_strings as strings;

/// `logits_per_image` of the fixture, `[images][texts]`.
fn expected_logits() -> Vec<Vec<f32>> {
    let e = taiyi_testkit::expected("chinese_clip");
    let l = &e["logits_per_image"];
    l.f32.chunks(l.shape[1]).map(<[f32]>::to_vec).collect()
}

fn softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = row.iter().map(|&x| f64::from(x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn zero_shot_with_a_chinese_clip_directory_matches_transformers() {
    let c = cases();
    let (texts, images) = (strings(&c["texts"]), strings(&c["images"]));
    let mut args = vec!["zero-shot", "--model", MODEL, "--json"];
    for img in &images {
        args.extend(["--image", img.as_str()]);
    }
    args.extend(texts.iter().map(String::as_str));
    let out: serde_json::Value = serde_json::from_str(&ok(&args)).expect("json");
    let rows = out.as_array().expect("rows");
    assert_eq!(rows.len(), images.len());
    for (row, logits) in rows.iter().zip(expected_logits()) {
        let probs = row["probs"].as_array().expect("probs");
        for (p, q) in probs.iter().zip(softmax(&logits)) {
            let p = p.as_f64().expect("p");
            assert!((p - q).abs() < 2e-5, "{p} vs {q}");
        }
    }
    // The human table, the README's form: `--model DIR --image FILE LABEL...`.
    let table = ok(&[
        "zero-shot",
        "--model",
        MODEL,
        "--image",
        &images[0],
        "猫",
        "狗",
    ]);
    assert!(table.contains("猫") && table.contains("狗"), "{table}");
}

#[test]
fn logits_with_a_chinese_clip_directory_match_transformers() {
    let c = cases();
    let (texts, images) = (strings(&c["texts"]), strings(&c["images"]));
    let mut args = vec!["logits", "--model", MODEL, "--json", "--image", &images[1]];
    for t in &texts {
        args.extend(["--text", t.as_str()]);
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&args)).expect("json");
    let got = v["logits_per_image"][0].as_array().expect("row");
    for (a, b) in got.iter().zip(&expected_logits()[1]) {
        let a = a.as_f64().expect("a");
        assert!((a - f64::from(*b)).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn embeddings_tokens_and_pixels_come_from_the_directory() {
    let dir = scratch("chinese_clip_embed");
    let out = dir.join("t.npy");
    ok(&[
        "embed-text",
        "--model",
        MODEL,
        "--out",
        &s(&out),
        "猫",
        "狗",
    ]);
    assert_eq!(npy_f32(&out).0, vec![2, 12]);
    // The directory's vocab.txt, as transformers' slow BertTokenizer.
    let e = taiyi_testkit::expected("chinese_clip");
    let text = strings(&cases()["texts"])[1].clone();
    let line = ok(&["tokenize", "--model", MODEL, &text]);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    let ids: Vec<i64> = v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|i| i.as_i64().expect("id"))
        .collect();
    let width = e["ids"].shape[1];
    let want: Vec<i64> = e["ids"].i64[width..2 * width]
        .iter()
        .copied()
        .take(ids.len())
        .collect();
    assert_eq!(ids, want);
    // preprocess: the directory's preprocessor_config.json (224 px, squash resize).
    let px = dir.join("p.npy");
    ok(&[
        "preprocess",
        "--model",
        MODEL,
        "--out",
        &s(&px),
        "fixtures/image/inputs/rgb_333x250.png",
    ]);
    assert_eq!(npy_f32(&px).0, vec![1, 3, 224, 224]);
}

#[test]
fn one_model_choice_and_clear_refusals() {
    // --model is the whole model.
    fails(
        &[
            "zero-shot",
            "--model",
            MODEL,
            "--text-model",
            "fixtures/text/tiny",
            "--image",
            "fixtures/vision/gradient_300x200.png",
            "猫",
        ],
        "without --text-model",
    );
    // A Taiyi text directory is not a one-directory model: the error says what to give.
    let err = fails(
        &[
            "embed-text",
            "--model",
            "fixtures/text/tiny",
            "--out",
            "/tmp/never-written.npy",
            "猫",
        ],
        "--text-model",
    );
    assert!(err.contains("\"bert\""), "{err}");
    // A file, and a path that is neither a folder nor a hub id.
    fails(
        &[
            "embed-text",
            "--model",
            "fixtures/chinese_clip/cases.json",
            "--out",
            "/tmp/x.npy",
            "猫",
        ],
        "is a file",
    );
    fails(
        &[
            "embed-text",
            "--model",
            "no/such/dir/here",
            "--out",
            "/tmp/x.npy",
            "猫",
        ],
        "no such directory",
    );
    // A hub id that is not cached, offline: the repository is named, nothing downloaded.
    let out = taiyi(&[
        "embed-text",
        "--model",
        "OFA-Sys/chinese-clip-vit-base-patch16",
        "--out",
        "/tmp/x.npy",
        "猫",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("OFA-Sys/chinese-clip-vit-base-patch16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_with_a_chinese_clip_directory() {
    let (mut child, port) = serve(&["--model", MODEL], &[], &[]);
    let info = http(
        port,
        "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let c = cases();
    let (texts, images) = (strings(&c["texts"]), strings(&c["images"]));
    let bytes = std::fs::read(root().join(&images[1])).expect("image");
    let body = serde_json::json!({
        "images": [base64::engine::general_purpose::STANDARD.encode(bytes)],
        "texts": texts,
    })
    .to_string();
    let answer = http(
        port,
        &format!(
            "POST /logits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(info.contains("\"family\":\"chinese-clip\""), "{info}");
    let json_body = answer.split("\r\n\r\n").nth(1).expect("body");
    let v: serde_json::Value = serde_json::from_str(json_body).expect("json");
    let got = v["logits_per_image"][0].as_array().expect("row");
    for (a, b) in got.iter().zip(&expected_logits()[1]) {
        let a = a.as_f64().expect("a");
        assert!((a - f64::from(*b)).abs() < 1e-4, "{a} vs {b}");
    }
}
