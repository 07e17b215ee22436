//! Shared helpers of the taiyi-vision integration tests: fixture paths, reading the expected
//! tensors written by `scripts/fixtures/vision.py`, comparing whole tensors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use taiyi_vision::VisionConfig;

/// The backend every test runs on.
pub type B = Flex;

/// `fixtures/vision/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    taiyi_testkit::fixture("vision", name)
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taiyi-vision-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One tensor of `expected.safetensors` as f32 values (f16 ones widened exactly) and its shape
/// (the workspace's one reader, `taiyi-testkit`).
pub fn expected(name: &str) -> (Vec<f32>, Vec<usize>) {
    let mut all = taiyi_testkit::expected("vision");
    let a = all
        .remove(name)
        .unwrap_or_else(|| panic!("{name}: not in fixtures/vision/expected.safetensors"));
    (a.f32, a.shape)
}

/// An expected tensor as a burn tensor.
pub fn expected_tensor<const D: usize>(name: &str) -> Tensor<B, D> {
    let (values, shape) = expected(name);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Largest absolute difference between `actual` and the expected tensor `name`, after checking
/// that the shapes agree.
pub fn max_abs_diff(actual: Tensor<B, 2>, name: &str) -> f32 {
    let (want, shape) = expected(name);
    assert_eq!(actual.dims().to_vec(), shape, "shape of {name}");
    let got = actual.into_data().into_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .map(|(a, b)| {
            assert!(a.is_finite(), "non-finite output");
            (a - b).abs()
        })
        .fold(0.0, f32::max)
}

/// Tolerance for the tiny fixture model's features (values of magnitude ~1-3). Both sides
/// compute in f32 but sum in different orders (burn's gemm vs oneDNN/MKL-free torch CPU, fused
/// vs explicit softmax, erf implementations); each of the 2 blocks accumulates ~100-term dot
/// products, so rounding differences are ~1e-6 relative. 1e-4 absolute leaves 50x headroom
/// while still catching any real error: a mis-loaded bias, a transposed weight or the wrong
/// activation moves the outputs by 1e-2 or more (fp16 rounding of the weights alone moves
/// them by up to 1e-3, and the fp16 test tells these apart).
pub const TOL: f32 = 1e-4;

/// The QuickGELU fixture model: 64 px, patch 16, width 24, 1 layer, 2 heads, MLP ratio 2, output 8.
pub fn quickgelu_config() -> VisionConfig {
    VisionConfig::new(64, 16, 24, 1, 2, 8)
        .with_mlp_ratio(2.0)
        .quick_gelu()
}

/// Read a safetensors fixture as (name, dtype, shape, bytes) rows, for writing altered copies.
pub fn read_safetensors(name: &str) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut rows: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Write rows as a safetensors file.
pub fn write_safetensors(path: &std::path::Path, rows: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = rows
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}
