//! [`SearchIndex`]: one type for "search this collection", whether it has an ANN graph or
//! not.

use std::path::Path;

use ndarray::{ArrayView1, ArrayView2};
use serde::Serialize;

use super::{AnnHeader, AnnIndex};
use crate::ClipError;
use crate::retrieval::{EmbeddingIndex, Hit};

/// An embedded collection opened for search: through its ANN graph (`IDX.npy.ann`) when it has
/// one, else by scoring every row. Both answer with exact cosines, best first.
///
/// ```no_run
/// use taiyi_core::ann::SearchIndex;
/// # fn main() -> Result<(), taiyi_core::ClipError> {
/// let index = SearchIndex::open("photos.npy".as_ref(), false)?;
/// let query = vec![0.0f32; index.dim()]; // a normalised text or image feature
/// for hit in index.search(ndarray::ArrayView1::from(&query), 10)? {
///     println!("{:.4}  {}", hit.score, index.names()[hit.index]);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum SearchIndex {
    /// Every row in memory, every row scored.
    Exact(EmbeddingIndex),
    /// The memory-mapped graph and rows: candidates re-ranked exactly.
    Ann(Box<AnnIndex>),
}

/// What [`SearchIndex::info`] reports (e.g. in `taiyi serve`'s `/info`).
#[derive(Debug, Clone, Serialize)]
pub struct SearchIndexInfo {
    /// `ann` or `exact`.
    pub kind: &'static str,
    /// Rows.
    pub rows: usize,
    /// Width.
    pub dim: usize,
    /// The graph's header (what it was built from, its parameters), for `ann`.
    pub ann: Option<AnnHeader>,
}

impl SearchIndex {
    /// Open the index `npy` (with its manifest): through its graph if `IDX.npy.ann` exists
    /// and `exact` is false, else loaded whole ([`EmbeddingIndex::load`]).
    ///
    /// # Errors
    /// [`AnnIndex::open`]'s errors (a graph that does not belong to the `.npy` is an error,
    /// not a silent fallback), or [`EmbeddingIndex::load`]'s.
    pub fn open(npy: &Path, exact: bool) -> Result<Self, ClipError> {
        if !exact && AnnIndex::ann_path(npy).is_file() {
            Ok(Self::Ann(Box::new(AnnIndex::open(npy)?)))
        } else {
            Ok(Self::Exact(EmbeddingIndex::load(npy)?))
        }
    }

    /// One name per row.
    pub fn names(&self) -> &[String] {
        match self {
            Self::Exact(i) => &i.names,
            Self::Ann(a) => a.names(),
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        match self {
            Self::Exact(i) => i.embeddings.nrows(),
            Self::Ann(a) => a.rows(),
        }
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        match self {
            Self::Exact(i) => i.embeddings.ncols(),
            Self::Ann(a) => a.dim(),
        }
    }

    /// Kind, size and graph parameters.
    pub fn info(&self) -> SearchIndexInfo {
        SearchIndexInfo {
            kind: match self {
                Self::Exact(_) => "exact",
                Self::Ann(_) => "ann",
            },
            rows: self.rows(),
            dim: self.dim(),
            ann: match self {
                Self::Exact(_) => None,
                Self::Ann(a) => Some(a.header().clone()),
            },
        }
    }

    /// The `k` best rows for a normalised query, best first.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] for a query of another width; the graph's errors.
    pub fn search(&self, query: ArrayView1<'_, f32>, k: usize) -> Result<Vec<Hit>, ClipError> {
        match self {
            Self::Exact(i) => i.search(query, k),
            Self::Ann(a) => a.search(query, k),
        }
    }

    /// [`SearchIndex::search`] for every row of `queries` (`[m, d]`): one blocked pass over
    /// the rows when exact, one graph search per query otherwise.
    ///
    /// # Errors
    /// As [`SearchIndex::search`].
    pub fn search_batch(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, ClipError> {
        match self {
            Self::Exact(i) => i.search_batch(queries, k),
            Self::Ann(a) => queries.outer_iter().map(|q| a.search(q, k)).collect(),
        }
    }
}
