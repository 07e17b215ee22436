//! `TextEncoder` in `masked` mode on the CPU runs packed batches: each text's feature is the
//! one it gets alone, bit for bit, whatever the call, the chunk size or the order; the
//! pre-tokenized entry (`encode_token_rows`, the server's) gives the same bits as `encode`.
//! The tiny fixture model (fixtures/text/tiny); PyTorch parity of the masked mode is
//! `tests/clip_parity.rs::text_encoder_applies_each_mode_as_pytorch`.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use burn::backend::Flex;
use burn::tensor::Tensor;
use taiyi_core::{EncodeOptions, TextEncoder, TextMode};

type B = Flex;

fn encoder() -> TextEncoder<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/text/tiny");
    TextEncoder::<B>::from_dir(dir, &Default::default())
        .expect("tiny text model")
        .with_mode(TextMode::Masked)
}

fn rows(x: Tensor<B, 2>) -> Vec<Vec<u32>> {
    let [_, d] = x.dims();
    let v: Vec<u32> = x.into_data().iter::<f32>().map(f32::to_bits).collect();
    v.chunks(d).map(<[u32]>::to_vec).collect()
}

const TEXTS: [&str; 9] = [
    "一只猫",
    "一只狗在草地上奔跑",
    "海边的日落，天空被染成了橙红色，远处有几只海鸥在飞翔",
    "熊猫",
    "A photo of 北京天安门 at night.",
    "两只老虎，两只老虎，跑得快！",
    "雪",
    "一位穿着红色连衣裙的女士站在海边，看着远处的帆船和落日余晖。",
    "城市夜景",
];

#[test]
fn masked_features_do_not_depend_on_the_batch() {
    let enc = encoder();
    assert!(enc.packs(), "masked mode on Flex runs packed");
    let options = EncodeOptions::default();
    let alone: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|t| rows(enc.encode(&[*t], &options).expect("one text")).remove(0))
        .collect();
    for batch in [1, 2, 3, 4, 32] {
        let e = enc.clone().with_batch_size(batch);
        let got = rows(e.encode(&TEXTS, &options).expect("all texts"));
        assert_eq!(got, alone, "batch size {batch}");
        // Reversed, with duplicates: still each text's own bits.
        let mixed: Vec<&str> = TEXTS.iter().rev().chain(&TEXTS[..3]).copied().collect();
        let got = rows(e.encode(&mixed, &options).expect("mixed"));
        for (text, row) in mixed.iter().zip(&got) {
            let i = TEXTS.iter().position(|t| t == text).expect("known text");
            assert_eq!(row, &alone[i], "batch size {batch}, text {text}");
        }
    }
    // Raw features too (the pooler output before normalisation).
    let raw: Vec<Vec<u32>> = rows(enc.encode(&TEXTS, &EncodeOptions::raw()).expect("raw"));
    let raw_alone = rows(
        enc.encode(&[TEXTS[2]], &EncodeOptions::raw())
            .expect("raw one"),
    );
    assert_eq!(raw[2], raw_alone[0]);
}

#[test]
fn token_rows_give_the_features_of_the_texts() {
    let enc = encoder();
    let options = EncodeOptions::default();
    let max = enc.max_tokens();
    let ids: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|t| enc.tokenizer().encode_truncated(t, max))
        .collect();
    let from_ids = rows(enc.encode_token_rows(&ids, &options).expect("token rows"));
    let from_texts = rows(enc.encode(&TEXTS, &options).expect("texts"));
    assert_eq!(from_ids, from_texts);
    // The same through the padded modes.
    for mode in [TextMode::Fixed77, TextMode::ModelCard] {
        let e = enc.clone().with_mode(mode);
        let max = e.max_tokens();
        let ids: Vec<Vec<u32>> = TEXTS
            .iter()
            .map(|t| e.tokenizer().encode_truncated(t, max))
            .collect();
        assert_eq!(
            rows(e.encode_token_rows(&ids, &options).expect("rows")),
            rows(e.encode(&TEXTS, &options).expect("texts")),
            "{mode}"
        );
    }
    // Rows the tokenizer cannot have made are errors, not panics.
    let long = vec![101u32; max + 1];
    assert!(enc.encode_token_rows(&[long], &options).is_err());
    assert!(enc.encode_token_rows(&[vec![101u32]], &options).is_err());
    assert!(
        enc.encode_token_rows(&[vec![101u32, 999_999, 102]], &options)
            .is_err()
    );
    assert!(enc.encode_token_rows::<Vec<u32>>(&[], &options).is_err());
}
