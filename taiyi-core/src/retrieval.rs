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

/// The `k` rows of `index` (`[n, d]`) most similar to `query` (`[d]`), best first. Ties keep the
/// lower row first.
pub fn top_k(
    query: ArrayView1<'_, f32>,
    index: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<Hit>, ClipError> {
    if index.ncols() != query.len() {
        return Err(ClipError::Mismatch {
            message: format!(
                "query is {}-d but the index holds {}-d embeddings",
                query.len(),
                index.ncols()
            ),
        });
    }
    let scores = index.dot(&query);
    let mut hits: Vec<Hit> = scores
        .iter()
        .enumerate()
        .map(|(index, &score)| Hit { index, score })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    hits.truncate(k);
    Ok(hits)
}

/// [`top_k`] for every row of `queries` (`[m, d]`).
pub fn top_k_batch(
    queries: ArrayView2<'_, f32>,
    index: ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<Vec<Hit>>, ClipError> {
    queries.outer_iter().map(|q| top_k(q, index, k)).collect()
}

pub use crate::index::{EmbeddingIndex, NORM_TOLERANCE, Skipped};

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

    #[test]
    fn empty_rows_cannot_claim_any_count() -> Result<(), ClipError> {
        let dir = std::env::temp_dir().join(format!("taiyi-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| ClipError::Io {
            path: dir.clone(),
            source,
        })?;
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
