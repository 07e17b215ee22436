//! Whole-tensor parity with transformers 4.57.6 `BertModel` (eager attention, f32, CPU) on the
//! tiny random-weight model of `fixtures/text` (written by `scripts/fixtures/text.py`), for the
//! three text modes, batched and one text at a time.
//!
//! Tolerance: 2e-5 absolute on every element of `last_hidden_state` and `pooler_output`.
//! Both sides compute in f32 from the same f32 weights; the only differences are summation
//! order in the matmuls / LayerNorm reductions and the erf/tanh/exp approximations, each a few
//! ulp (~1e-7 relative). Outputs are O(1) (LayerNorm'd hidden states with gamma ~1±0.2 reach
//! |x| ≈ 4; tanh ≤ 1), two layers deep, so accumulated rounding stays in the 1e-6 range
//! (measured: see the test log). 2e-5 is ~10x headroom yet orders of magnitude below what a
//! semantic error moves: a missing mask moves the pooler by up to 1.0 on these texts
//! (`fixtures_discriminate_the_modes`), an off-by-one position or a swapped LayerNorm far more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use common::{assert_close, expected, fixtures, ints, max_diff};
use taiyi_text::{AttentionKernel, BertModel, TextMode};

const TOL: f32 = 2e-5;

fn tiny<B: Backend>(device: &B::Device) -> BertModel<B> {
    BertModel::<B>::from_pretrained_dir(&fixtures().join("tiny"), device)
        .unwrap()
        .0
}

fn n_texts() -> usize {
    expected()["longest.input_ids"].shape[0]
}

/// Batched forward of one mode against the fixture, on backend `B` with `kernel`.
fn batch_parity<B: Backend>(kernel: AttentionKernel, label: &str) {
    let device = Default::default();
    let model = tiny::<B>(&device).with_attention_kernel(kernel);
    let e = expected();
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
            .try_forward(ints(&e[ids], &device), mask.map(|m| ints(&e[m], &device)))
            .unwrap();
        assert_close(
            &format!("{label} {mode} batch hidden"),
            out.last_hidden_state,
            &e[&format!("{mode}.batch.hidden")],
            TOL,
        );
        assert_close(
            &format!("{label} {mode} batch pooler"),
            out.pooler_output,
            &e[&format!("{mode}.batch.pooler")],
            TOL,
        );
    }
}

#[test]
fn batched_parity_all_modes_flex() {
    batch_parity::<Flex>(AttentionKernel::Matmul, "flex");
}

#[test]
fn batched_parity_all_modes_flex_fused_attention() {
    batch_parity::<Flex>(AttentionKernel::Fused, "flex fused");
}

#[test]
fn batched_parity_all_modes_ndarray() {
    batch_parity::<NdArray>(AttentionKernel::Matmul, "ndarray");
}

#[test]
fn single_text_parity_all_modes() {
    let device = Default::default();
    let model = tiny::<Flex>(&device);
    let e = expected();
    for i in 0..n_texts() {
        let ids = &e[&format!("single.{i}.input_ids")];
        let len = ids.shape[1];
        for mode in [TextMode::ModelCard, TextMode::Fixed77, TextMode::Masked] {
            let name = common::fixture_key(mode);
            let (input, mask) = match mode {
                TextMode::Fixed77 => {
                    // Single text padded/truncated to 77 = that row of the fixed77 batch.
                    let all = &e["fixed77.input_ids"];
                    let row = all.i64[i * 77..(i + 1) * 77].to_vec();
                    let a = common::Array {
                        shape: vec![1, 77],
                        f32: Vec::new(),
                        i64: row,
                    };
                    (ints::<Flex>(&a, &device), None)
                }
                TextMode::ModelCard => (ints::<Flex>(ids, &device), None),
                TextMode::Masked => (
                    ints::<Flex>(ids, &device),
                    Some(burn::tensor::Tensor::<Flex, 2, burn::tensor::Int>::ones(
                        [1, len],
                        &device,
                    )),
                ),
            };
            let out = model.try_forward(input, mask).unwrap();
            assert_close(
                &format!("{name} single {i} hidden"),
                out.last_hidden_state,
                &e[&format!("{name}.single.{i}.hidden")],
                TOL,
            );
            assert_close(
                &format!("{name} single {i} pooler"),
                out.pooler_output,
                &e[&format!("{name}.single.{i}.pooler")],
                TOL,
            );
        }
    }
}

/// The fixtures separate the modes: a test that confused them would fail.
#[test]
fn fixtures_discriminate_the_modes() {
    let e = expected();
    let mc = &e["model_card.batch.pooler"].f32;
    let masked = &e["masked.batch.pooler"].f32;
    let fixed = &e["fixed77.batch.pooler"].f32;
    assert!(max_diff(mc, masked) > 0.1, "model card vs masked");
    assert!(max_diff(masked, fixed) > 0.1, "masked vs fixed77");
    // The batch pads to 81, close to 77: compare a short text alone (no padding) instead.
    assert!(
        max_diff(
            &e["model_card.single.0.pooler"].f32,
            &e["fixed77.single.0.pooler"].f32
        ) > 0.1,
        "model card vs fixed77"
    );
    assert!(max_diff(mc, fixed) > 1e-3, "model card vs fixed77, batched");
    // Masked is batch-invariant in the reference too (single == batched row).
    let h = e["masked.single.0.pooler"].shape[1];
    assert!(max_diff(&e["masked.single.0.pooler"].f32, &masked[..h]) < 1e-5);
    assert!(max_diff(&e["model_card.single.0.pooler"].f32, &mc[..h]) > 0.1);
}
