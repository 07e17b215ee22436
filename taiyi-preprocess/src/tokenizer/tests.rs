//! Unit tests of the tokenizer on a toy vocabulary.

use std::path::Path;

use super::*;

fn toy() -> BertTokenizer {
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##b\n,\n猫\n";
    BertTokenizer::from_vocab_text(vocab, Path::new("toy"), TokenizerOptions::default())
        .unwrap_or_else(|e| unreachable!("{e}"))
}

#[test]
fn wordpiece_greedy_and_unk() {
    let t = toy();
    assert_eq!(t.tokenize("unaffable"), ["un", "##aff", "##able"]);
    assert_eq!(
        t.tokenize("UNAFFABLE,a猫"),
        ["un", "##aff", "##able", ",", "a", "猫"]
    );
    assert_eq!(t.tokenize("unaffablex"), ["[UNK]"]);
    // Exactly 100 chars is still split, 101 chars is one [UNK].
    let ok = format!("a{}", "b".repeat(99));
    let mut expect = vec![8u32];
    expect.extend(std::iter::repeat_n(9u32, 99));
    assert_eq!(t.token_ids(&ok), expect);
    assert_eq!(t.tokenize(&format!("a{}", "b".repeat(100))), ["[UNK]"]);
}

#[test]
fn truncation_keeps_sep_last() {
    let t = toy();
    let long = "a ".repeat(1000);
    let e = t.encode(&long);
    assert_eq!(e.ids.len(), 512);
    assert_eq!(e.ids[0], 2);
    assert_eq!(e.ids[511], 3);
    let b = t
        .encode_batch(&[long.as_str(), "a"], Padding::Fixed(5), Truncation::None)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(b.ids, [2, 8, 8, 8, 3, 2, 8, 3, 0, 0]);
    assert_eq!(b.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
}

#[test]
fn rebatch_repads_selected_rows_and_fills_with_cls_sep() {
    let t = toy();
    // "a" → [CLS] a [SEP]; "unaffable" → [CLS] un ##aff ##able [SEP].
    let enc = t
        .encode_batch(&["a", "unaffable"], Padding::Longest, Truncation::None)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(enc.seq_len, 5);
    let b = t.rebatch(&enc, &[1, 0], 6, 3);
    assert_eq!((b.batch_size, b.seq_len), (3, 6));
    assert_eq!(
        b.ids,
        [2, 5, 6, 7, 3, 0, 2, 8, 3, 0, 0, 0, 2, 3, 0, 0, 0, 0]
    );
    assert_eq!(
        b.attention_mask,
        [1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    );
    // Shorter than a row: its first `seq_len` ids are kept.
    let cut = t.rebatch(&enc, &[1], 3, 1);
    assert_eq!(
        (cut.ids, cut.attention_mask),
        (vec![2, 5, 6], vec![1, 1, 1])
    );
}
