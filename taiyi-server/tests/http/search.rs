//! `POST /search` with `--index`: a fixture image's feature among 5000 other rows (past
//! the exact-scan size, so the ANN graph answers), queried by image and by text; the answer is
//! the library's `SearchIndex` answer for the library's own query feature, bit for bit; the
//! refusals; `/info`.

use std::sync::Arc;

use serde_json::json;
use taiyi_core::ann::{AnnIndex, AnnParams, SearchIndex};
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::{EncodeOptions, ImageSource};
use taiyi_server::SharedIndex;

use crate::common::*;

/// 5000 random unit rows of width `d`, then the fixture image's feature.
fn collection(dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    let model = tiny_model().unwrap();
    let files = ["examples/data/chelsea_cat.png"];
    let sources: Vec<ImageSource> = files
        .iter()
        .map(|f| ImageSource::from(root().join(f)))
        .collect();
    let features = model.encode_images(&sources).unwrap();
    let feats = host_rows(features);
    let d = feats[0].len();
    let mut x = 0x2545_F491u32;
    let mut values = Vec::new();
    let mut names = Vec::new();
    for i in 0..5000 {
        let row: Vec<f32> = (0..d)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.extend(row.iter().map(|v| v / n));
        names.push(format!("noise{i}"));
    }
    for (f, row) in files.iter().zip(&feats) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.extend(row.iter().map(|v| v / n));
        names.push(f.to_string());
    }
    let npy = dir.join("photos.npy");
    EmbeddingIndex::write(&npy, d, &values, &names, true, &[]).unwrap();
    AnnIndex::build(&npy, &AnnParams::default()).unwrap();
    (npy, names)
}

fn search(
    server: &taiyi_server::RunningServer,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, _, body) = post(server, "/search", &body.to_string(), &[]);
    (status, json(&body))
}

#[test]
fn search_answers_from_the_index() {
    let dir = tempfile_dir("search");
    let (npy, names) = collection(&dir);
    let index = Arc::new(SearchIndex::open(&npy, false).unwrap());
    assert!(matches!(*index, SearchIndex::Ann(_)));
    let mut cfg = config();
    cfg.index = Some(SharedIndex {
        index: index.clone(),
        path: npy.clone(),
    });
    let server = start(cfg);

    // An image finds itself first, with cosine ~1.
    let (status, v) = search(
        &server,
        json!({"image": image_b64("examples/data/chelsea_cat.png"), "top_k": 3}),
    );
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["name"], "examples/data/chelsea_cat.png");
    assert_eq!(results[0]["row"], names.len() - 1);
    assert!(
        (results[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-5,
        "{v}"
    );

    // A text: the library's answer for the library's feature, bit for bit.
    let model = tiny_model().unwrap();
    let q = host_rows(
        model
            .text()
            .encode(&["一只猫"], &EncodeOptions::default())
            .unwrap(),
    );
    let want = index.search(ndarray::ArrayView1::from(&q[0]), 5).unwrap();
    let (status, v) = search(&server, json!({"query": "一只猫", "top_k": 5}));
    assert_eq!(status, 200, "{v}");
    let got: Vec<(usize, f32)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap() as usize,
                r["score"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    let want: Vec<(usize, f32)> = want.iter().map(|h| (h.index, h.score)).collect();
    assert_eq!(got, want);
    // Default top_k is 10.
    assert_eq!(
        search(&server, json!({"query": "一只猫"})).1["results"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // Refusals.
    for (body, field) in [
        (
            json!({"query": "猫", "image": image_b64("examples/data/chelsea_cat.png")}),
            "query/image",
        ),
        (json!({}), "query/image"),
        (json!({"query": "  "}), "query"),
        (json!({"query": "猫", "top_k": 0}), "top_k"),
        (json!({"query": "猫", "top_k": 1_000_000}), "top_k"),
    ] {
        let (status, v) = search(&server, body.clone());
        assert_eq!(status, 422, "{body} -> {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
    let (status, v) = search(&server, json!({"image": "bm90IGFuIGltYWdl"}));
    assert_eq!(status, 422, "{v}");

    // Counted under its own route in /metrics (and under the concurrency limit like every
    // model route).
    let (_, _, metrics) = get(&server, "/metrics");
    assert!(
        metrics.contains("taiyi_requests_total{route=\"/search\",status=\"200\"}"),
        "{metrics}"
    );

    // /info shows the index.
    let (_, _, info) = get(&server, "/info");
    let info = json(&info);
    assert_eq!(info["index"]["search"]["kind"], "ann");
    assert_eq!(info["index"]["search"]["rows"], names.len());
    assert_eq!(
        info["index"]["search"]["ann"]["params"]["quantization"],
        "i8"
    );
    server.shutdown().expect("clean shutdown");
}

#[test]
fn without_an_index_search_is_refused() {
    let server = start(config());
    let (status, v) = search(&server, json!({"query": "猫"}));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--index"),
        "{v}"
    );
    let (_, _, info) = get(&server, "/info");
    assert!(json(&info)["index"].is_null());
    server.shutdown().expect("clean shutdown");
}

/// A fresh folder under the system temp dir (removed by the OS; names are unique per run).
fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "taiyi-http-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
