"""`taiyi search --query-vectors` against the exact top-k that scripts/gen_vectors.py (the
committed generator of CLIP-shaped test collections) computes with numpy."""

import json
import subprocess
import sys

import numpy as np

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
