//! The tiny parity suites of both towers and of `ClipModel` on a GPU backend, `Wgpu<f32>` and
//! `Wgpu<f16>`, against the same committed PyTorch fixtures as the CPU suites. In CI (and
//! `scripts/test.sh`) the wgpu adapter is lavapipe, Mesa's software Vulkan driver, which runs
//! burn's CubeCL fusion/JIT code paths (and has shaderFloat16) on the CPU.
//!
//! Tolerances:
//! - **f32: 1e-5 absolute** on whole tensors (image features, text hidden states and pooler,
//!   normalised logits / 10, see below). Both sides compute in f32; CubeCL's kernels sum in other
//!   orders than PyTorch's CPU kernels, each a few ulp (~1e-7 relative) on O(1) values two
//!   blocks deep: measured ≤ 2e-6 here. 1e-5 still catches any semantic error (a mis-loaded
//!   bias or a wrong mask moves outputs by ≥ 1e-2).
//! - **f16: cosine ≥ 0.999** between each f16 output row and the f32 reference row, and the
//!   zero-shot top-1 label of every fixture image unchanged. f16 keeps 11 significant bits
//!   (relative rounding 4.9e-4 per value): a row of O(1) values with independent rounding
//!   errors of that size has cosine ≈ 1 − (4.9e-4)²·k for k accumulated roundings, far above
//!   0.999; PyTorch's own f16 forward of the same tiny towers (CPU, `model.half()`) is the
//!   yardstick printed beside ours (`fixtures/gpu/torch_f16.json`,
//!   `scripts/fixtures/torch_f16.py`).
//!
//! Without a Vulkan adapter these tests fail (install `mesa-vulkan-drivers`; `scripts/test.sh`
//! does it).
#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../taiyi-text/tests/common/mod.rs"]
mod text_common;
#[path = "../../taiyi-vision/tests/common/mod.rs"]
mod vision_common;

use std::path::{Path, PathBuf};

use burn::backend::wgpu::{Wgpu, WgpuDevice};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, f16};
use taiyi_core::{
    BackendTask, ClipError, ClipModel, ClipOptions, DeviceSpec, ImageSource, ModelPaths, Precision,
    ShapeBuckets, TextMode, VisionConfig, ZeroShotClassifier, to_array2, to_vec,
};
use taiyi_text::{AttentionKernel, BertModel};
use taiyi_vision::VisionTransformer;

const F32_TOL: f32 = 1e-5;
const F16_MIN_COS: f32 = 0.999;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn device() -> WgpuDevice {
    let device = WgpuDevice::DefaultDevice;
    if let Err(e) = taiyi_core::probe::<Wgpu>(&device) {
        panic!(
            "no wgpu adapter ({e}): install a Vulkan driver (Debian: mesa-vulkan-drivers, \
             which scripts/test.sh installs) and set XDG_RUNTIME_DIR"
        );
    }
    device
}

/// PyTorch's own f16-vs-f32 minimum cosine for `what` on the same fixtures.
fn torch_f16(what: &str) -> String {
    let path = root().join("fixtures/gpu/torch_f16.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures/gpu/torch_f16.json"))
            .expect("valid JSON");
    format!("{}", v[what]["min_cosine"])
}

/// Row-wise cosine of `got` `[rows, cols]` against `want`; returns the minimum.
fn min_row_cosine(got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len());
    got.chunks(cols)
        .zip(want.chunks(cols))
        .map(|(g, w)| {
            assert!(g.iter().all(|x| x.is_finite()), "non-finite output");
            let dot: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
            let ng: f32 = g.iter().map(|a| a * a).sum::<f32>().sqrt();
            let nw: f32 = w.iter().map(|a| a * a).sum::<f32>().sqrt();
            dot / (ng * nw)
        })
        .fold(1.0, f32::min)
}

fn max_abs(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| {
            assert!(a.is_finite(), "non-finite output");
            (a - b).abs()
        })
        .fold(0.0, f32::max)
}

/// Check `got` against the f32 reference: ≤ 1e-5 abs in f32, row cosine ≥ 0.999 in f16.
fn check<B: Backend>(what: &str, half: bool, got: Tensor<B, 2>, want: &[f32], yardstick: &str) {
    let [_, cols] = got.dims();
    let got = to_vec(got).unwrap();
    let diff = max_abs(&got, want);
    let cos = min_row_cosine(&got, want, cols);
    let torch = if half {
        format!(" (PyTorch f16: {})", torch_f16(yardstick))
    } else {
        String::new()
    };
    eprintln!("{what}: max abs diff {diff:.3e}, min row cosine {cos:.6}{torch}");
    if half {
        assert!(cos >= F16_MIN_COS, "{what}: cosine {cos} < {F16_MIN_COS}");
    } else {
        assert!(
            diff <= F32_TOL,
            "{what}: max abs diff {diff:e} > {F32_TOL:e}"
        );
    }
}

fn vision_suite<B: Backend>(label: &str, half: bool, device: &B::Device) {
    let (pixels, shape) = vision_common::expected("pixels");
    let (want, _) = vision_common::expected("features");
    // One checkpoint layout: loading is host code, tested per layout by the CPU suites.
    for file in ["open_clip_model.safetensors"] {
        for kernel in [AttentionKernel::Matmul, AttentionKernel::Fused] {
            let model = VisionTransformer::<B>::load_open_clip(
                vision_common::fixture(file),
                &VisionConfig::tiny(),
                device,
            )
            .unwrap()
            .model
            .with_attention_kernel(kernel);
            let x =
                Tensor::<B, 4>::from_data(TensorData::new(pixels.clone(), shape.clone()), device);
            let out = model.try_forward(x).unwrap();
            check(
                &format!("{label} vision {file} {kernel:?}"),
                half,
                out,
                &want,
                "vision",
            );
        }
    }
}

fn text_suite<B: Backend>(label: &str, half: bool, device: &B::Device) {
    let e = text_common::expected();
    for kernel in [AttentionKernel::Matmul, AttentionKernel::Fused] {
        let model =
            BertModel::<B>::from_pretrained_dir(&text_common::fixtures().join("tiny"), device)
                .unwrap()
                .0
                .with_attention_kernel(kernel);
        for (mode, ids, mask) in [
            ("model_card", "longest.input_ids", None),
            (
                "masked",
                "longest.input_ids",
                Some("longest.attention_mask"),
            ),
            ("fixed77", "fixed77.input_ids", None),
        ] {
            let out = model
                .try_forward(
                    text_common::ints(&e[ids], device),
                    mask.map(|m| text_common::ints(&e[m], device)),
                )
                .unwrap();
            let what = format!("{label} text {mode} {kernel:?}");
            let pooler = &e[&format!("{mode}.batch.pooler")];
            check(
                &format!("{what} pooler"),
                half,
                out.pooler_output,
                &pooler.f32,
                "text",
            );
            let hidden = &e[&format!("{mode}.batch.hidden")];
            let [b, s, h] = out.last_hidden_state.dims();
            let hidden_got = out.last_hidden_state.reshape([b * s, h]);
            check(
                &format!("{what} hidden"),
                half,
                hidden_got,
                &hidden.f32,
                "text_hidden",
            );
        }
    }
}

fn clip_expected() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("fixtures/clip/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn flat(v: &serde_json::Value) -> Vec<f32> {
    taiyi_testkit::json_rows(v).concat()
}

fn argmax_rows(values: &[f32], cols: usize) -> Vec<usize> {
    values
        .chunks(cols)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, &x)| if x > best.1 { (i, x) } else { best },
                )
                .0
        })
        .collect()
}

fn clip_model<B: Backend>(device: &B::Device, buckets: ShapeBuckets) -> ClipModel<B> {
    let paths = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_pytorch_model.bin"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        buckets,
        text_batch_size: 4,
        image_batch_size: 2,
        ..ClipOptions::default()
    };
    ClipModel::load(&paths, &options, device).unwrap()
}

/// `ClipModel` end to end (PNG → transform → both towers → logits) and the zero-shot ensemble.
/// Logits are `exp(logit_scale) ≈ 18.3` times cosines, so their f32 tolerance is 18.3 × 1e-5.
fn clip_suite<B: Backend>(label: &str, half: bool, device: &B::Device) {
    let exp = clip_expected();
    let images: Vec<ImageSource> = strings(&exp["images"])
        .iter()
        .map(|p| ImageSource::from(root().join(p)))
        .collect();
    let labels = strings(&exp["labels"]);
    let want = flat(&exp["logits_per_image"]);
    let want_top1 = argmax_rows(&want, labels.len());
    // With the GPU buckets (the CPU suite shows buckets change no result).
    let model = clip_model::<B>(device, ShapeBuckets::GPU);
    {
        let buckets = model.text().buckets();
        let out = model.logits(&images, &labels).unwrap();
        let got = to_vec(out.logits_per_image.clone()).unwrap();
        let diff = max_abs(&got, &want);
        let top1 = argmax_rows(&got, labels.len());
        eprintln!("{label} clip logits ({buckets:?}): max abs diff {diff:.3e}, top-1 {top1:?}");
        assert_eq!(top1, want_top1, "{label}: zero-shot top-1 changed");
        if !half {
            assert!(diff <= 18.3 * F32_TOL, "{label}: logits diff {diff:e}");
        }
        let probs = to_array2(out.probs_tensor()).unwrap();
        assert!(probs.iter().all(|p| p.is_finite()));
    }
    // The template ensemble.
    let templates = strings(&exp["templates"]);
    let clf = ZeroShotClassifier::new(&model, &labels, &templates).unwrap();
    let preds: Vec<_> = clf
        .classify(model.encode_images(&images).unwrap())
        .unwrap()
        .iter()
        .map(|c| c.ranked())
        .collect();
    let want = flat(&exp["ensemble_probs"]);
    let want_top1 = argmax_rows(&want, labels.len());
    for (i, p) in preds.iter().enumerate() {
        let best = labels.iter().position(|l| *l == p[0].label).unwrap();
        assert_eq!(best, want_top1[i], "{label}: ensemble top-1 of image {i}");
    }
}

#[test]
fn vision_tower_wgpu_f32() {
    vision_suite::<Wgpu<f32>>("wgpu f32", false, &device());
}

#[test]
fn vision_tower_wgpu_f16() {
    vision_suite::<Wgpu<f16>>("wgpu f16", true, &device());
}

#[test]
fn text_tower_wgpu_f32() {
    text_suite::<Wgpu<f32>>("wgpu f32", false, &device());
}

#[test]
fn text_tower_wgpu_f16() {
    text_suite::<Wgpu<f16>>("wgpu f16", true, &device());
}

#[test]
fn clip_model_wgpu_f32() {
    clip_suite::<Wgpu<f32>>("wgpu f32", false, &device());
}

#[test]
fn clip_model_wgpu_f16() {
    clip_suite::<Wgpu<f16>>("wgpu f16", true, &device());
}

/// Through `DeviceSpec::run`, as the CLI does: f16 runs, bf16 is a typed error on wgpu.
#[test]
fn device_spec_runs_f16_and_refuses_bf16() {
    struct Features;
    impl BackendTask for Features {
        type Output = Vec<f32>;
        type Error = ClipError;
        fn run<B: Backend>(self, device: B::Device) -> Result<Vec<f32>, ClipError> {
            let model =
                clip_model::<B>(&device, ShapeBuckets::GPU).with_text_mode(TextMode::Masked);
            to_vec(model.encode_texts(&["一只猫", "两只老虎在草地上"])?)
        }
    }
    let f32s = DeviceSpec::Wgpu(None)
        .run(Precision::F32, Features)
        .unwrap();
    let f16s = DeviceSpec::Wgpu(None)
        .run(Precision::F16, Features)
        .unwrap();
    let cos = min_row_cosine(&f16s, &f32s, f32s.len() / 2);
    eprintln!("DeviceSpec wgpu f16 vs f32 text features: min cosine {cos:.6}");
    assert!(cos >= F16_MIN_COS);
    let err = DeviceSpec::Wgpu(None)
        .run(Precision::Bf16, Features)
        .unwrap_err();
    assert!(matches!(err, ClipError::BackendUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("bf16"), "{err}");
}
