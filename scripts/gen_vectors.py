#!/usr/bin/env python3
"""Synthetic embedding collections with the shape of real CLIP features, for search tests and
benchmarks (issue 27): no model needed, any size, exact answers included.

Real CLIP image embeddings are not uniform on the sphere: they share a strong mean direction
(random pairs have cosine ~0.2-0.5) and vary in a subspace of low intrinsic dimension. Rows here
are

    x = normalize(m * u + A z + sigma * e),   z ~ N(0, I_k),  e ~ N(0, I_d / d)

with u a fixed unit vector, A = Q diag(s) (Q: d x k orthonormal columns, s_i proportional to
(i + 1)^-alpha, scaled so that E|A z|^2 = 1). Defaults: d 1024, k 64, alpha 0.5, m 0.6, sigma 0.15,
seed 0. Queries are held-out draws of the same distribution.

Writes, into OUT/:
  base.npy     [n, d] float32, rows L2-normalised (usable as `taiyi search --plain-npy --index`)
  queries.npy  [q, d] float32, L2-normalised (`taiyi search --query-vectors`)
  truth.npy    [q, K] int64, the exact top-K rows of each query by cosine (ties: lower row first)
  truth_scores.npy [q, K] float32, their cosines
  base.npy.names.json  with --manifest: the manifest `taiyi embed-image` writes (rows named
               img_0000000.jpg ...; normalized; the .npy's SHA-256), so base.npy is an index
               for `taiyi search --index` and `taiyi index build` (and no longer --plain-npy)
and prints one JSON line of statistics (mean random-pair cosine, mean top-1 / top-K cosine).

    python3 scripts/gen_vectors.py OUT --n 1000000 --queries 1000 --top-k 10

Generated in chunks (memory ~ 2 x chunk x d x 4 bytes plus the queries), written through
np.lib.format.open_memmap, so 1M x 1024 (4 GB) needs no 4 GB of RAM. Needs numpy only.
"""

import argparse
import json
import os

import numpy as np


def write_manifest(npy, n, d):
    """The manifest of taiyi's EmbeddingIndex (format taiyi-embedding-index, version 1)."""
    import hashlib
    h = hashlib.sha256()
    with open(npy, "rb") as f:
        for piece in iter(lambda: f.read(1 << 22), b""):
            h.update(piece)
    manifest = {
        "format": "taiyi-embedding-index", "version": 1, "rows": n, "dim": d,
        "normalized": True, "npy_sha256": h.hexdigest(),
        "names": [f"img_{i:07d}.jpg" for i in range(n)], "skipped": [],
    }
    with open(npy + ".names.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--intrinsic", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--mean", type=float, default=0.6)
    ap.add_argument("--sigma", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--manifest", action="store_true",
                    help="write base.npy.names.json: base.npy becomes a taiyi index")
    a = ap.parse_args()
    if a.n < 1 or a.queries < 1 or not 1 <= a.top_k <= a.n or not 1 <= a.intrinsic <= a.dim:
        raise SystemExit("need n >= 1, queries >= 1, 1 <= top-k <= n, 1 <= intrinsic <= dim")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    d, k = a.dim, a.intrinsic
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    s = (np.arange(k) + 1.0) ** -a.alpha
    s /= np.sqrt((s ** 2).sum())
    basis = (q * s).T.astype(np.float32)  # [k, d]: z @ basis = (A z)^T
    mean = (a.mean * u).astype(np.float32)

    def draw(gen, rows):
        z = gen.standard_normal((rows, k), dtype=np.float32)
        e = gen.standard_normal((rows, d), dtype=np.float32) * np.float32(a.sigma / np.sqrt(d))
        x = mean + z @ basis + e
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32)

    qgen = np.random.default_rng(a.seed + 1)
    queries = draw(qgen, a.queries)
    np.save(os.path.join(a.out, "queries.npy"), queries)
    base = np.lib.format.open_memmap(os.path.join(a.out, "base.npy"), mode="w+",
                                     dtype=np.float32, shape=(a.n, d))
    best_s = np.full((a.queries, a.top_k), -np.inf, dtype=np.float32)
    best_i = np.zeros((a.queries, a.top_k), dtype=np.int64)
    bgen = np.random.default_rng(a.seed + 2)
    for start in range(0, a.n, a.chunk):
        rows = min(a.chunk, a.n - start)
        x = draw(bgen, rows)
        base[start:start + rows] = x
        scores = queries @ x.T  # [q, rows]
        idx = np.broadcast_to(np.arange(start, start + rows, dtype=np.int64), scores.shape)
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, idx], axis=1)
        # Best first; ties: the lower row first (lexsort's last key is the primary one).
        order = np.lexsort((all_i, -all_s), axis=1)[:, :a.top_k]
        best_s = np.take_along_axis(all_s, order, axis=1)
        best_i = np.take_along_axis(all_i, order, axis=1)
    base.flush()
    np.save(os.path.join(a.out, "truth.npy"), best_i)
    np.save(os.path.join(a.out, "truth_scores.npy"), best_s)
    if a.manifest:
        write_manifest(os.path.join(a.out, "base.npy"), a.n, d)
    pairs = min(a.n, 2000)
    sample = np.asarray(base[:pairs])
    cos = sample[: pairs // 2] @ sample[pairs // 2: 2 * (pairs // 2)].T
    print(json.dumps({
        "out": a.out, "n": a.n, "dim": d, "queries": a.queries, "top_k": a.top_k,
        "intrinsic": k, "alpha": a.alpha, "mean": a.mean, "sigma": a.sigma, "seed": a.seed,
        "random_pair_cosine": round(float(cos.mean()), 4),
        "top1_cosine": round(float(best_s[:, 0].mean()), 4),
        "topk_cosine": round(float(best_s[:, -1].mean()), 4),
    }))


if __name__ == "__main__":
    main()
