"""`taiyi search --query-vectors` against the exact top-k that scripts/gen_vectors.py (the
committed generator of CLIP-shaped test collections) computes with numpy."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli


def test_query_vectors_equal_the_generators_exact_top_k(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_vectors.py"), str(tmp_path),
                    "--n", "3000", "--queries", "20", "--top-k", "5", "--dim", "96",
                    "--intrinsic", "12", "--chunk", "700"], check=True, capture_output=True)
    out = run_cli("search", "--plain-npy", "--index", tmp_path / "base.npy",
                  "--query-vectors", tmp_path / "queries.npy", "--top-k", "5").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    truth = np.load(tmp_path / "truth.npy")
    scores = np.load(tmp_path / "truth_scores.npy")
    assert [line["query"] for line in lines] == list(range(20))
    for line, rows, s in zip(lines, truth, scores):
        assert [h["row"] for h in line["hits"]] == rows.tolist()
        assert [h["name"] for h in line["hits"]] == [str(r) for r in rows]
        np.testing.assert_allclose([h["score"] for h in line["hits"]], s, atol=1e-5)


def _collection(tmp_path, n):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_vectors.py"), str(tmp_path),
                    "--n", str(n), "--queries", "30", "--top-k", "10", "--dim", "96",
                    "--intrinsic", "12", "--manifest"], check=True, capture_output=True)
    return tmp_path / "base.npy"


def test_search_index_through_the_graph_and_exactly(tmp_path):
    import taiyi

    base = _collection(tmp_path, 6000)
    run_cli("index", "build", base)
    queries = np.load(tmp_path / "queries.npy")
    truth = np.load(tmp_path / "truth.npy")
    scores = np.load(tmp_path / "truth_scores.npy")

    exact = taiyi.SearchIndex(base, exact=True)
    assert (exact.kind, exact.rows, exact.dim, len(exact)) == ("exact", 6000, 96, 6000)
    for hits, rows, s in zip(exact.search(queries), truth, scores):
        assert [h["row"] for h in hits] == rows.tolist()
        assert [h["name"] for h in hits] == [exact.names[r] for r in rows]
        np.testing.assert_allclose([h["score"] for h in hits], s, atol=1e-5)

    ann = taiyi.SearchIndex(str(base))
    assert ann.kind == "ann" and ann.info()["ann"]["rows"] == 6000
    found = [[h["row"] for h in hits] for hits in ann.search(queries, top_k=10)]
    recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.95, recall
    # One query: one list of hits, scored by exact cosine, queries normalised here.
    one = ann.search(queries[0] * 3.0, top_k=3)
    assert len(one) == 3 and one[0]["score"] >= one[1]["score"] >= one[2]["score"]
    rows = np.load(base)
    q = queries[0] / np.linalg.norm(queries[0])
    np.testing.assert_allclose([h["score"] for h in one], [rows[h["row"]] @ q for h in one],
                               atol=1e-5)


def test_search_index_refusals(tmp_path):
    import taiyi

    base = _collection(tmp_path, 500)
    index = taiyi.SearchIndex(base)
    assert index.kind == "exact"  # no graph built
    with pytest.raises(taiyi.TaiyiValueError, match="norm"):
        index.search(np.zeros(96, dtype=np.float32))
    with pytest.raises(taiyi.TaiyiValueError, match="96-d"):
        index.search(np.ones(95, dtype=np.float32))
    with pytest.raises(taiyi.TaiyiValueError, match="shape"):
        index.search(np.ones((2, 2, 96), dtype=np.float32))
    with pytest.raises(taiyi.TaiyiError):
        taiyi.SearchIndex(tmp_path / "missing.npy")
