//! Retrieval over precomputed embeddings: the best images for a text, the best texts for an
//! image. Embeddings are L2-normalised rows, so the dot product is the cosine similarity.

use ndarray::{ArrayView1, ArrayView2};

use crate::ClipError;

/// One retrieved item.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Row of the item in the index.
    pub index: usize,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// Best first; ties: the lower row first.
fn better(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.index.cmp(&b.index))
}

/// The `k` best of `hits` in order ([`better`]): a partial selection, then a sort of `k`.
pub(crate) fn best(mut hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    if k < hits.len() {
        hits.select_nth_unstable_by(k, better);
        hits.truncate(k);
    }
    hits.sort_by(better);
    hits
}

/// L2-normalise every `dim`-wide row of `queries` in place (a search compares normalised
/// vectors).
///
/// # Errors
/// [`ClipError::Mismatch`] for a `dim` of 0, values that are not whole rows, or a row that is
/// zero or not finite (the message names the row).
pub fn normalize_queries(queries: &mut [f32], dim: usize) -> Result<(), ClipError> {
    if dim == 0 || !queries.len().is_multiple_of(dim) {
        return Err(ClipError::Mismatch {
            message: format!("{} values are not rows of width {dim}", queries.len()),
        });
    }
    for (i, row) in queries.chunks_mut(dim).enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(ClipError::Mismatch {
                message: format!(
                    "query row {i} has norm {norm}; queries must be finite and non-zero"
                ),
            });
        }
        row.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(())
}

fn check_width(query: usize, index: usize) -> Result<(), ClipError> {
    if index != query {
        return Err(ClipError::Mismatch {
            message: format!("query is {query}-d but the index holds {index}-d embeddings"),
        });
    }
    Ok(())
}

/// The `k` rows of `index` (`[n, d]`) most similar to `query` (`[d]`), best first. Ties keep the
/// lower row first.
pub fn top_k(
    query: ArrayView1<'_, f32>,
    index: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<Hit>, ClipError> {
    check_width(query.len(), index.ncols())?;
    let scores = index.dot(&query);
    let hits = scores
        .iter()
        .enumerate()
        .map(|(index, &score)| Hit { index, score })
        .collect();
    Ok(best(hits, k))
}

/// Rows of the index scored against all queries at once, per block (one pass over the index
/// for every block of queries instead of one per query).
const ROWS_PER_BLOCK: usize = 16_384;

/// [`top_k`] for every row of `queries` (`[m, d]`), computed as one matrix product per block of
/// index rows (`[rows, d] × [d, m]`), keeping each query's best `k` as the blocks go. The scores
/// are [`top_k`]'s up to float rounding (a matrix product sums in another order than a
/// matrix-vector product), so rows whose scores tie to the last bits may come in another order.
pub fn top_k_batch(
    queries: ArrayView2<'_, f32>,
    index: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<Vec<Hit>>, ClipError> {
    check_width(queries.ncols(), index.ncols())?;
    let m = queries.nrows();
    let mut kept: Vec<Vec<Hit>> = vec![Vec::new(); m];
    let qt = queries.t();
    for (b, block) in index
        .axis_chunks_iter(ndarray::Axis(0), ROWS_PER_BLOCK)
        .enumerate()
    {
        let scores = block.dot(&qt); // [rows, m]
        let first = b * ROWS_PER_BLOCK;
        for (q, hits) in kept.iter_mut().enumerate() {
            hits.extend(scores.column(q).iter().enumerate().map(|(r, &score)| Hit {
                index: first + r,
                score,
            }));
            *hits = best(std::mem::take(hits), k);
        }
    }
    Ok(kept)
}

pub use crate::index::{EmbeddingIndex, FileStamp, NORM_TOLERANCE, Skipped, UpdatePlan};

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    #[test]
    fn ranks_by_cosine() -> Result<(), ClipError> {
        let index = arr2(&[[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]]);
        let hits = top_k(arr1(&[0.0f32, 1.0]).view(), index.view(), 3)?;
        let order: Vec<usize> = hits.iter().map(|h| h.index).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert!((hits[1].score - 0.8).abs() < 1e-6);
        assert!(top_k(arr1(&[1.0f32]).view(), index.view(), 1).is_err());
        assert_eq!(
            top_k(arr1(&[1.0f32, 0.0]).view(), index.view(), 10)?.len(),
            4
        );
        Ok(())
    }

    /// The blocked batch equals one `top_k` per query, across block boundaries, with ties and
    /// k of 0, within and past the row count.
    #[test]
    fn batch_equals_one_search_per_query() -> Result<(), ClipError> {
        let n = 2 * ROWS_PER_BLOCK + 77;
        let mut x = 0x1234_5678u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 7) as f32 - 3.0 // few values: many ties
        };
        let index = ndarray::Array2::from_shape_fn((n, 4), |_| next());
        let queries = ndarray::Array2::from_shape_fn((5, 4), |_| next());
        for k in [0, 1, 10, n + 3] {
            let batch = top_k_batch(queries.view(), index.view(), k)?;
            for (q, hits) in queries.outer_iter().zip(&batch) {
                assert_eq!(hits, &top_k(q, index.view(), k)?, "k {k}");
            }
        }
        assert!(top_k_batch(arr2(&[[1.0f32]]).view(), index.view(), 1).is_err());
        Ok(())
    }

    #[test]
    fn empty_rows_cannot_claim_any_count() -> Result<(), ClipError> {
        let tmp = taiyi_testkit::scratch_dir("index-");
        let dir = tmp.path().to_path_buf();
        let p = dir.join("zero-width.npy");
        crate::npy::write_f32(&p, &[1 << 62, 0], &[])?;
        assert!(matches!(
            EmbeddingIndex::load_plain(&p),
            Err(ClipError::Npy { .. })
        ));
        crate::npy::write_f32(&p, &[2, 1], &[1.0, 2.0])?;
        assert_eq!(EmbeddingIndex::load_plain(&p)?.names, ["0", "1"]);
        Ok(())
    }
}
