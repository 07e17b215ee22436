//! Any bytes as text (lossy UTF-8) through the BERT tokenizer, one text and batches: ids stay in
//! the vocabulary, rows keep their length limits, nothing panics or hangs.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, TokenizerOptions, Truncation};

fn tokenizer() -> &'static BertTokenizer {
    static T: OnceLock<BertTokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let vocab = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/tokenizer/vocab.txt"
        );
        BertTokenizer::from_vocab_file(vocab, TokenizerOptions::default())
            .expect("the committed vocabulary loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tokenizer();
    let text = String::from_utf8_lossy(data);
    let vocab = t.vocab_size() as u32;
    let one = t.encode(&text);
    assert!(one.ids.len() >= 2 && one.ids.len() <= t.options().max_length);
    assert!(one.ids.iter().all(|&i| i < vocab));
    assert_eq!(one.ids.len(), one.attention_mask.len());
    // A batch of the text's lines, padded three ways.
    let lines: Vec<&str> = text.split('\n').take(8).collect();
    for (padding, truncation) in [
        (Padding::Longest, Truncation::None),
        (Padding::Longest, Truncation::MaxLength(16)),
        (Padding::Fixed(77), Truncation::ModelMax),
    ] {
        if let Ok(b) = t.encode_batch(&lines, padding, truncation) {
            for row in 0..lines.len() {
                let ids = b.row_ids(row).expect("one row per text");
                let mask = b.row_mask(row).expect("one mask per text");
                assert_eq!(ids.len(), mask.len());
                assert!(ids.iter().all(|&i| i < vocab));
            }
        }
    }
});
