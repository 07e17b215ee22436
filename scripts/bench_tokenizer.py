#!/usr/bin/env python3
"""Time the Python tokenizers on the texts of the Rust bench (taiyi-preprocess/benches/tokenize.rs).

Texts: the first 2,000 `cfg == "lower"` lines of fixtures/tokenizer/corpus_prose.jsonl.gz and of
corpus_synth.jsonl.gz. Timed: the slow BertTokenizer (the reference) one text at a time and as one
padded batch, and the Rust-backed BertTokenizerFast (HF `tokenizers`) built from the same vocab,
whose id mismatches against the slow tokenizer are counted too.

    /work/.venv/bin/python scripts/bench_tokenizer.py
"""
import gzip
import json
import time
from pathlib import Path

import transformers
from transformers import BertTokenizer, BertTokenizerFast

transformers.logging.set_verbosity_error()
FIX = Path(__file__).resolve().parent.parent / "fixtures" / "tokenizer"
N = 2000


def texts(name):
    out = []
    with gzip.open(FIX / name, "rt", encoding="utf-8") as f:
        for line in f:
            v = json.loads(line)
            if v["cfg"] == "lower":
                out.append(v["text"])
                if len(out) == N:
                    break
    return out


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


slow = BertTokenizer(str(FIX / "vocab.txt"))
fast = BertTokenizerFast(str(FIX / "vocab.txt"))
print(f"transformers {transformers.__version__}")
for label, name in [("prose", "corpus_prose.jsonl.gz"), ("synth", "corpus_synth.jsonl.gz")]:
    ts = texts(name)
    n = len(ts)
    r = {
        "slow encode_each": best_of(lambda: [slow(t, truncation=True, max_length=512) for t in ts]),
        "slow batch_longest": best_of(lambda: slow(ts, padding=True, truncation=True, max_length=512)),
        "fast encode_each": best_of(lambda: [fast(t, truncation=True, max_length=512) for t in ts]),
        "fast batch_longest": best_of(lambda: fast(ts, padding=True, truncation=True, max_length=512)),
    }
    mism = sum(slow(t)["input_ids"] != fast(t)["input_ids"] for t in ts)
    for k, s in r.items():
        print(f"{label:5s} {k:20s} {n / s:12.0f} texts/s  ({s * 1e3:.1f} ms for {n} texts)")
    print(f"{label:5s} fast tokenizer id mismatches vs slow: {mism}/{n}")
