//! Every route's answer against the library, and batch invariance.

use std::time::Duration;

use serde_json::json;
use taiyi_core::{EncodeOptions, ImageSource, TextMode, ZeroShotClassifier};

use crate::common::*;

fn texts() -> Vec<String> {
    vec![
        "一只猫".into(),
        "一只狗在草地上奔跑".into(),
        "猫".into(),
        "两只老虎两只老虎跑得快".into(),
    ]
}

#[test]
fn every_route_matches_clip_model_bit_for_bit() {
    let server = start(config());
    let model = tiny_model().expect("tiny model");
    let texts = texts();

    // /v1/embeddings, texts, base64 (exact bytes): each text as ClipModel encodes it alone.
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": texts, "model": "taiyi", "encoding_format": "base64"}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let got = base64_rows(&v);
    for (t, row) in texts.iter().zip(&got) {
        let want = host_rows(model.encode_texts(&[t.as_str()]).expect("encode"));
        assert_eq!(row, &want[0], "text {t}");
    }
    assert_eq!(v["model"], "taiyi");
    assert_eq!(v["object"], "list");
    let tokens: usize = texts
        .iter()
        .map(|t| model.text().tokenizer().encode(t).ids.len())
        .sum();
    assert_eq!(v["usage"]["prompt_tokens"], tokens);
    // Same-length texts in one call are unpadded too: the whole call equals ClipModel's.
    let same = ["一只猫", "一只狗"];
    let whole = host_rows(model.encode_texts(&same).expect("encode"));
    let (_, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": same, "encoding_format": "base64"}).to_string(),
        &[],
    );
    assert_eq!(base64_rows(&json(&body)), whole);

    // A single string; floats.
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": "猫"}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let emb = float_rows(&json!([json(&body)["data"][0]["embedding"]]));
    assert_eq!(emb, host_rows(model.encode_texts(&["猫"]).expect("encode")));

    // Images through /v1/embeddings (data URIs, modality image).
    let names = [
        "fixtures/vision/gradient_300x200.png",
        "fixtures/vision/waves_grey_100x150.png",
    ];
    let uris: Vec<String> = names
        .iter()
        .map(|n| format!("data:image/png;base64,{}", image_b64(n)))
        .collect();
    let (status, _, body) = post(
        &server,
        "/v1/embeddings",
        &json!({"input": uris, "modality": "image", "encoding_format": "base64"}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let sources: Vec<ImageSource> = names
        .iter()
        .map(|n| ImageSource::from(root().join(n)))
        .collect();
    let want_img = host_rows(model.encode_images(&sources).expect("encode"));
    assert_eq!(base64_rows(&json(&body)), want_img);

    // /embed: texts raw and normalised, images.
    let (status, _, body) = post(
        &server,
        "/embed",
        &json!({"texts": texts, "normalize": false}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["mode"], "masked");
    assert_eq!(v["dim"], 16);
    for (t, row) in texts.iter().zip(float_rows(&v["embeddings"])) {
        let want = host_rows(
            model
                .text()
                .encode(&[t.as_str()], &EncodeOptions::raw())
                .expect("raw"),
        );
        assert_eq!(row, want[0], "raw {t}");
    }
    let b64: Vec<String> = names.iter().map(|n| image_b64(n)).collect();
    let (status, _, body) = post(&server, "/embed", &json!({"images": b64}).to_string(), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(float_rows(&json(&body)["embeddings"]), want_img);

    // /embed with another mode: the request alone through that mode (card: the model card).
    let card = tiny_model()
        .expect("model")
        .with_text_mode(TextMode::ModelCard);
    let (status, _, body) = post(
        &server,
        "/embed",
        &json!({"texts": texts, "mode": "card"}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["mode"], "card");
    assert_eq!(
        float_rows(&json(&body)["embeddings"]),
        host_rows(card.encode_texts(&texts).expect("card"))
    );

    // /logits: the model card's logits and probs.
    let (status, _, body) = post(
        &server,
        "/logits",
        &json!({"images": b64, "texts": texts}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let features = model.encode_images(&sources).expect("img");
    let txt: Vec<Vec<f32>> = texts
        .iter()
        .flat_map(|t| host_rows(model.encode_texts(&[t.as_str()]).expect("txt")))
        .collect();
    let flat: Vec<f32> = txt.concat();
    let txt_t = burn::tensor::Tensor::<B, 2>::from_data(
        burn::tensor::TensorData::new(flat, [texts.len(), 16]),
        &Default::default(),
    );
    let out = model
        .logits_from_features(features.clone(), txt_t)
        .expect("logits");
    let rows = |a: ndarray::Array2<f32>| a.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        float_rows(&v["logits_per_image"]),
        rows(out.per_image().expect("l"))
    );
    assert_eq!(float_rows(&v["probs"]), rows(out.probs().expect("p")));
    assert_eq!(
        v["logit_scale"].as_f64().map(|x| x as f32),
        model.logit_scale().ok()
    );

    // /classify with the built-in templates: as ZeroShotClassifier (zero-shot --json shape).
    let labels = ["一只猫", "一只狗", "两只老虎"];
    let (status, _, body) = post(
        &server,
        "/classify",
        &json!({"images": b64, "labels": labels, "templates": "zh", "top_k": 2}).to_string(),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let clf = ZeroShotClassifier::new(&model, &labels, taiyi_core::CHINESE_TEMPLATES).expect("clf");
    let classes = clf.classify(features).expect("classify");
    for (i, c) in classes.iter().enumerate() {
        let p = c.ranked();
        let row = &v[i];
        assert_eq!(row["image"], i);
        assert_eq!(row["labels"], json!(labels));
        let top = row["top"].as_array().expect("top");
        assert_eq!(top.len(), 2);
        for (t, x) in top.iter().zip(&p) {
            assert_eq!(t["label"], x.label.as_str());
            assert_eq!(
                t["probability"].as_f64().map(|f| f as f32),
                Some(x.probability)
            );
            assert_eq!(t["logit"].as_f64().map(|f| f as f32), Some(x.logit));
        }
        let probs: Vec<f32> = row["probs"]
            .as_array()
            .expect("probs")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        for x in &p {
            assert_eq!(probs[x.index], x.probability);
        }
        assert_eq!(probs, c.probabilities());
    }

    // /health, /info, /metrics.
    assert_eq!(get(&server, "/health").0, 200);
    let (status, _, body) = get(&server, "/info");
    assert_eq!(status, 200);
    let info = json(&body);
    assert_eq!(info["text_mode"], "masked");
    assert_eq!(info["batch_invariant"], true);
    assert_eq!(info["limits"]["payload_limit"], 32 * 1024 * 1024);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    // f32 weights: no bf16 kernel to name.
    assert_eq!(info["cpu_kernel"], serde_json::Value::Null);
    let (status, _, body) = get(&server, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "taiyi_requests_total{route=\"/v1/embeddings\",status=\"200\"}",
        "taiyi_requests_total{route=\"/classify\",status=\"200\"} 1",
        "taiyi_queue_depth 0",
        "taiyi_batch_items_bucket{kind=\"text\"",
        "taiyi_queue_seconds_count{kind=\"image\"}",
        "taiyi_inference_seconds_count",
    ] {
        assert!(body.contains(needle), "{needle} missing from\n{body}");
    }
    server.shutdown().expect("clean shutdown");
}

/// 32 clients at once, each with different texts (different lengths) or images: each gets
/// exactly its single-request answer, and the requests really were batched together.
#[test]
fn answers_do_not_depend_on_the_batch() {
    let mut cfg = config();
    cfg.batch.max_wait = Duration::from_millis(100);
    let server = start(cfg);
    let request = |i: usize| -> serde_json::Value {
        if i % 4 == 3 {
            let uris = vec![format!("data:image/png;base64,{}", png_b64(i as u8))];
            json!({"input": uris, "modality": "image", "encoding_format": "base64"})
        } else {
            let texts: Vec<String> = (0..1 + i % 3)
                .map(|k| format!("第{i}个{}文本{}", "很长的".repeat((i + k) % 6), k))
                .collect();
            json!({"input": texts, "encoding_format": "base64"})
        }
    };
    let alone: Vec<Vec<Vec<f32>>> = (0..32)
        .map(|i| {
            let (status, _, body) = post(&server, "/v1/embeddings", &request(i).to_string(), &[]);
            assert_eq!(status, 200, "{body}");
            base64_rows(&json(&body))
        })
        .collect();
    let batches_before = batch_count(&server);
    let together: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (server, body) = (&server, request(i).to_string());
                s.spawn(move || {
                    let (status, _, body) = post(server, "/v1/embeddings", &body, &[]);
                    assert_eq!(status, 200, "{body}");
                    base64_rows(&json(&body))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "client {i}: answer changed when batched");
    }
    let batches = batch_count(&server) - batches_before;
    assert!(
        batches < 32,
        "32 requests ran in {batches} batches: nothing was batched"
    );
    server.shutdown().expect("clean shutdown");
}

/// Batches run so far (text + image), from /metrics.
fn batch_count(server: &taiyi_server::RunningServer) -> u64 {
    let (_, _, body) = get(server, "/metrics");
    body.lines()
        .filter(|l| {
            l.starts_with("taiyi_batch_items_count{kind=\"text\"}")
                || l.starts_with("taiyi_batch_items_count{kind=\"image\"}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn features_are_those_of_one_call_per_text() {
    // The library fact the server's batching relies on, checked directly: a text encoded in a
    // batch of texts of any lengths (packed on the CPU) equals the text encoded alone, bit for
    // bit.
    let model = tiny_model().expect("model");
    let four = [
        "一只猫",
        "一只狗在草地上奔跑",
        "两只猫",
        "海边的日落，天空被染成了橙红色",
    ];
    let many: Vec<&str> = four.iter().copied().cycle().take(40).collect();
    let rows = host_rows(model.encode_texts(&many).expect("many"));
    for (t, row) in many.iter().zip(&rows) {
        let one = host_rows(model.encode_texts(&[*t]).expect("one"));
        assert_eq!(row, &one[0], "{t}");
    }
}

/// Concurrent one-image requests share forward passes up to `max_batch_images`: 8 clients,
/// a limit of 4 and a long wait give batches of 4 (never more), each client its lone answer.
#[test]
fn concurrent_images_are_batched_up_to_the_limit() {
    let mut cfg = config();
    cfg.batch.max_wait = Duration::from_millis(300);
    cfg.batch.max_batch_images = 4;
    let server = start(cfg);
    let body = |i: usize| {
        let uris = vec![format!("data:image/png;base64,{}", png_b64(i as u8))];
        json!({"input": uris, "modality": "image", "encoding_format": "base64"}).to_string()
    };
    let alone: Vec<_> = (0..8)
        .map(|i| base64_rows(&json(&post(&server, "/v1/embeddings", &body(i), &[]).2)))
        .collect();
    let (_, _, before) = get(&server, "/metrics");
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (server, body) = (&server, body(i));
                s.spawn(move || base64_rows(&json(&post(server, "/v1/embeddings", &body, &[]).2)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    assert_eq!(alone, together);
    let (_, _, after) = get(&server, "/metrics");
    let image_metric = |body: &str, name: &str| -> f64 {
        body.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix("{kind=\"image\"} ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let batches = image_metric(&after, "taiyi_batch_items_count")
        - image_metric(&before, "taiyi_batch_items_count");
    let items = image_metric(&after, "taiyi_batch_items_sum")
        - image_metric(&before, "taiyi_batch_items_sum");
    assert_eq!(items, 8.0);
    assert!(
        (2.0..=3.0).contains(&batches),
        "8 images in {batches} batches of at most 4"
    );
    // No batch over the limit: the histogram's le="4" bucket holds every batch.
    let le4 = |body: &str| {
        body.lines()
            .find_map(|l| {
                l.strip_prefix("taiyi_batch_items_bucket{kind=\"image\",le=\"4\"} ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    assert_eq!(le4(&after) - le4(&before), batches);
    server.shutdown().expect("clean shutdown");
}
