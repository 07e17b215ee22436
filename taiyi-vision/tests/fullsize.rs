//! Full-size opt-in check: a random-init open_clip ViT-H-14 saved exactly as published (both
//! `open_clip_pytorch_model.bin` and `open_clip_model.safetensors`), loaded here and compared
//! with open_clip's `encode_image` on 2 preprocessed images.
//!
//! ```text
//! /work/.venv/bin/python scripts/fullsize_vision.py        # writes fixtures/full/vision/ (git-ignored, 8 GB)
//! cargo test --release -p taiyi-vision --test fullsize -- --ignored --nocapture
//! ```
//! Goals: max abs diff of the L2-normalised features ≤ 1e-4 (CPU f32) and a loading peak RSS
//! ≤ 1.15 × 2.53 GB (the f32 tower), read from `/proc/self/status` `VmHWM` after resetting it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use taiyi_vision::{VisionConfig, VisionTransformer};

type B = Flex;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/full/vision")
}

fn read(name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(dir().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let v = st.tensor(name).unwrap();
    let values = v
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (values, v.shape().to_vec())
}

/// `VmHWM` / `VmRSS` of this process in bytes.
fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Reset the peak-RSS counter (Linux `clear_refs` value 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

const GB: f64 = 1e9;

#[test]
#[ignore = "needs fixtures/full/vision from scripts/fullsize_vision.py (8 GB) and ~10 GB RAM"]
fn full_size_vit_h_14_matches_open_clip() {
    let device = Default::default();
    let (pixels, shape) = read("pixels");
    let (want, _) = read("normalized");
    let (want_raw, _) = read("features");
    let (scale, _) = read("logit_scale");
    let pixels: Tensor<B, 4> = Tensor::from_data(TensorData::new(pixels, shape), &device);
    for file in ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"] {
        let base = status("VmRSS:");
        reset_peak();
        let t = Instant::now();
        let loaded = VisionTransformer::<B>::load_open_clip(
            dir().join(file),
            &VisionConfig::vit_h_14(),
            &device,
        )
        .unwrap();
        let load_s = t.elapsed().as_secs_f64();
        let peak = status("VmHWM:");
        let after = status("VmRSS:");
        assert_eq!(loaded.logit_scale, Some(scale[0]));
        let t = Instant::now();
        let out = loaded.model.try_forward(pixels.clone()).unwrap();
        let fwd_s = t.elapsed().as_secs_f64();
        let raw: Vec<f32> = out.clone().into_data().into_vec().unwrap();
        let norm = out.clone() / out.powi_scalar(2).sum_dim(1).sqrt();
        let got: Vec<f32> = norm.into_data().into_vec().unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let raw_diff = raw
            .iter()
            .zip(&want_raw)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let raw_max = want_raw.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        println!(
            "{file}: load {load_s:.2} s; RSS before {:.2} GB, peak during load {:.2} GB \
             (+{:.2} GB over before; goal <= {:.2} GB), after load {:.2} GB; forward (batch 2) \
             {fwd_s:.2} s; max abs diff normalised {diff:e}, raw {raw_diff:e} (raw max |x| {raw_max})",
            base as f64 / GB,
            peak as f64 / GB,
            (peak - base.min(peak)) as f64 / GB,
            1.15 * 2.53,
            after as f64 / GB,
        );
        assert!(diff <= 1e-4, "{file}: normalised max abs diff {diff}");
        drop(loaded);
    }
}
