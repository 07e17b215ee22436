//! `taiyi.SearchIndex`: an embedding index written by `taiyi embed-image` (or
//! `taiyi index build --from-shards`) opened for search, through its ANN graph when it has one.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use taiyi_core::ann::SearchIndex as CoreIndex;
use taiyi_core::retrieval::{Hit, normalize_queries};

use crate::errors::{self, Kind};

/// An embedding index opened for search.
#[pyclass(frozen, module = "taiyi._taiyi", name = "SearchIndex")]
pub struct SearchIndex {
    index: CoreIndex,
    path: PathBuf,
}

impl SearchIndex {
    fn hits<'py>(&self, py: Python<'py>, hits: &[Hit]) -> PyResult<Bound<'py, PyList>> {
        let names = self.index.names();
        let rows = hits
            .iter()
            .map(|h| {
                let d = PyDict::new(py);
                d.set_item("row", h.index)?;
                d.set_item("name", &names[h.index])?;
                d.set_item("score", h.score)?;
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}

#[pymethods]
impl SearchIndex {
    /// Open `path` (an `.npy` with its manifest): through `path.ann` when it exists and
    /// `exact` is false, else by scoring every row.
    #[new]
    #[pyo3(signature = (path, exact=false))]
    fn new(py: Python<'_>, path: PathBuf, exact: bool) -> PyResult<Self> {
        let index = py
            .detach(|| CoreIndex::open(&path, exact))
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Self { index, path })
    }

    /// The `top_k` best rows for each query: `queries` of shape `(dim,)` gives one list of
    /// hits, `(m, dim)` a list per query; a hit is `{"row", "name", "score"}` (cosine), best
    /// first. Queries are L2-normalised here.
    #[pyo3(signature = (queries, top_k=10))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        top_k: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let array = py
            .import("numpy")?
            .call_method1("ascontiguousarray", (queries, "<f4"))?;
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let (m, d, one) = match shape[..] {
            [d] => (1, d, true),
            [m, d] => (m, d, false),
            _ => {
                return Err(errors::raise(
                    py,
                    Kind::Value,
                    format!("queries must have shape (dim,) or (m, dim), not {shape:?}"),
                ));
            }
        };
        let bytes: Vec<u8> = array.call_method0("tobytes")?.extract()?;
        let mut values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let all = py
            .detach(|| {
                normalize_queries(&mut values, d)?;
                let view = ndarray::ArrayView2::from_shape((m, d), &values).map_err(|e| {
                    taiyi_core::ClipError::Mismatch {
                        message: format!("queries: {e}"),
                    }
                })?;
                self.index.search_batch(view, top_k)
            })
            .map_err(|e| errors::to_py(py, &e))?;
        if one {
            return match all.first() {
                Some(hits) => self.hits(py, hits),
                None => PyList::new(py, Vec::<Bound<'py, PyDict>>::new()),
            };
        }
        let lists = all
            .iter()
            .map(|hits| self.hits(py, hits))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, lists)
    }

    /// Rows in the index.
    #[getter]
    fn rows(&self) -> usize {
        self.index.rows()
    }

    /// Width of the embeddings.
    #[getter]
    fn dim(&self) -> usize {
        self.index.dim()
    }

    /// `"ann"` (through the graph) or `"exact"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.index.info().kind
    }

    /// The row names (from the manifest), in row order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.index.names().to_vec()
    }

    /// The `.npy` opened, as given.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// What `taiyi serve --index` reports in `/info`: kind, rows, dim and the graph's header
    /// (parameters, the `.npy` it was built from), as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(&self.index.info())
            .map_err(|e| errors::raise(py, Kind::Base, format!("index info: {e}")))?;
        py.import("json")?.call_method1("loads", (json,))
    }

    fn __len__(&self) -> usize {
        self.index.rows()
    }

    fn __repr__(&self) -> String {
        format!(
            "SearchIndex({:?}, kind={:?}, rows={}, dim={})",
            self.path.display().to_string(),
            self.index.info().kind,
            self.index.rows(),
            self.index.dim()
        )
    }
}
