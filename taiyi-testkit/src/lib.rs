//! Test helpers shared by the integration tests of the workspace (a `publish = false` dev
//! crate): [`fixture`] paths, [`expected`] — the one reader of the `expected.safetensors`
//! files the fixture scripts write — and [`assert_close`], a whole-tensor comparison with
//! burn's [`Tolerance`].
//!
//! Test code: it panics with a message naming the tensor instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, Tolerance};
use safetensors::{Dtype, SafeTensors};

/// `fixtures/` of the repository.
pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// `fixtures/<part>/<name>` (`part`: `text`, `vision`, `clip`, ...; the script
/// `scripts/fixtures/<part>.py` writes that folder and no other).
pub fn fixture(part: &str, name: &str) -> PathBuf {
    fixtures_root().join(part).join(name)
}

/// One expected tensor: its shape and its values, as f32 (f16 widened exactly) or i64.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values of a float tensor (empty for an integer one).
    pub f32: Vec<f32>,
    /// The values of an integer tensor (empty for a float one).
    pub i64: Vec<i64>,
}

/// Every tensor of a safetensors file, by name.
pub fn read_expected(path: &Path) -> HashMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
                Dtype::F16 => (
                    data.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                    Vec::new(),
                ),
                Dtype::I64 => (
                    Vec::new(),
                    data.chunks_exact(8)
                        .map(|c| {
                            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                ),
                d => panic!("{}: {name} has dtype {d:?}", path.display()),
            };
            let shape = view.shape().to_vec();
            (name, Array { shape, f32, i64 })
        })
        .collect()
}

/// `fixtures/<part>/expected.safetensors`, by tensor name.
pub fn expected(part: &str) -> HashMap<String, Array> {
    read_expected(&fixture(part, "expected.safetensors"))
}

/// Compare a whole tensor with an expected one: the same shape, every element finite and
/// within `tol` ([`Tolerance::approx_eq`]); prints and returns the largest absolute difference.
pub fn assert_close<B: Backend, const D: usize>(
    what: &str,
    got: Tensor<B, D>,
    want: &Array,
    tol: Tolerance<f32>,
) -> f32 {
    assert_eq!(got.dims().to_vec(), want.shape, "{what}: shape");
    let got: Vec<f32> = got.into_data().convert::<f32>().into_vec().unwrap();
    assert_eq!(got.len(), want.f32.len(), "{what}: element count");
    let (mut max, mut at) = (0f32, 0);
    for (i, (g, w)) in got.iter().zip(&want.f32).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: non-finite at {i}: got {g}, want {w}"
        );
        let d = (g - w).abs();
        if d > max {
            (max, at) = (d, i);
        }
        assert!(
            tol.approx_eq(*g, *w),
            "{what}: got {g}, want {w} at flat index {i} (diff {d:e}, tolerance {tol:?})"
        );
    }
    eprintln!(
        "{what}: max abs diff {max:.3e} (at flat index {at}) over {} elements",
        got.len()
    );
    max
}

/// A JSON array of number arrays (the metadata fixtures' matrices, a server response's
/// embeddings) as f32 rows.
pub fn json_rows(v: &serde_json::Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("a JSON array of rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("a JSON array of numbers")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
                .collect()
        })
        .collect()
}

/// A JSON array of strings (a fixture's texts or file names).
pub fn json_strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a JSON array of strings")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// The JSON file `fixtures/<part>/<name>`.
pub fn json_fixture(part: &str, name: &str) -> serde_json::Value {
    let path = fixture(part, name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (scripts/make_fixtures.sh {part}): {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest absolute difference between two slices of the same length.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "max_diff of slices of different lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The guard [`scratch_dir`] returns.
pub use tempfile::TempDir;

/// A fresh scratch folder under the system's temporary folder, named `taiyi-{prefix}…`,
/// removed with its contents when the returned guard drops (also when the test fails).
///
/// # Panics
/// If the folder cannot be created: a test cannot run without it.
pub fn scratch_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("taiyi-{prefix}"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a scratch folder: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn tensor(v: &[f32]) -> Tensor<Flex, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    #[test]
    fn assert_close_passes_within_and_fails_beyond_the_tolerance() {
        let want = Array {
            shape: vec![3],
            f32: vec![1.0, 2.0, 3.0],
            i64: Vec::new(),
        };
        let d = assert_close(
            "near",
            tensor(&[1.0, 2.0005, 3.0]),
            &want,
            Tolerance::absolute(1e-3),
        );
        assert!((d - 5e-4).abs() < 1e-6);
        let far = std::panic::catch_unwind(|| {
            assert_close(
                "far",
                tensor(&[1.0, 2.1, 3.0]),
                &want,
                Tolerance::absolute(1e-3),
            )
        });
        assert!(far.is_err());
        let nan = std::panic::catch_unwind(|| {
            assert_close(
                "nan",
                tensor(&[1.0, f32::NAN, 3.0]),
                &want,
                Tolerance::absolute(1.0),
            )
        });
        assert!(nan.is_err());
    }

    #[test]
    fn json_rows_reads_a_matrix() {
        let v: serde_json::Value = serde_json::from_str("[[1, 2.5], [-3, 0]]").unwrap();
        assert_eq!(json_rows(&v), [vec![1.0, 2.5], vec![-3.0, 0.0]]);
    }

    #[test]
    fn the_text_fixture_reads_as_floats_and_ints() {
        let e = expected("text");
        let ids = &e["longest.input_ids"];
        assert!(ids.f32.is_empty() && ids.i64.len() == ids.shape.iter().product::<usize>());
        let pooler = &e["model_card.batch.pooler"];
        assert_eq!(pooler.f32.len(), pooler.shape.iter().product::<usize>());
    }
}
