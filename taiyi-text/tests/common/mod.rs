//! Shared helpers for the taiyi-text integration tests: fixture paths, the expected outputs
//! written by `scripts/fixtures/text.py`, whole-tensor comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, Tolerance};
use taiyi_text::TextMode;

/// `fixtures/text` of the repository.
pub fn fixtures() -> PathBuf {
    taiyi_testkit::fixtures_root().join("text")
}

/// One tensor of `expected.safetensors` (the workspace's one reader, `taiyi-testkit`).
#[allow(unused_imports)]
pub use taiyi_testkit::{Array, max_diff};

/// Everything in `fixtures/text/expected.safetensors`, by name.
pub fn expected() -> HashMap<String, Array> {
    taiyi_testkit::expected("text")
}

/// An int fixture as a `[batch, seq]` tensor.
pub fn ints<B: Backend>(a: &Array, device: &B::Device) -> Tensor<B, 2, Int> {
    assert_eq!(a.shape.len(), 2);
    Tensor::from_data(
        TensorData::new(a.i64.clone(), [a.shape[0], a.shape[1]]),
        device,
    )
}

/// Compare a whole tensor against a fixture (shape equal, every element within `tol`
/// absolute); returns the max abs difference.
pub fn assert_close<B: Backend, const D: usize>(
    what: &str,
    got: Tensor<B, D>,
    want: &Array,
    tol: f32,
) -> f32 {
    taiyi_testkit::assert_close(what, got, want, Tolerance::absolute(tol))
}

/// A fresh, empty temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The key prefix of a text mode in `expected.safetensors` (`scripts/fixtures/text.py`).
pub fn fixture_key(mode: TextMode) -> &'static str {
    match mode {
        TextMode::ModelCard => "model_card",
        TextMode::Fixed77 => "fixed77",
        TextMode::Masked => "masked",
    }
}

/// The tiny HF text tower of the fixtures (`config.json`, vocab, weights).
pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny")
}

/// The tiny tower's `config.json`, parsed.
pub fn tiny_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("config.json")).unwrap()).unwrap()
}

/// Loading the model directory `dir` on flex, which must fail: the error.
pub fn load_err(dir: &std::path::Path) -> taiyi_text::TextError {
    match taiyi_text::BertModel::<burn::backend::Flex>::from_pretrained_dir(
        dir,
        &Default::default(),
    ) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}
