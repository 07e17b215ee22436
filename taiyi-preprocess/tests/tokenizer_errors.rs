//! Loading rules and error paths of `BertTokenizer`: every bad input gives its own error,
//! naming the file / key / token at fault.

// Test code: a failed expectation must panic (the workspace lints forbid it in library code).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use taiyi_preprocess::tokenizer::{
    BertTokenizer, DEFAULT_MAX_LENGTH, Padding, REFERENCE_UNICODE_VERSION, TokenizerError,
    TokenizerOptions, Truncation,
};

fn vocab_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer/vocab.txt")
}

fn real() -> BertTokenizer {
    BertTokenizer::from_vocab_file(vocab_path(), TokenizerOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taiyi-tok-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn model_dir(name: &str, config: Option<&str>, special_map: Option<&str>) -> PathBuf {
    let dir = scratch(name);
    std::fs::copy(vocab_path(), dir.join("vocab.txt")).unwrap_or_else(|e| panic!("{e}"));
    if let Some(c) = config {
        std::fs::write(dir.join("tokenizer_config.json"), c).unwrap_or_else(|e| panic!("{e}"));
    }
    if let Some(m) = special_map {
        std::fs::write(dir.join("special_tokens_map.json"), m).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

const TOY: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n";

fn toy(text: &str) -> Result<BertTokenizer, TokenizerError> {
    BertTokenizer::from_vocab_text(
        text,
        Path::new("toy-vocab.txt"),
        TokenizerOptions::default(),
    )
}

#[test]
fn real_vocab_loads_with_expected_ids() {
    let tok = real();
    assert_eq!(tok.vocab_size(), 21128);
    assert_eq!(
        (tok.pad_id(), tok.unk_id(), tok.cls_id(), tok.sep_id()),
        (0, 100, 101, 102)
    );
    assert_eq!(tok.token_to_id("[MASK]"), Some(103));
    // U+2028 is a vocabulary entry, not a line break.
    assert_eq!(tok.token_to_id("\u{2028}"), Some(343));
    assert_eq!(tok.token_to_id("##\u{2028}"), Some(13502));
    assert_eq!(
        tok.convert_ids_to_tokens(&[101, 999_999]),
        ["[CLS]", "[UNK]"]
    );
    assert_eq!(REFERENCE_UNICODE_VERSION, "14.0.0");
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<BertTokenizer>();
}

#[test]
fn missing_vocab_names_the_path() {
    let path = Path::new("/definitely/not/here/vocab.txt");
    let err = BertTokenizer::from_vocab_file(path, TokenizerOptions::default())
        .err()
        .unwrap_or_else(|| panic!("loaded a missing file"));
    assert!(
        matches!(&err, TokenizerError::VocabRead { path: p, .. } if p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("/definitely/not/here/vocab.txt"));
    assert!(
        std::error::Error::source(&err).is_some(),
        "io error kept as source"
    );
    let err = BertTokenizer::from_model_dir("/definitely/not/here").err();
    assert!(
        matches!(err, Some(TokenizerError::VocabRead { .. })),
        "{err:?}"
    );
}

#[test]
fn malformed_vocabularies_are_rejected() {
    let dup = toy("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\na\n").err();
    assert!(
        matches!(&dup, Some(TokenizerError::DuplicateVocabEntry { token, first_line: 6, line: 8, .. }) if token == "a"),
        "{dup:?}"
    );
    let no_cls = toy("[PAD]\n[UNK]\n[SEP]\n[MASK]\na\n").err();
    assert!(
        matches!(&no_cls, Some(TokenizerError::MissingSpecialToken { token, role: "cls_token", .. }) if token == "[CLS]"),
        "{no_cls:?}"
    );
    assert!(no_cls.is_some_and(|e| e.to_string().contains("[CLS]")));
    for (missing, vocab) in [
        ("[PAD]", "[UNK]\n[CLS]\n[SEP]\n[MASK]\n"),
        ("[UNK]", "[PAD]\n[CLS]\n[SEP]\n[MASK]\n"),
        ("[SEP]", "[PAD]\n[UNK]\n[CLS]\n[MASK]\n"),
    ] {
        let err = toy(vocab).err();
        assert!(
            matches!(&err, Some(TokenizerError::MissingSpecialToken { token, .. }) if token == missing),
            "{err:?}"
        );
    }
    assert!(matches!(
        toy("").err(),
        Some(TokenizerError::VocabEmpty { .. })
    ));
    let dir = scratch("badutf8");
    let bad = dir.join("vocab.txt");
    std::fs::write(&bad, b"[PAD]\n\xff\xfe\n").unwrap_or_else(|e| panic!("{e}"));
    let err = BertTokenizer::from_vocab_file(&bad, TokenizerOptions::default()).err();
    assert!(
        matches!(&err, Some(TokenizerError::VocabNotUtf8 { path, .. }) if path == &bad),
        "{err:?}"
    );
}

#[test]
fn vocab_lines_follow_python_universal_newlines() {
    let lf = toy(TOY).unwrap_or_else(|e| panic!("{e}"));
    let crlf = toy(&TOY.replace('\n', "\r\n")).unwrap_or_else(|e| panic!("{e}"));
    let cr = toy(&TOY.replace('\n', "\r")).unwrap_or_else(|e| panic!("{e}"));
    let no_final_newline = toy(TOY.trim_end()).unwrap_or_else(|e| panic!("{e}"));
    for t in [&crlf, &cr, &no_final_newline] {
        assert_eq!(t.vocab_size(), 6);
        assert_eq!(t.token_to_id("a"), Some(5));
    }
    assert_eq!(lf.vocab_size(), 6);
    // Other whitespace is part of the entry (Python only strips "\n").
    let spaced = toy("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na \n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spaced.token_to_id("a "), Some(5));
    assert_eq!(spaced.token_to_id("a"), None);
}

#[test]
fn empty_batch_ragged_batch_and_tiny_lengths_are_errors() {
    let tok = real();
    let none: [&str; 0] = [];
    assert!(matches!(
        tok.encode_batch(&none, Padding::Longest, Truncation::None),
        Err(TokenizerError::EmptyBatch)
    ));
    let ragged = tok.encode_batch(&["一只猫", "一"], Padding::None, Truncation::None);
    assert!(
        matches!(
            ragged,
            Err(TokenizerError::RaggedBatch {
                first: 5,
                row: 1,
                len: 3
            })
        ),
        "{ragged:?}"
    );
    let same = tok
        .encode_batch(&["猫"], Padding::None, Truncation::None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(same.seq_len, 3);
    for (p, t) in [
        (Padding::Fixed(1), Truncation::None),
        (Padding::Longest, Truncation::MaxLength(0)),
    ] {
        assert!(matches!(
            tok.encode_batch(&["x"], p, t),
            Err(TokenizerError::MaxLengthTooSmall { .. })
        ));
    }
    let opts = TokenizerOptions {
        max_length: 1,
        ..TokenizerOptions::default()
    };
    assert!(matches!(
        BertTokenizer::from_vocab_file(vocab_path(), opts),
        Err(TokenizerError::MaxLengthTooSmall { max_length: 1 })
    ));
    // Fixed(2): only [CLS] [SEP] survive.
    let two = tok
        .encode_batch(&["一只猫"], Padding::Fixed(2), Truncation::None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(two.ids, [101, 102]);
}

#[test]
fn very_long_text_never_exceeds_max_length() {
    let tok = real();
    let text = "猫".repeat(100_000);
    let enc = tok.encode(&text);
    assert_eq!(enc.ids.len(), DEFAULT_MAX_LENGTH);
    assert_eq!(enc.ids.last(), Some(&102));
    let b = tok
        .encode_batch(
            &[text.as_str(), "x"],
            Padding::Longest,
            Truncation::ModelMax,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.seq_len, 512);
    assert_eq!(&b.attention_mask[512..512 + 4], &[1, 1, 1, 0]);
}

#[test]
fn model_dir_reads_tokenizer_config() {
    // No config files at all: defaults (lowercasing, 512).
    let plain = BertTokenizer::from_model_dir(model_dir("plain", None, None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.options(), &TokenizerOptions::default());
    // The Taiyi-style config: absurd model_max_length falls back to 512.
    let cfg = r#"{"do_lower_case": true, "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "BertTokenizer"}"#;
    let tok = BertTokenizer::from_model_dir(model_dir("taiyi", Some(cfg), None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.options().max_length, 512);
    assert!(tok.options().do_lower_case);
    // Cased with a 77 limit.
    let cased = BertTokenizer::from_model_dir(model_dir(
        "cased",
        Some(r#"{"do_lower_case": false, "model_max_length": 77}"#),
        None,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cased.options().max_length, 77);
    assert_eq!(cased.tokenize("Hello"), ["[UNK]"]);
    assert_eq!(tok.tokenize("Hello"), ["hello"]);
    assert_eq!(cased.encode(&"x ".repeat(200)).ids.len(), 77);
    // AddedToken dicts for special tokens are read; special_tokens_map applies without added_tokens_decoder.
    let dict_cfg = r#"{"cls_token": {"content": "[CLS]", "lstrip": false, "rstrip": false, "single_word": false, "normalized": false}}"#;
    let map = r#"{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}"#;
    assert!(BertTokenizer::from_model_dir(model_dir("dict", Some(dict_cfg), Some(map))).is_ok());
    // A special token missing from the vocabulary (named by special_tokens_map.json) is an error naming it.
    let odd_map = r#"{"mask_token": "<mask>"}"#;
    let err = BertTokenizer::from_model_dir(model_dir("oddmap", None, Some(odd_map))).err();
    assert!(
        matches!(&err, Some(TokenizerError::MissingSpecialToken { token, role: "mask_token", .. }) if token == "<mask>"),
        "{err:?}"
    );
}

#[test]
fn bad_tokenizer_configs_are_errors_naming_file_and_key() {
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("json", "{not json", None),
        ("root", "[1, 2]", Some("<root>")),
        (
            "lower",
            r#"{"do_lower_case": "yes"}"#,
            Some("do_lower_case"),
        ),
        (
            "maxlen",
            r#"{"model_max_length": "512"}"#,
            Some("model_max_length"),
        ),
        (
            "lstrip",
            r#"{"mask_token": {"content": "[MASK]", "lstrip": true}}"#,
            Some("mask_token"),
        ),
        (
            "additional",
            r#"{"additional_special_tokens": ["<x>"]}"#,
            Some("additional_special_tokens"),
        ),
    ];
    for (name, cfg, key) in cases {
        let dir = model_dir(name, Some(cfg), None);
        let err = BertTokenizer::from_model_dir(&dir)
            .err()
            .unwrap_or_else(|| panic!("{name}: config accepted"));
        let msg = err.to_string();
        assert!(msg.contains("tokenizer_config.json"), "{name}: {msg}");
        match key {
            None => assert!(
                matches!(err, TokenizerError::ConfigJson { .. }),
                "{name}: {err:?}"
            ),
            Some(k) => {
                assert!(
                    matches!(&err, TokenizerError::ConfigValue { key, .. } if key == k),
                    "{name}: {err:?}"
                )
            }
        }
    }
}
