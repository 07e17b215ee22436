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
