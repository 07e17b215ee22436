//! `taiyi index build` and `taiyi search` through the ANN graph (issue 27), on a generated
//! collection of 6000 rows (past the exact-scan size) with a low intrinsic dimension: the graph
//! finds ≥ 95% of the exact top-10 (measured 99%+ here), its scores are the exact cosines,
//! `--exact` is the exact answer, and an index that changed after its graph was built is an
//! error naming both digests until the graph is rebuilt.

// Tests fail loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use taiyi_core::retrieval::EmbeddingIndex;

/// `n` unit rows of width 32: a mean direction, 6 latent dimensions, noise.
fn rows(n: usize, seed: u32) -> Vec<f32> {
    let d = 32;
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut normal = move || {
        let mut s = 0.0;
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s += (x % 10_000) as f32 / 10_000.0;
        }
        (s - 2.0) * 1.7
    };
    let basis: Vec<f32> = (0..6 * d).map(|_| normal()).collect();
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f32> = (0..6).map(|_| normal()).collect();
        let v: Vec<f32> = (0..d)
            .map(|c| {
                0.5 + (0..6).map(|j| z[j] * basis[j * d + c]).sum::<f32>() * 0.3 + normal() * 0.05
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        out.extend(v.iter().map(|a| a / norm));
    }
    out
}

/// The JSON lines of `--query-vectors`: per query, (row, score) best first.
fn hits(out: &str) -> Vec<Vec<(u64, f64)>> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h["row"].as_u64().unwrap(), h["score"].as_f64().unwrap()))
                .collect()
        })
        .collect()
}

#[test]
fn index_build_then_search_through_the_graph() {
    let dir = scratch("ann-cli");
    let npy = dir.join("idx.npy");
    let q = dir.join("q.npy");
    let n = 6000;
    let all = rows(n + 40, 7);
    let names: Vec<String> = (0..n).map(|i| format!("photo{i}.jpg")).collect();
    EmbeddingIndex::write(&npy, 32, &all[..n * 32], &names, true, &[]).unwrap();
    taiyi_core::npy::write_f32(&q, &[40, 32], &all[n * 32..]).unwrap();
    let (npy_s, q_s) = (s(&npy), s(&q));
    let search = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "--index",
            &npy_s,
            "--query-vectors",
            &q_s,
            "--top-k",
            "10",
        ];
        args.extend_from_slice(extra);
        taiyi(&args)
    };

    // No graph yet: every row scored, no latency line.
    let r = search(&[]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!stderr(&r).contains("searched"), "{}", stderr(&r));
    let exact = hits(&String::from_utf8_lossy(&r.stdout));

    // Build: a JSON report, the file beside the index.
    let report: serde_json::Value = serde_json::from_str(&ok(&["index", "build", &npy_s])).unwrap();
    assert_eq!(report["header"]["rows"], n);
    assert_eq!(report["header"]["dim"], 32);
    assert_eq!(report["header"]["params"]["quantization"], "i8");
    assert!(dir.join("idx.npy.ann").is_file());
    assert!(litter(&dir).is_empty(), "{:?}", litter(&dir));

    // Through the graph: ≥ 95% of the exact top-10, exact scores, best first.
    let r = search(&[]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("searched 40 queries through"),
        "{}",
        stderr(&r)
    );
    let ann = hits(&String::from_utf8_lossy(&r.stdout));
    let mut found = 0;
    for (a, e) in ann.iter().zip(&exact) {
        let truth: HashMap<u64, f64> = e.iter().copied().collect();
        for (row, score) in a {
            if let Some(t) = truth.get(row) {
                found += 1;
                // The exact search scores by a matrix product, the re-rank by one dot product:
                // the same cosine up to f32 summation order.
                assert!(
                    (score - t).abs() < 1e-6,
                    "the re-rank gives the exact score"
                );
            }
        }
        assert!(a.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    assert!(
        found as f64 / 400.0 >= 0.95,
        "recall@10 {}",
        found as f64 / 400.0
    );
    // --exact is the exact answer; the f16 graph works too.
    assert_eq!(
        hits(&ok(&[
            "search",
            "--index",
            &npy_s,
            "--query-vectors",
            &q_s,
            "--exact"
        ])),
        exact
    );
    ok(&[
        "index",
        "build",
        &npy_s,
        "--quantization",
        "f16",
        "--connectivity",
        "16",
    ]);
    let r = search(&["--expansion-search", "64"]);
    assert!(r.status.success(), "{}", stderr(&r));
    // A graph over 8 principal directions (6 latent ones + the mean here): the report shows
    // the projection, the re-rank still gives the exact scores.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["index", "build", &npy_s, "--reduce-dim", "8"])).unwrap();
    assert_eq!(report["header"]["projection"]["dim"], 8);
    assert_eq!(report["header"]["params"]["reduce"]["dim"], 8);
    let projected = hits(&String::from_utf8_lossy(&search(&[]).stdout));
    let mut found = 0;
    for (a, e) in projected.iter().zip(&exact) {
        let truth: HashMap<u64, f64> = e.iter().copied().collect();
        for (row, score) in a {
            if let Some(t) = truth.get(row) {
                found += 1;
                assert!((score - t).abs() < 1e-6);
            }
        }
    }
    assert!(
        found as f64 / 400.0 >= 0.95,
        "recall@10 {}",
        found as f64 / 400.0
    );
    let r = taiyi(&["index", "build", &npy_s, "--reduce-dim", "0"]);
    assert_eq!(r.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&r).contains("auto, off or a width > 0"),
        "{}",
        stderr(&r)
    );
    fails(&["index", "build", &npy_s, "--reduce-dim", "33"], "32-d");

    // The index is re-embedded (other rows): the graph is refused, naming both digests.
    let old = report["header"]["npy"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let other = rows(n, 8);
    EmbeddingIndex::write(&npy, 32, &other, &names, true, &[]).unwrap();
    let err = fails(
        &["search", "--index", &npy_s, "--query-vectors", &q_s],
        "now has SHA-256",
    );
    assert!(
        err.contains(&old) && err.contains("taiyi index build"),
        "{err}"
    );
    // --exact still works; a rebuild makes the graph usable again.
    ok(&[
        "search",
        "--index",
        &npy_s,
        "--query-vectors",
        &q_s,
        "--exact",
    ]);
    ok(&["index", "build", &npy_s]);
    ok(&["search", "--index", &npy_s, "--query-vectors", &q_s]);
}

#[test]
fn index_build_refuses_what_it_cannot_index() {
    let dir = scratch("ann-refuse");
    let plain = dir.join("plain.npy");
    taiyi_core::npy::write_f32(&plain, &[2, 2], &[1.0, 0.0, 0.0, 1.0]).unwrap();
    fails(&["index", "build", &s(&plain)], "manifest");
    fails(
        &["index", "build", &s(&dir.join("missing.npy"))],
        "missing.npy",
    );
    let npy = dir.join("idx.npy");
    EmbeddingIndex::write(
        &npy,
        2,
        &[1.0, 0.0, 0.0, 1.0],
        &["a".into(), "b".into()],
        true,
        &[],
    )
    .unwrap();
    fails(
        &["index", "build", &s(&npy), "--connectivity", "1"],
        "connectivity",
    );
    assert!(!dir.join("idx.npy.ann").exists());
    // A foreign .ann beside an index is an error, not a silent exact search.
    std::fs::write(dir.join("idx.npy.ann"), b"not an index").unwrap();
    fails(
        &["search", "--index", &s(&npy), "--query-vectors", &s(&plain)],
        "idx.npy.ann",
    );
    ok(&[
        "search",
        "--index",
        &s(&npy),
        "--query-vectors",
        &s(&plain),
        "--exact",
    ]);
}

/// `index build --from-shards`: the shards of an `--out-dir` run (float16, 3 shards) merged in
/// shard order give the names of the unsharded `--out` run and its rows to float16 precision;
/// a shard that is missing is an error naming it.
#[test]
fn index_build_merges_shards() {
    let dir = scratch("ann-shards");
    let tiny = |extra: &[&str]| {
        let mut args = vec!["--images-dir", "fixtures/jpeg"];
        args.extend_from_slice(extra);
        let r = embed_tiny(&args);
        assert!(r.status.success(), "{}", stderr(&r));
    };
    let (full, sharded, merged) = (dir.join("full.npy"), dir.join("sharded"), dir.join("m.npy"));
    tiny(&["--out", &s(&full)]);
    for i in 0..3 {
        tiny(&["--out-dir", &s(&sharded), "--shard", &format!("{i}/3")]);
    }
    let r = taiyi(&["index", "build", &s(&merged), "--from-shards", &s(&sharded)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("merged 3 shard(s)"), "{}", stderr(&r));
    assert_eq!(manifest(&merged)["names"], manifest(&full)["names"]);
    assert_eq!(manifest(&merged)["normalized"], false);
    let (shape, want) = npy_f32(&full);
    let (shape2, got) = npy_f32(&merged);
    assert_eq!(shape, shape2);
    for (a, b) in want.iter().zip(&got) {
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1e-2), "{a} vs {b}");
    }
    // Each full-run row finds its own merged row at the top (cosine 1 to float16 precision;
    // some fixture images are the same picture in other formats, so ties are allowed).
    let out = ok(&[
        "search",
        "--index",
        &s(&merged),
        "--query-vectors",
        &s(&full),
    ]);
    for (i, line) in hits(&out).iter().enumerate() {
        let own = line
            .iter()
            .find(|h| h.0 == i as u64)
            .expect("own row among the hits");
        assert!(own.1 > 0.999 && own.1 >= line[0].1 - 1e-3, "{i}: {line:?}");
    }
    std::fs::remove_file(sharded.join("shards/shard_1.json")).unwrap();
    fails(
        &["index", "build", &s(&merged), "--from-shards", &s(&sharded)],
        "shard_1.json",
    );
}
