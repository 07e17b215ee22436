//! Retrieval over precomputed embeddings: the best images for a text, the best texts for an
//! image. Embeddings are L2-normalised rows, so the dot product is the cosine similarity.

use ndarray::{Array2, ArrayView1, ArrayView2};

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

/// An embedded collection: one normalised embedding per row, with a name per row (e.g. the
/// image path), as `taiyi embed-image` writes it (`FILE.npy` + `FILE.npy.names.txt`).
#[derive(Debug, Clone)]
pub struct EmbeddingIndex {
    /// `[n, d]` embeddings.
    pub embeddings: Array2<f32>,
    /// One name per row.
    pub names: Vec<String>,
}

impl EmbeddingIndex {
    /// The sidecar file holding the row names of `npy`.
    pub fn names_path(npy: &std::path::Path) -> std::path::PathBuf {
        let mut s = npy.as_os_str().to_owned();
        s.push(".names.txt");
        std::path::PathBuf::from(s)
    }

    /// Load `FILE.npy` and, when present, its names (`FILE.npy.names.txt`, one per line);
    /// without names, rows are called by their number.
    pub fn load(npy: &std::path::Path) -> Result<Self, ClipError> {
        let (shape, values) = crate::npy::read_f32(npy)?;
        // d ≥ 1 bounds the row count by the file's size (the reader checked the data length).
        let (n, d) = match shape[..] {
            [n, d] if d >= 1 => (n, d),
            _ => {
                return Err(ClipError::Npy {
                    path: npy.to_path_buf(),
                    message: format!(
                        "expected a 2-D [n, d] array with d ≥ 1, found shape {shape:?}"
                    ),
                });
            }
        };
        let embeddings = Array2::from_shape_vec((n, d), values).map_err(|e| ClipError::Npy {
            path: npy.to_path_buf(),
            message: e.to_string(),
        })?;
        let names_path = Self::names_path(npy);
        let names = if names_path.is_file() {
            let text = std::fs::read_to_string(&names_path).map_err(|source| ClipError::Io {
                path: names_path.clone(),
                source,
            })?;
            let names: Vec<String> = text.lines().map(str::to_string).collect();
            if names.len() != n {
                return Err(ClipError::Mismatch {
                    message: format!(
                        "{} names {} rows but {} holds {n}",
                        names_path.display(),
                        names.len(),
                        npy.display()
                    ),
                });
            }
            names
        } else {
            (0..n).map(|i| i.to_string()).collect()
        };
        Ok(Self { embeddings, names })
    }

    /// The `k` best rows for a normalised query embedding.
    pub fn search(&self, query: ArrayView1<'_, f32>, k: usize) -> Result<Vec<Hit>, ClipError> {
        top_k(query, self.embeddings.view(), k)
    }
}

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
            EmbeddingIndex::load(&p),
            Err(ClipError::Npy { .. })
        ));
        crate::npy::write_f32(&p, &[2, 1], &[1.0, 2.0])?;
        assert_eq!(EmbeddingIndex::load(&p)?.names, ["0", "1"]);
        Ok(())
    }
}
