//! Opt-in full-size check: a random-weight BERT with the exact Taiyi text config, written by
//! `scripts/fullsize_text.py` to `fixtures/full/text/` (git-ignored, 1.3 GB), against PyTorch
//! (transformers 4.57.6, eager attention, f32 CPU) on 8 Chinese texts, all three text modes.
//!
//! ```text
//! /work/.venv/bin/python scripts/fullsize_text.py
//! cargo test -p taiyi-text --test fullsize -- --ignored --nocapture
//! ```
//!
//! Goal: max abs difference of the L2-normalised pooler features <= 1e-4 (24 layers of f32
//! rounding-order differences on 1024-d features; the features themselves are O(1/32) each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::SafeTensors;
use taiyi_text::{BertModel, TextMode};

type B = Flex;

fn normalise(v: &[f32], dim: usize) -> Vec<f32> {
    v.chunks(dim)
        .flat_map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter().map(move |x| x / n)
        })
        .collect()
}

#[test]
#[ignore = "needs fixtures/full/text from scripts/fullsize_text.py (1.3 GB)"]
fn full_size_text_tower_matches_pytorch() {
    let dir = common::fixtures().join("..").join("full").join("text");
    let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let i64s = |name: &str| -> (Vec<i64>, [usize; 2]) {
        let v = st.tensor(name).unwrap();
        let s = v.shape();
        (
            v.data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            [s[0], s[1]],
        )
    };
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let device = Default::default();
    let t = Instant::now();
    let (model, config) = BertModel::<B>::from_pretrained_dir(&dir, &device).unwrap();
    eprintln!("loaded full-size text tower in {:.2?}", t.elapsed());
    let hidden = config.hidden_size;
    let mut worst = 0f32;
    for mode in [TextMode::ModelCard, TextMode::Masked, TextMode::Fixed77] {
        // Each mode's own PyTorch input: the tokenizer's padding, the mask only when masked.
        let layout = if mode == TextMode::Fixed77 {
            "fixed77"
        } else {
            "longest"
        };
        let (ids, shape) = i64s(&format!("{layout}.input_ids"));
        let (mask, _) = i64s(&format!("{layout}.attention_mask"));
        let ids_t = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
        let mask_t = mode
            .uses_mask()
            .then(|| Tensor::<B, 2, Int>::from_data(TensorData::new(mask, shape), &device));
        let t = Instant::now();
        let feats = model.try_forward(ids_t, mask_t).unwrap().pooler_output;
        let got: Vec<f32> = feats.into_data().into_vec().unwrap();
        let dt = t.elapsed();
        let key = common::fixture_key(mode);
        let want = f32s(&format!("eager.{key}"));
        let raw = common::max_diff(&got, &want);
        let norm = common::max_diff(&normalise(&got, hidden), &normalise(&want, hidden));
        let sdpa = common::max_diff(
            &normalise(&got, hidden),
            &normalise(&f32s(&format!("sdpa.{key}")), hidden),
        );
        eprintln!(
            "{mode}: max abs diff raw pooler {raw:.3e}, normalised {norm:.3e} (vs sdpa {sdpa:.3e}); forward {dt:.2?}"
        );
        worst = worst.max(norm);
    }
    assert!(worst <= 1e-4, "normalised features differ by {worst:e}");
}
