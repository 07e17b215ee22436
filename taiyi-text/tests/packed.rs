//! Packed batches are batch-invariant by construction: a text's outputs are the same, bit for
//! bit, whatever it is packed with (alone, with short or long texts, first, last, in batches of
//! any size), in f32 and with bf16-prepacked weights; and they equal the padded, masked forward
//! to f32 rounding.
//!
//! The model is random (burn's init), sized so that the CPU gemm meets its shape-dependent paths:
//! products of one row (the pooler of one text: a gemv, which sums all of k in one pass), of a
//! few rows (short texts), and of hundreds of rows on rayon (whole batches), with k = 544 and
//! 600, past its 512-deep k-blocks (as BERT-large's 1024). Without the row padding of
//! `taiyi-nn/src/flex/gemm.rs` this test fails (the pooler of a text alone differs).
//! Ids and lengths come from a fixed-seed generator.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use taiyi_nn::CpuKernel;
use taiyi_preprocess::tokenizer::PackedEncoding;
use taiyi_text::{BertConfig, BertModel};

type B = Flex;

fn config() -> BertConfig {
    BertConfig {
        vocab_size: 500,
        hidden_size: 544,
        num_hidden_layers: 2,
        num_attention_heads: 8,
        intermediate_size: 600,
        max_position_embeddings: 128,
        ..BertConfig::tiny()
    }
}

/// A fixed-seed xorshift generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `n` texts of 2..=max tokens: `[CLS]` (101 % vocab) … `[SEP]`.
fn texts(rng: &mut Rng, n: usize, max: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            let len = 2 + rng.below(max - 1);
            let mut ids = vec![101u32];
            ids.extend((2..len).map(|_| 1 + rng.below(498) as u32));
            ids.push(102);
            ids
        })
        .collect()
}

/// Pooler outputs and last hidden rows of `rows` packed together, as f32 bits per text.
fn packed(model: &BertModel<B>, rows: &[&Vec<u32>]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let enc = PackedEncoding::from_rows(rows.iter().map(|r| r.as_slice()));
    enc.check(500, 128).expect("valid batch");
    let t = enc.to_tensors::<B>(&Default::default());
    let out = model.forward_packed(t.ids, t.positions, &t.offsets);
    let bits = |x: Tensor<B, 2>| -> Vec<Vec<u32>> {
        let [n, h] = x.dims();
        let v: Vec<u32> = x.into_data().iter::<f32>().map(f32::to_bits).collect();
        assert_eq!(v.len(), n * h);
        v.chunks(h).map(<[u32]>::to_vec).collect()
    };
    let pooled = bits(out.pooler_output);
    let [_, total, h] = out.last_hidden_state.dims();
    let hidden = bits(out.last_hidden_state.reshape([total, h]));
    let per_text = enc
        .offsets
        .windows(2)
        .map(|w| hidden[w[0]..w[1]].concat())
        .collect();
    (pooled, per_text)
}

/// Every composition gives each text its lone outputs.
fn assert_invariant(model: &BertModel<B>, what: &str) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let all = texts(&mut rng, 24, 100);
    let alone: Vec<_> = all.iter().map(|t| packed(model, &[t])).collect();
    let mut compositions: Vec<Vec<usize>> =
        vec![(0..all.len()).collect(), (0..all.len()).rev().collect()];
    for size in [2, 3, 5, 8, 13] {
        for _ in 0..4 {
            let mut pick: Vec<usize> = (0..size).map(|_| rng.below(all.len())).collect();
            pick.dedup();
            compositions.push(pick);
        }
    }
    for pick in &compositions {
        let rows: Vec<&Vec<u32>> = pick.iter().map(|&i| &all[i]).collect();
        let (pooled, hidden) = packed(model, &rows);
        for (k, &i) in pick.iter().enumerate() {
            assert!(
                pooled[k] == alone[i].0[0] && hidden[k] == alone[i].1[0],
                "{what}: text {i} ({} tokens) packed at {k} of {pick:?} differs from alone",
                all[i].len()
            );
        }
    }
}

#[test]
fn packed_texts_are_their_lone_selves_bit_for_bit() {
    let model = BertModel::<B>::new(&config(), &Default::default()).expect("valid config");
    assert_invariant(&model, "f32");
}

#[test]
fn packed_texts_are_their_lone_selves_with_bf16_weights() {
    if CpuKernel::selected().is_err() {
        eprintln!("skipped: no bf16 kernel on this CPU");
        return;
    }
    let mut model = BertModel::<B>::new(&config(), &Default::default()).expect("valid config");
    model.prepack_bf16().expect("prepacks on Flex");
    assert_invariant(&model, "bf16");
}

/// Packed equals the padded forward under the mask (the same function, other summation order
/// for padded rows): within 2e-5 on the tanh pooler output, whose values are in [-1, 1].
#[test]
fn packed_equals_the_padded_masked_forward() {
    let model = BertModel::<B>::new(&config(), &Default::default()).expect("valid config");
    let mut rng = Rng(42);
    let all = texts(&mut rng, 9, 60);
    let rows: Vec<&Vec<u32>> = all.iter().collect();
    let enc = PackedEncoding::from_rows(rows.iter().map(|r| r.as_slice()));
    let t = enc.to_tensors::<B>(&Default::default());
    let got = model
        .forward_packed(t.ids, t.positions, &t.offsets)
        .pooler_output;
    let seq = all.iter().map(Vec::len).max().unwrap();
    let (mut ids, mut mask) = (vec![0i64; all.len() * seq], vec![0i64; all.len() * seq]);
    for (r, text) in all.iter().enumerate() {
        for (c, &id) in text.iter().enumerate() {
            ids[r * seq + c] = i64::from(id);
            mask[r * seq + c] = 1;
        }
    }
    let shape = [all.len(), seq];
    let device = Default::default();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
    let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, shape), &device);
    let want = model.forward(ids, Some(mask)).pooler_output;
    let diff = (got - want).abs().max().into_scalar();
    assert!(diff <= 2e-5, "packed vs padded+mask: max |diff| {diff}");
}
