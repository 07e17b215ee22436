//! Shared helpers for the taiyi-text integration tests: fixture paths, the expected outputs
//! written by `scripts/fixtures/text.py`, whole-tensor comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use taiyi_text::TextMode;

/// `fixtures/text` of the repository.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join("text")
}

/// One tensor of `expected.safetensors`.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

/// Everything in `fixtures/text/expected.safetensors`, by name.
pub fn expected() -> HashMap<String, Array> {
    let bytes = std::fs::read(fixtures().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let (f32, i64) = match view.dtype() {
                Dtype::F32 => (
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    Vec::new(),
                ),
                Dtype::I64 => (
                    Vec::new(),
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                d => panic!("unexpected dtype {d:?} for {name}"),
            };
            (
                name,
                Array {
                    shape: view.shape().to_vec(),
                    f32,
                    i64,
                },
            )
        })
        .collect()
}

/// An int fixture as a `[batch, seq]` tensor.
pub fn ints<B: Backend>(a: &Array, device: &B::Device) -> Tensor<B, 2, Int> {
    assert_eq!(a.shape.len(), 2);
    Tensor::from_data(
        TensorData::new(a.i64.clone(), [a.shape[0], a.shape[1]]),
        device,
    )
}

/// Compare a whole tensor against a fixture (shape equal, every element within `tol`);
/// returns the max abs difference.
pub fn assert_close<B: Backend, const D: usize>(
    what: &str,
    got: Tensor<B, D>,
    want: &Array,
    tol: f32,
) -> f32 {
    assert_eq!(got.dims().to_vec(), want.shape, "{what}: shape");
    let got: Vec<f32> = got.into_data().convert::<f32>().into_vec().unwrap();
    assert_eq!(got.len(), want.f32.len(), "{what}: element count");
    let mut max = 0f32;
    let mut at = 0;
    for (i, (g, w)) in got.iter().zip(&want.f32).enumerate() {
        let d = (g - w).abs();
        assert!(
            d.is_finite(),
            "{what}: non-finite at {i}: got {g}, want {w}"
        );
        if d > max {
            max = d;
            at = i;
        }
    }
    eprintln!(
        "{what}: max abs diff {max:.3e} (at flat index {at}) over {} elements",
        got.len()
    );
    assert!(
        max <= tol,
        "{what}: max abs diff {max:e} > {tol:e} at flat index {at} (got {}, want {})",
        got[at],
        want.f32[at]
    );
    max
}

/// Max abs difference between two slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
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
