#!/usr/bin/env python3
"""Recall@K of `taiyi search --query-vectors` JSON lines against gen_vectors.py's exact top-K.

    taiyi search --index OUT/base.npy --query-vectors OUT/queries.npy --top-k 10 > hits.jsonl
    python3 scripts/ann_recall.py OUT/truth.npy hits.jsonl

Prints one JSON line: {"queries", "k", "recall"}. Needs numpy only.
"""
import json
import sys

import numpy as np


def main():
    truth = np.load(sys.argv[1])
    found = {}
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            found[o["query"]] = [h["row"] for h in o["hits"]]
    k = len(next(iter(found.values())))
    hit = sum(len(set(found[q][:k]) & set(truth[q, :k].tolist())) for q in found)
    print(json.dumps({"queries": len(found), "k": k, "recall": round(hit / (len(found) * k), 4)}))


if __name__ == "__main__":
    main()
