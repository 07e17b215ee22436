//! The `taiyi` binary on the tiny fixtures: every command as the README shows it, its output
//! checked against the Python reference (fixtures/clip/expected.json), and its errors.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{TEXT, VISION_BIN as VISION, ok, root, taiyi, tiny_clip};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taiyi-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/clip/expected.json")).expect("fixture"),
    )
    .expect("json")
}

#[test]
fn tokenize_prints_json_lines() {
    let out = ok(&[
        "tokenize",
        "--vocab",
        "fixtures/tokenizer/vocab.txt",
        "一只猫",
        "a",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["ids"],
        serde_json::json!([101, 671, 1372, 4344, 102])
    );
    assert_eq!(lines[1]["attention_mask"], serde_json::json!([1, 1, 1]));
    let padded = ok(&[
        "tokenize",
        "--vocab",
        "fixtures/tokenizer/vocab.txt",
        "--pad",
        "8",
        "一只猫",
        "a",
    ]);
    let row: serde_json::Value =
        serde_json::from_str(padded.lines().nth(1).expect("row")).expect("json");
    assert_eq!(
        row["ids"],
        serde_json::json!([101, 143, 102, 0, 0, 0, 0, 0])
    );
    assert_eq!(
        row["attention_mask"],
        serde_json::json!([1, 1, 1, 0, 0, 0, 0, 0])
    );
}

#[test]
fn zero_shot_json_matches_the_reference() {
    let exp = expected();
    let images: Vec<String> = exp["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|v| v.as_str().expect("path").to_string())
        .collect();
    let mut args = tiny_clip("zero-shot", VISION, &["--json"]);
    for img in &images {
        args.extend(["--image", img.as_str()]); // --image repeated; positionals are labels
    }
    let labels: Vec<String> = exp["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|v| v.as_str().expect("label").to_string())
        .collect();
    args.extend(labels.iter().map(String::as_str));
    let out: serde_json::Value = serde_json::from_str(&ok(&args)).expect("json");
    let rows = out.as_array().expect("rows");
    assert_eq!(rows.len(), images.len());
    for (row, want) in rows.iter().zip(exp["probs"].as_array().expect("probs")) {
        for (p, q) in row["probs"]
            .as_array()
            .expect("probs")
            .iter()
            .zip(want.as_array().expect("row"))
        {
            let (p, q) = (p.as_f64().expect("p"), q.as_f64().expect("q"));
            assert!((p - q).abs() < 2e-5, "{p} vs {q}");
        }
    }
    // The human table names every label.
    let table = ok(&tiny_clip(
        "zero-shot",
        VISION,
        &["--image", &images[0], "一只猫", "一只狗"],
    ));
    assert!(
        table.contains("一只猫") && table.contains("一只狗"),
        "{table}"
    );
}

#[test]
fn logits_json_matches_the_reference() {
    let exp = expected();
    let img = exp["images"][0].as_str().expect("image");
    let out = ok(&tiny_clip(
        "logits",
        VISION,
        &[
            "--json",
            "--image",
            img,
            "--text",
            "一只猫",
            "--text",
            "一只狗",
            "--text",
            "两只猫",
            "--text",
            "两只老虎",
            "--text",
            "一只老虎",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let got = v["logits_per_image"][0].as_array().expect("row");
    let want = exp["logits_per_image"][0].as_array().expect("row");
    for (a, b) in got.iter().zip(want) {
        assert!((a.as_f64().expect("a") - b.as_f64().expect("b")).abs() < 1e-4);
    }
}

fn read_npy_shape(path: &Path) -> Vec<usize> {
    let bytes = std::fs::read(path).expect("npy");
    let header = String::from_utf8_lossy(&bytes[10..128]).to_string();
    let shape = header
        .split('(')
        .nth(1)
        .expect("shape")
        .split(')')
        .next()
        .expect("shape");
    shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("dim"))
        .collect()
}

/// `embed-image` of the tiny fixture images into the index `idx`; its path as a string.
fn embed_fixture_images(idx: &Path) -> String {
    let idx_s = idx.to_string_lossy().to_string();
    ok(&[
        "embed-image",
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--images-dir",
        "fixtures/vision",
        "--out",
        &idx_s,
    ]);
    idx_s
}

#[test]
fn embed_and_search_round_trip() {
    let idx = tmp("index.npy");
    let idx_s = embed_fixture_images(&idx);
    assert_eq!(read_npy_shape(&idx), vec![2, 16]);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{idx_s}.names.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["names"].as_array().expect("names").len(), 2);
    let txt = tmp("texts.npy");
    let txt_s = txt.to_string_lossy().to_string();
    ok(&[
        "embed-text",
        "--text-model",
        TEXT,
        "--mode",
        "masked",
        "--out",
        &txt_s,
        "一只猫",
        "熊猫",
    ]);
    assert_eq!(read_npy_shape(&txt), vec![2, 16]);
    let hits = ok(&[
        "search",
        "--text-model",
        TEXT,
        "--index",
        &idx_s,
        "--query",
        "一只猫",
        "--top-k",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&hits).expect("json");
    assert_eq!(v.as_array().expect("hits").len(), 1);
    let pre = tmp("pixels.npy");
    let pre_s = pre.to_string_lossy().to_string();
    ok(&[
        "preprocess",
        "fixtures/vision/gradient_300x200.png",
        "--out",
        &pre_s,
    ]);
    assert_eq!(read_npy_shape(&pre), vec![1, 3, 224, 224]);
}

/// `search --image`: the indexed image finds itself first (cosine 1); `--query-vectors`: one
/// JSON line per query, each row of the index finding itself; bad query vectors and a missing
/// or doubled query kind are errors.
#[test]
fn search_by_image_and_by_query_vectors() {
    let idx = tmp("search-index.npy");
    let idx_s = embed_fixture_images(&idx);
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(format!("{idx_s}.names.json")).expect("manifest"),
    )
    .expect("json")["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    // Names are the paths as embed-image read them.
    let image = names[1].clone();
    let hits = ok(&[
        "search",
        "--vision-model",
        VISION,
        "--vision-arch",
        "tiny",
        "--index",
        &idx_s,
        "--image",
        &image,
        "--top-k",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&hits).expect("json");
    assert_eq!(v[0]["name"], names[1].as_str(), "{hits}");
    assert_eq!(v[0]["row"], 1);
    assert!(
        (v[0]["score"].as_f64().expect("score") - 1.0).abs() < 1e-5,
        "{hits}"
    );
    assert!(v[1]["score"].as_f64() < v[0]["score"].as_f64());
    // The index's own rows, scaled (queries are normalised here), as query vectors.
    let (shape, rows) = taiyi_core::npy::read_f32(&idx).expect("index");
    let scaled: Vec<f32> = rows.iter().map(|x| x * 3.0).collect();
    let q = tmp("queries.npy");
    let q_s = q.to_string_lossy().to_string();
    taiyi_core::npy::write_f32(&q, &shape, &scaled).expect("queries");
    let out = ok(&[
        "search",
        "--index",
        &idx_s,
        "--query-vectors",
        &q_s,
        "--top-k",
        "1",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), shape[0]);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["query"], i);
        assert_eq!(line["hits"][0]["row"], i, "{out}");
        assert_eq!(line["hits"][0]["name"], names[i].as_str());
        assert!((line["hits"][0]["score"].as_f64().expect("score") - 1.0).abs() < 1e-5);
    }
    // A zero row, a wrong width, no query and two queries: errors, no output.
    let mut zero = scaled.clone();
    zero[shape[1]..].fill(0.0);
    taiyi_core::npy::write_f32(&q, &shape, &zero).expect("queries");
    let r = taiyi(&["search", "--index", &idx_s, "--query-vectors", &q_s]);
    assert!(!r.status.success() && r.stdout.is_empty());
    assert!(String::from_utf8_lossy(&r.stderr).contains("row 1 has norm 0"));
    taiyi_core::npy::write_f32(&q, &[1, 3], &[1.0, 0.0, 0.0]).expect("queries");
    let r = taiyi(&["search", "--index", &idx_s, "--query-vectors", &q_s]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("3-d"), "{r:?}");
    assert!(!taiyi(&["search", "--index", &idx_s]).status.success());
    let r = taiyi(&[
        "search",
        "--index",
        &idx_s,
        "--query",
        "猫",
        "--query-vectors",
        &q_s,
    ]);
    assert!(!r.status.success());
}

#[test]
fn errors_exit_nonzero_and_write_nothing() {
    let out_path = tmp("never.npy");
    let out_s = out_path.to_string_lossy().to_string();
    let r = taiyi(&[
        "preprocess",
        "fixtures/vision/gradient_300x200.png",
        "/nonexistent.png",
        "--out",
        &out_s,
    ]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent.png"));
    assert!(!out_path.exists(), "nothing half-written");
    let r = taiyi(&[
        "embed-text",
        "--text-model",
        "/nonexistent",
        "--out",
        &out_s,
        "猫",
    ]);
    assert!(!r.status.success());
    let r = taiyi(&["tokenize", "--vocab", "/nonexistent/vocab.txt", "猫"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent/vocab.txt"));
    let r = taiyi(&[
        "--device",
        "cuda:0",
        "embed-text",
        "--text-model",
        TEXT,
        "--out",
        &out_s,
        "猫",
    ]);
    assert!(!r.status.success(), "no CUDA in this build / machine");
    let r = taiyi(&[
        "--device",
        "tpu",
        "tokenize",
        "--vocab",
        "fixtures/tokenizer/vocab.txt",
        "猫",
    ]);
    assert!(!r.status.success());
}
