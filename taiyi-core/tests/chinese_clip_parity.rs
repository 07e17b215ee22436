//! Parity of the Chinese-CLIP family (a transformers `ChineseCLIPModel` directory) with
//! transformers 4.57.6, on the tiny random-weight model of fixtures/chinese_clip/ (written by
//! scripts/fixtures/chinese_clip.py in the published OFA-Sys layout: config.json,
//! pytorch_model.bin, vocab.txt, tokenizer_config.json, preprocessor_config.json).
//!
//! Token ids are exact. Features: both sides run f32 with different summation orders (and HF
//! scales q before the scores where taiyi scales the scores); the projected features agree to
//! ~1e-7, so 1e-5 on raw features and probabilities, and 1e-4 on logits (× exp(2.6592) =
//! 14.3). A mis-loaded tensor (a swapped q/k, the pooler instead of the projection, a missing
//! position embedding) moves them by 1e-2 or more. The pixels are bit-exact
//! (taiyi-preprocess/tests/hf_image_parity.rs); here they are checked through the features.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use taiyi_core::{
    ClipModel, ClipOptions, EncodeOptions, Family, HubOptions, ImageSource, ModelDir, ModelSource,
    TextMode, to_array2,
};
use taiyi_preprocess::tokenizer::{Padding, Truncation};
use taiyi_testkit::{expected, json_fixture, json_strings as strings, max_diff};

type B = Flex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny() -> PathBuf {
    root().join("fixtures/chinese_clip/tiny")
}

fn cases() -> serde_json::Value {
    json_fixture("chinese_clip", "cases.json")
}

fn model(mode: TextMode) -> ClipModel<B> {
    let source = ModelSource::resolve(Some(&tiny()), None, None, &HubOptions::from_env())
        .expect("the tiny directory resolves");
    assert_eq!(source.family(), Family::ChineseClip);
    let options = ClipOptions {
        text_mode: mode,
        ..ClipOptions::default()
    };
    ClipModel::load_source(&source, &options, &Default::default()).expect("tiny model loads")
}

fn raw() -> EncodeOptions<'static> {
    EncodeOptions {
        normalize: false,
        ..EncodeOptions::default()
    }
}

#[test]
fn token_ids_are_the_slow_tokenizers() {
    let e = expected("chinese_clip");
    let texts = strings(&cases()["texts"]);
    let m = model(TextMode::Masked);
    let enc = m
        .text()
        .tokenizer()
        .encode_batch(&texts, Padding::Longest, Truncation::None)
        .expect("tokenizes");
    let ids: Vec<i64> = enc.ids.iter().map(|&i| i64::from(i)).collect();
    let mask: Vec<i64> = enc.attention_mask.iter().map(|&i| i64::from(i)).collect();
    assert_eq!(ids, e["ids"].i64);
    assert_eq!(mask, e["mask"].i64);
}

#[test]
fn text_features_match_transformers() {
    let e = expected("chinese_clip");
    let texts = strings(&cases()["texts"]);
    let m = model(Family::ChineseClip.default_text_mode());
    let got = to_array2(m.text().encode(&texts, &raw()).expect("encodes")).expect("host");
    assert_eq!(got.shape(), &e["text_embeds"].shape[..]);
    let d = max_diff(got.as_slice().expect("contiguous"), &e["text_embeds"].f32);
    assert!(d <= 1e-5, "batched text features differ by {d}");
    // One at a time: masked mode is batch-invariant, as HF with its attention mask.
    for (i, text) in texts.iter().enumerate() {
        let one = to_array2(m.text().encode(&[text], &raw()).expect("encodes")).expect("host");
        let d = max_diff(
            one.as_slice().expect("contiguous"),
            &e[&format!("single.{i}.text_embeds")].f32,
        );
        assert!(d <= 1e-5, "text {i} alone differs by {d}");
    }
}

#[test]
fn image_features_and_logits_match_transformers() {
    let e = expected("chinese_clip");
    let c = cases();
    let texts = strings(&c["texts"]);
    let images: Vec<ImageSource> = strings(&c["images"])
        .iter()
        .map(|p| ImageSource::from(root().join(p)))
        .collect();
    let m = model(TextMode::Masked);
    assert_eq!(m.family(), Family::ChineseClip);
    let got = to_array2(m.image().encode(&images, &raw()).expect("encodes")).expect("host");
    assert_eq!(got.shape(), &e["image_embeds"].shape[..]);
    let d = max_diff(got.as_slice().expect("contiguous"), &e["image_embeds"].f32);
    assert!(d <= 1e-5, "image features differ by {d}");

    let want_scale = c["logit_scale"].as_f64().expect("number") as f32;
    assert_eq!(m.logit_scale_raw(), Some(want_scale));
    let logits = m.logits(&images, &texts).expect("logits");
    let per_image = logits.per_image().expect("host");
    let d = max_diff(
        per_image.as_slice().expect("contiguous"),
        &e["logits_per_image"].f32,
    );
    assert!(d <= 1e-4, "logits differ by {d}");
}

#[test]
fn the_family_is_read_from_config_json() {
    let dir = ModelDir::open(tiny()).expect("opens");
    assert_eq!(dir.family, Family::ChineseClip);
    assert_eq!(dir.vision.width, 24);
    assert_eq!(dir.vision.output_dim, 12);
    // A Taiyi text directory is a BERT config: not a one-directory model, and the error says
    // how to give it.
    let err = ModelDir::open(root().join("fixtures/text/tiny")).expect_err("bert is refused");
    let msg = taiyi_core::error_report(&err);
    assert!(
        msg.contains("\"bert\"") && msg.contains("--text-model"),
        "{msg}"
    );
    // A file, and a path that is neither a directory nor a hub id.
    let err = ModelSource::resolve(
        Some(&tiny().join("config.json")),
        None,
        None,
        &HubOptions::from_env(),
    )
    .expect_err("a file is refused");
    assert!(
        taiyi_core::error_report(&err).contains("is a file"),
        "{err}"
    );
    let err = ModelSource::resolve(
        Some(Path::new("/no/such/dir")),
        None,
        None,
        &HubOptions::from_env(),
    )
    .expect_err("a missing path is refused");
    assert!(
        taiyi_core::error_report(&err).contains("no such directory"),
        "{err}"
    );
}

#[test]
fn loading_is_strict_and_names_keys_as_the_checkpoint_spells_them() {
    let dir = ModelDir::open(tiny()).expect("opens");
    let device = Default::default();
    let weights = dir.weights().expect("weights");
    // One layer fewer than the checkpoint: its last layer is unused.
    let fewer = taiyi_core::VisionConfig {
        layers: 1,
        ..dir.vision.clone()
    };
    let ckpt = taiyi_store::Checkpoint::open(&weights).expect("opens");
    let err = taiyi_vision::VisionTransformer::<B>::load_hf_clip_as(
        ckpt,
        &fewer,
        &device,
        taiyi_core::DenseFormat::Float,
    )
    .expect_err("an unused layer is an error");
    let msg = taiyi_core::error_report(&err);
    assert!(
        msg.contains("vision_model.encoder.layers.1.self_attn.q_proj.weight"),
        "{msg}"
    );
    // One more: the missing layer is named, never filled with random values.
    let more = taiyi_core::VisionConfig {
        layers: 3,
        ..dir.vision.clone()
    };
    let ckpt = taiyi_store::Checkpoint::open(&weights).expect("opens");
    let err = taiyi_vision::VisionTransformer::<B>::load_hf_clip_as(
        ckpt,
        &more,
        &device,
        taiyi_core::DenseFormat::Float,
    )
    .expect_err("a missing layer is an error");
    let msg = taiyi_core::error_report(&err);
    assert!(msg.contains("vision_model.encoder.layers.2."), "{msg}");
    // The text tower: keys in the checkpoint's spelling (`text_model.`, `LayerNorm`).
    let config = taiyi_text::read_config(&tiny().join("config.json"))
        .expect("config")
        .with_num_hidden_layers(1);
    let ckpt = taiyi_store::Checkpoint::open(&weights).expect("opens");
    let err = taiyi_text::BertModel::<B>::load_checkpoint(ckpt, &config, &device)
        .expect_err("an unused layer is an error");
    let msg = taiyi_core::error_report(&err);
    assert!(
        msg.contains("text_model.encoder.layer.1.attention.output.LayerNorm.weight"),
        "{msg}"
    );
}
