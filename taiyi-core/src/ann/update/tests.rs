//! Graph edits against the exact answer: an updated graph finds what a rebuilt one finds,
//! under its new row numbers.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::tests::{N, collection, dir, names, recall_at_10};
use super::super::{AnnIndex, AnnParams, ReduceDim};
use super::*;
use crate::retrieval::EmbeddingIndex;

/// The rewritten index of an update: every 40th old row dropped, a new row after every 30th
/// kept one; the new rows' vectors and the origin of every row.
fn updated(old: &[f32], fresh: &[f32], d: usize) -> (Vec<f32>, Vec<String>, Vec<Option<usize>>) {
    let (mut rows, mut names, mut origin) = (Vec::new(), Vec::new(), Vec::new());
    let mut fresh = fresh.chunks(d).enumerate();
    for (r, row) in old.chunks(d).enumerate() {
        if r % 40 == 7 {
            continue;
        }
        rows.extend_from_slice(row);
        names.push(format!("img{r}.jpg"));
        origin.push(Some(r));
        if r % 30 == 3
            && let Some((j, new)) = fresh.next()
        {
            rows.extend_from_slice(new);
            names.push(format!("new{j}.jpg"));
            origin.push(None);
        }
    }
    (rows, names, origin)
}

fn edited_graph_finds_its_rows(params: AnnParams, seed: u64) -> Result<(), ClipError> {
    let t = dir("update");
    let npy = t.path().join("idx.npy");
    let (all, d) = collection(N + 400 + 200, seed);
    let (old, rest) = all.split_at(N * d);
    let (fresh, queries) = rest.split_at(400 * d);
    EmbeddingIndex::write(&npy, d, old, &names(N), true, &[])?;
    AnnIndex::build(&npy, &params)?;
    let edit = AnnIndex::edit(&npy)?;
    let (rows, new_names, origin) = updated(old, fresh, d);
    EmbeddingIndex::write(&npy, d, &rows, &new_names, true, &[])?;
    // The old graph no longer matches the rewritten rows.
    assert!(AnnIndex::open(&npy).is_err());
    let done = edit.apply(&npy, &origin)?;
    let edits = done.edited.expect("edited in place");
    let n = origin.len();
    assert_eq!(edits.removed, N / 40);
    assert_eq!(edits.added, n - (N - N / 40));
    assert!(edits.renumbered > n / 2, "{edits:?}");
    assert_eq!(done.written.header.rows, n);
    assert_eq!(done.written.header.edits, edits.added + edits.removed);
    let ann = AnnIndex::open(&npy)?;
    assert_eq!(ann.names(), &new_names[..]);
    // Rows, kept and new, are found under their new numbers by their own vectors (a fresh
    // graph of these rows misses 0-33 of them, the edited one 0-14: HNSW is approximate).
    let mut found = 0;
    for (i, row) in rows.chunks(d).enumerate() {
        let hits = ann.search(ndarray::ArrayView1::from(row), 10)?;
        if hits[0].index == i {
            assert!((hits[0].score - 1.0).abs() < 1e-5);
            found += 1;
        }
    }
    assert!(found as f64 >= 0.99 * n as f64, "{found} of {n} rows found");
    let exact = EmbeddingIndex::load(&npy)?;
    let recall = recall_at_10(&ann, &exact, queries, d)?;
    eprintln!("recall@10 after an update: {recall}");
    assert!(recall >= 0.95, "recall@10 {recall}");
    Ok(())
}

/// An update (2.5% of the rows removed, 3.3% added, most renumbered) edits the graph in place:
/// rows are found under their new numbers and recall holds (same bound as a fresh build).
#[test]
fn an_updated_graph_finds_what_exact_search_finds() -> Result<(), ClipError> {
    edited_graph_finds_its_rows(AnnParams::default(), 11)
}

/// The same through a projected graph: new rows are projected with the stored matrix.
#[test]
fn an_updated_projected_graph_finds_its_rows() -> Result<(), ClipError> {
    let params = AnnParams {
        reduce: ReduceDim::Dim(16),
        ..AnnParams::default()
    };
    edited_graph_finds_its_rows(params, 12)
}

/// Past [`REBUILD_AFTER`] of edits the graph is built again (the count starts over), and an
/// origin that names a row twice or past the old rows is refused.
#[test]
fn many_edits_rebuild_and_bad_origins_are_refused() -> Result<(), ClipError> {
    let t = dir("rebuild");
    let npy = t.path().join("idx.npy");
    let (all, d) = collection(N + N / 5, 13);
    let old = &all[..N * d];
    EmbeddingIndex::write(&npy, d, old, &names(N), true, &[])?;
    AnnIndex::build(&npy, &AnnParams::default())?;
    // A fifth more rows: over the threshold.
    let mut origin: Vec<Option<usize>> = (0..N).map(Some).collect();
    origin.extend(std::iter::repeat_n(None, N / 5));
    let edit = AnnIndex::edit(&npy)?;
    let more: Vec<String> = (0..N + N / 5).map(|i| format!("x{i}.jpg")).collect();
    EmbeddingIndex::write(&npy, d, &all, &more, true, &[])?;
    let done = edit.apply(&npy, &origin)?;
    assert!(done.edited.is_none());
    assert_eq!(done.written.header.edits, 0);
    assert_eq!(AnnIndex::open(&npy)?.rows(), N + N / 5);
    for bad in [vec![Some(0), Some(0)], vec![Some(N + N / 5)]] {
        let edit = AnnIndex::edit(&npy)?;
        let err = edit.apply(&npy, &bad).unwrap_err().to_string();
        assert!(err.contains("old row"), "{err}");
    }
    Ok(())
}
