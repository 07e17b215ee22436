//! The ANN graph's in-place update against a rebuild, on a generated collection
//! (`scripts/gen_vectors.py DIR --manifest`): 1% of the rows removed, 1% added (each a
//! neighbour of a kept row: a copy with noise, normalised), then the graph edited in place
//! ([`AnnIndex::edit`] / `apply`) and, for comparison, built again; recall@10 of both against
//! the exact top 10 of `queries.npy` (its first `QUERIES` rows). BENCHMARKS.md has the numbers.
//!
//! ```text
//! cargo run --release -p taiyi-core --example ann_update -- /work/gv1m /tmp/ann-update [QUERIES]
//! ```
//! `DIR/base.npy` must have its graph (`taiyi index build DIR/base.npy`); WORK receives a
//! copy of the index (as large as `base.npy`, twice while it is rewritten).

use std::path::Path;
use std::time::Instant;

use taiyi_core::ann::AnnIndex;
use taiyi_core::npy::read_f32;
use taiyi_core::retrieval::{EmbeddingIndex, top_k_batch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: ann_update DIR WORK [QUERIES]";
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let work = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let queries: usize = args.next().map_or(Ok(200), |q| q.parse())?;
    std::fs::create_dir_all(&work)?;
    let npy = work.join("idx.npy");
    for (from, to) in [
        ("base.npy", "idx.npy"),
        ("base.npy.names.json", "idx.npy.names.json"),
    ] {
        std::fs::copy(dir.join(from), work.join(to))?;
    }
    std::fs::copy(
        AnnIndex::ann_path(&dir.join("base.npy")),
        AnnIndex::ann_path(&npy),
    )?;

    let t = Instant::now();
    let edit = AnnIndex::edit(&npy)?;
    let read_s = t.elapsed().as_secs_f64();
    let old = EmbeddingIndex::load(&npy)?;
    let (n, d) = old.embeddings.dim();
    let (mut values, mut names, mut origin) = (Vec::new(), Vec::new(), Vec::new());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * 0.02
    };
    for (r, row) in old.embeddings.rows().into_iter().enumerate() {
        if r % 100 == 17 {
            continue; // 1% removed
        }
        values.extend(row.iter());
        names.push(old.names[r].clone());
        origin.push(Some(r));
        if r % 100 == 50 {
            // 1% added: a neighbour of this row.
            let mut v: Vec<f32> = row.iter().map(|a| a + noise()).collect();
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.iter_mut().for_each(|a| *a /= norm);
            values.extend(v);
            names.push(format!("{}-new", old.names[r]));
            origin.push(None);
        }
    }
    drop(old);
    let t = Instant::now();
    EmbeddingIndex::write(&npy, d, &values, &names, true, &[])?;
    let write_s = t.elapsed().as_secs_f64();
    drop(values);
    let done = edit.apply(&npy, &origin)?;
    println!(
        "{n} rows -> {}: graph read for editing {read_s:.2} s, .npy rewritten {write_s:.1} s, \
         graph updated in {:.2} s ({:?})",
        origin.len(),
        done.seconds,
        done.edited
    );
    let recall_edited = recall(&npy, &dir.join("queries.npy"), queries)?;
    let rebuilt = AnnIndex::build(&npy, &done.written.header.params)?;
    println!(
        "rebuild of the same rows: {:.1} s; update = {:.1}% of it",
        rebuilt.header.build_seconds,
        100.0 * done.seconds / rebuilt.header.build_seconds
    );
    let recall_rebuilt = recall(&npy, &dir.join("queries.npy"), queries)?;
    println!(
        "recall@10 over {queries} queries: edited {recall_edited:.4}, rebuilt {recall_rebuilt:.4}"
    );
    Ok(())
}

/// Recall@10 of the ANN search of `npy` against its exact top 10 for the first `count` rows of
/// `queries`.
fn recall(npy: &Path, queries: &Path, count: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let (shape, q) = read_f32(queries)?;
    let count = count.min(shape[0]);
    let q = ndarray::ArrayView2::from_shape((count, shape[1]), &q[..count * shape[1]])?;
    let exact = EmbeddingIndex::load(npy)?;
    let truth = top_k_batch(q, exact.embeddings.view(), 10)?;
    drop(exact);
    let ann = AnnIndex::open(npy)?;
    let mut found = 0;
    for (row, truth) in q.rows().into_iter().zip(&truth) {
        let hits = ann.search(row, 10)?;
        found += hits
            .iter()
            .filter(|h| truth.iter().any(|t| t.index == h.index))
            .count();
    }
    Ok(found as f64 / (count * 10) as f64)
}
