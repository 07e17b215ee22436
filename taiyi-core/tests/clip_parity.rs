//! End-to-end parity of `ClipModel` with the model card's Python code path, on the tiny
//! random-weight towers (fixtures/clip/expected.json from scripts/fixtures/clip.py):
//! slow BertTokenizer (padding=True) -> BertModel pooler (no mask) and open_clip preprocess ->
//! encode_image, both L2-normalised, logits = logit_scale.exp() * img @ txt.T, softmax.
//!
//! Tolerance: both towers run in f32 on both sides with different summation orders; the
//! normalised features agree to ~1e-6 per element, so cosines agree to ~1e-6 and logits
//! (scaled by exp(logit_scale) ≈ 18) to ~2e-5. We allow 1e-4 on logits and 2e-5 on
//! probabilities and features; a mis-loaded tensor or a wrong padding rule moves them by 1e-2 or more.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../taiyi-text/tests/common/mod.rs"]
mod text_common;

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use taiyi_core::{
    ClipModel, ClipOptions, EncodeOptions, ImageSource, ModelPaths, TextEncoder, TextMode,
    VisionConfig, ZeroShotClassifier, to_array2,
};

type B = Flex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures/clip/expected.json"))
        .expect("fixtures/clip/expected.json (scripts/make_fixtures.sh clip)");
    serde_json::from_str(&text).expect("valid JSON")
}

use taiyi_testkit::json_rows as matrix;

fn max_abs_diff(a: &ndarray::Array2<f32>, b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.nrows(), b.len(), "row count");
    let mut m = 0f32;
    for (ra, rb) in a.outer_iter().zip(b) {
        assert_eq!(ra.len(), rb.len(), "column count");
        for (x, y) in ra.iter().zip(rb) {
            m = m.max((x - y).abs());
        }
    }
    m
}

fn model() -> ClipModel<B> {
    let paths = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_pytorch_model.bin"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        ..ClipOptions::default()
    };
    ClipModel::load(&paths, &options, &Default::default()).expect("tiny ClipModel loads")
}

fn images(exp: &serde_json::Value) -> Vec<ImageSource> {
    exp["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|p| ImageSource::from(root().join(p.as_str().expect("path"))))
        .collect()
}

fn labels(exp: &serde_json::Value) -> Vec<String> {
    exp["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l.as_str().expect("label").to_string())
        .collect()
}

#[test]
fn logits_match_the_model_card_code_path() {
    let exp = expected();
    let model = model();
    let scale_raw = exp["logit_scale_raw"].as_f64().expect("scale") as f32;
    assert_eq!(model.logit_scale_raw(), Some(scale_raw));

    let out = model.logits(&images(&exp), &labels(&exp)).expect("logits");
    let logits = to_array2(out.logits_per_image.clone()).expect("host");
    let d_logits = max_abs_diff(&logits, &matrix(&exp["logits_per_image"]));
    let d_probs = max_abs_diff(&out.probs().expect("probs"), &matrix(&exp["probs"]));
    let per_text = to_array2(out.logits_per_text).expect("host");
    assert_eq!(
        per_text,
        logits.t().to_owned(),
        "logits_per_text is the transpose"
    );
    println!("clip parity: logits max abs diff {d_logits:.2e}, probs {d_probs:.2e}");
    assert!(d_logits <= 1e-4, "logits differ by {d_logits}");
    assert!(d_probs <= 2e-5, "probs differ by {d_probs}");

    let img = to_array2(model.encode_images(&images(&exp)).expect("img")).expect("host");
    let txt = to_array2(model.encode_texts(&labels(&exp)).expect("txt")).expect("host");
    let d_img = max_abs_diff(&img, &matrix(&exp["image_features"]));
    let d_txt = max_abs_diff(&txt, &matrix(&exp["text_features"]));
    println!("clip parity: image features {d_img:.2e}, text features {d_txt:.2e}");
    assert!(d_img <= 2e-5 && d_txt <= 2e-5);
}

#[test]
fn zero_shot_matches_labels_and_template_ensemble() {
    let exp = expected();
    let model = model();
    let labels = labels(&exp);
    let imgs = images(&exp);
    // No template: the labels themselves, exactly the model card.
    let plain = ZeroShotClassifier::new(&model, &labels, &[] as &[&str]).expect("classifier");
    let feats = model.encode_images(&imgs).expect("features");
    let (probs, _) = plain.probabilities(feats.clone()).expect("probs");
    let d = max_abs_diff(&to_array2(probs).expect("host"), &matrix(&exp["probs"]));
    assert!(d <= 2e-5, "zero-shot probs differ by {d}");
    // Ranked output: best first, probabilities summing to 1.
    let classes = plain.classify(feats.clone()).expect("classify");
    for c in &classes {
        let row = c.ranked();
        assert!(row.windows(2).all(|w| w[0].probability >= w[1].probability));
        let total: f32 = row.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    let templates: Vec<String> = exp["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t.as_str().expect("template").to_string())
        .collect();
    let ens = ZeroShotClassifier::new(&model, &labels, &templates).expect("ensemble");
    let (probs, _) = ens.probabilities(feats).expect("probs");
    let d = max_abs_diff(
        &to_array2(probs).expect("host"),
        &matrix(&exp["ensemble_probs"]),
    );
    println!("zero-shot ensemble probs max abs diff {d:.2e}");
    assert!(d <= 2e-5, "ensemble probs differ by {d}");
}

/// A classifier built through a `TextCache` is the uncached one, bit for bit, in the
/// batch-invariant modes; built again it embeds nothing (every prompt a hit); in `card` mode
/// the cache is bypassed (nothing looked up, the same result as uncached).
#[test]
fn cached_zero_shot_equals_uncached_and_embeds_nothing_the_second_time() {
    use taiyi_core::{TextCache, TextMode};
    let exp = expected();
    let labels = labels(&exp);
    let templates = ["一张{}的照片。", "{}的素描。", "一幅{}的画。"];
    let bits = |c: &ZeroShotClassifier<B>| -> Vec<u32> {
        c.class_embeddings()
            .clone()
            .into_data()
            .iter::<f32>()
            .map(f32::to_bits)
            .collect()
    };
    for mode in [TextMode::Masked, TextMode::Fixed77, TextMode::ModelCard] {
        let paths = ModelPaths {
            text_dir: root().join("fixtures/text/tiny"),
            vision_file: root().join("fixtures/vision/open_clip_pytorch_model.bin"),
        };
        let options = ClipOptions {
            vision: VisionConfig::tiny(),
            text_mode: mode,
            ..ClipOptions::default()
        };
        let model = ClipModel::<B>::load(&paths, &options, &Default::default()).expect("load");
        let cache = TextCache::new(64);
        let plain = ZeroShotClassifier::new(&model, &labels, &templates).expect("plain");
        let first =
            ZeroShotClassifier::with_cache(&model, &labels, &templates, &cache).expect("cached");
        let n = (labels.len() * templates.len()) as u64;
        let after_first = cache.stats();
        let second = ZeroShotClassifier::with_cache(&model, &labels, &templates, &cache)
            .expect("cached again");
        let after_second = cache.stats();
        assert_eq!(bits(&first), bits(&plain), "{mode}: first cached build");
        assert_eq!(bits(&second), bits(&plain), "{mode}: second cached build");
        if mode.batch_invariant() {
            assert_eq!((after_first.hits, after_first.misses), (0, n), "{mode}");
            assert_eq!((after_second.hits, after_second.misses), (n, n), "{mode}");
            // A subset of the labels reuses their prompts.
            ZeroShotClassifier::with_cache(&model, &labels[..2], &templates, &cache)
                .expect("subset");
            assert_eq!(cache.stats().misses, n, "{mode}: subset embedded nothing");
        } else {
            assert_eq!(after_second, after_first, "{mode}: bypassed");
            assert_eq!(after_second.entries, 0);
        }
    }
}

#[test]
fn chunked_encoding_equals_one_batch() {
    let exp = expected();
    let paths = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_model.safetensors"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        text_batch_size: 2,
        image_batch_size: 1,
        ..ClipOptions::default()
    };
    let chunked = ClipModel::<B>::load(&paths, &options, &Default::default()).expect("load");
    let out = chunked
        .logits(&images(&exp), &labels(&exp))
        .expect("logits");
    let d = max_abs_diff(
        &to_array2(out.logits_per_image).expect("host"),
        &matrix(&exp["logits_per_image"]),
    );
    assert!(d <= 1e-4, "chunked logits differ by {d}");
}

#[test]
fn bad_inputs_are_errors() {
    let model = model();
    let none: [&str; 0] = [];
    assert!(model.encode_texts(&none).is_err());
    assert!(model.encode_images(&[]).is_err());
    let missing = [ImageSource::from("/nonexistent/cat.jpg")];
    let err = model.encode_images(&missing).expect_err("missing file");
    let report = taiyi_core::error_report(&err);
    assert!(report.contains("/nonexistent/cat.jpg"), "{report}");
    let corrupt = [ImageSource::Bytes(b"\x89PNG\r\n\x1a\n garbage".to_vec())];
    assert!(model.encode_images(&corrupt).is_err());
    // A text far over 512 tokens is truncated, not a crash.
    let long = "很长的句子".repeat(400);
    assert_eq!(model.encode_texts(&[long]).expect("long").dims()[0], 1);
    assert!(
        ClipModel::<B>::from_paths(
            "/nonexistent/text",
            "/nonexistent/v.bin",
            &Default::default()
        )
        .is_err()
    );
}

/// Shape buckets (padding texts to multiples of 16 tokens, batches to powers of two) change no
/// result: masked padding contributes exactly zero attention and batch rows are independent.
/// The only differences are gemm summation orders for other shapes (f32 rounding, ~1e-7);
/// 1e-6 on normalised features catches any leak of padding (which moves features by ≥ 1e-2).
/// In masked mode texts are also regrouped by length across chunks; rows come back in order.
#[test]
fn shape_buckets_change_no_result() {
    use taiyi_core::{ShapeBuckets, TextMode};
    let exp = expected();
    let texts = [
        "一只猫",
        "两只老虎在草地上奔跑，阳光很好",
        "狗",
        "海边的日落，天空是橙色的，远处有一艘小船",
        "一张照片",
    ];
    let load = |buckets: ShapeBuckets, mode: TextMode, text_batch: usize| {
        let paths = ModelPaths {
            text_dir: root().join("fixtures/text/tiny"),
            vision_file: root().join("fixtures/vision/open_clip_model.safetensors"),
        };
        let options = ClipOptions {
            vision: VisionConfig::tiny(),
            text_mode: mode,
            text_batch_size: text_batch,
            image_batch_size: 4,
            buckets,
            ..ClipOptions::default()
        };
        ClipModel::<B>::load(&paths, &options, &Default::default()).expect("load")
    };
    for mode in [TextMode::Masked, TextMode::ModelCard, TextMode::Fixed77] {
        // Reference: one batch of everything, no buckets.
        let plain = load(ShapeBuckets::NONE, mode, 64);
        let want = to_array2(plain.encode_texts(&texts).expect("texts")).expect("host");
        for batch in [2, 3, 64] {
            let bucketed = load(ShapeBuckets::GPU, mode, batch);
            let got = to_array2(bucketed.encode_texts(&texts).expect("texts")).expect("host");
            let d = max_abs_diff(
                &got,
                &want.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
            );
            println!("{mode} text batch {batch}, buckets vs none: max abs diff {d:.2e}");
            assert!(
                d <= 1e-6,
                "{mode} batch {batch}: buckets changed features by {d}"
            );
        }
    }
    // Images: 3 images in a batch of 4 run padded with a zero image.
    let plain = load(ShapeBuckets::NONE, TextMode::Masked, 64);
    let bucketed = load(ShapeBuckets::GPU, TextMode::Masked, 64);
    let imgs = images(&exp);
    let want = to_array2(plain.encode_images(&imgs).expect("images")).expect("host");
    let got = to_array2(bucketed.encode_images(&imgs).expect("images")).expect("host");
    let d = max_abs_diff(
        &got,
        &want.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    );
    println!("images, buckets vs none: max abs diff {d:.2e}");
    assert!(d <= 1e-6, "buckets changed image features by {d}");
}

/// Warm-up runs every bucket shape and leaves results unchanged.
#[test]
fn warm_up_runs_every_bucket() {
    use taiyi_core::{ShapeBuckets, TextMode};
    let paths = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_model.safetensors"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        text_mode: TextMode::Masked,
        text_batch_size: 4,
        image_batch_size: 4,
        buckets: ShapeBuckets::GPU,
        ..ClipOptions::default()
    };
    let model = ClipModel::<B>::load(&paths, &options, &Default::default()).expect("load");
    let report = model.warm_up(40).expect("warm-up");
    // Lengths 16, 32, 40 (capped) x batches 1, 2, 4; images: batches 1, 2, 4.
    assert_eq!(report.text_passes, 9);
    assert_eq!(report.image_passes, 3);
}

/// `TextEncoder` applies each `TextMode` as PyTorch does, on the tiny random-weight BERT of
/// `fixtures/text` (scripts/fixtures/text.py): the tokenizer's padding for the mode is the
/// Python tokenizer's, id for id (`padding=True`; `padding="max_length", truncation=True,
/// max_length=77` with an 81-token text, so the 76 + `[SEP]` truncation rule is covered), and
/// the features equal `BertModel` on those ids (no mask in the model card and fixed77 modes, the
/// mask in masked) — in one forward pass and in chunks of 2 texts (the masked mode then sorts by
/// length and pads each chunk to its own longest text).
///
/// Tolerance 2e-5 on the raw pooler output (as taiyi-text's parity tests): f32 on both sides,
/// other summation orders; a wrong padding or mask rule moves it by 1e-1 (see
/// `fixtures_discriminate_the_modes` there).
#[test]
fn text_encoder_applies_each_mode_as_pytorch() {
    let device = Default::default();
    let e = text_common::expected();
    let json = std::fs::read_to_string(text_common::fixtures().join("texts.json")).unwrap();
    let texts: Vec<String> = serde_json::from_str(&json).unwrap();
    let encoder = TextEncoder::<Flex>::from_dir(text_common::fixtures().join("tiny"), &device)
        .expect("tiny text encoder");
    for mode in [TextMode::ModelCard, TextMode::Fixed77, TextMode::Masked] {
        let layout = if mode == TextMode::Fixed77 {
            "fixed77"
        } else {
            "longest"
        };
        let tokens = encoder.clone().with_mode(mode).tokenize(&texts).unwrap();
        let ids: Vec<i64> = tokens.ids.into_data().convert::<i64>().into_vec().unwrap();
        let mask: Vec<i64> = tokens.mask.into_data().convert::<i64>().into_vec().unwrap();
        assert_eq!(ids, e[&format!("{layout}.input_ids")].i64, "{mode} ids");
        assert_eq!(
            mask,
            e[&format!("{layout}.attention_mask")].i64,
            "{mode} mask"
        );
        let want = &e[&format!("{}.batch.pooler", text_common::fixture_key(mode))];
        for batch in [64, 2] {
            let got = encoder
                .clone()
                .with_mode(mode)
                .with_batch_size(batch)
                .encode(&texts, &EncodeOptions::raw())
                .unwrap();
            let d = text_common::assert_close(&format!("{mode} batch {batch}"), got, want, 2e-5);
            eprintln!("{mode}, {batch} texts per pass: max abs diff {d:.2e}");
        }
    }
}
