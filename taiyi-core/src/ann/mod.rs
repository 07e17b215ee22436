//! Approximate nearest-neighbour search over an embedding index ([`AnnIndex`]): an HNSW graph
//! (usearch) over int8 or f16 copies of the rows proposes candidates, and an exact re-rank on
//! the index's own float32 rows orders them, so every score is the exact cosine that
//! [`crate::retrieval::EmbeddingIndex::search`] gives.
//!
//! # The `.ann` file
//!
//! `taiyi index build IDX.npy` ([`AnnIndex::build`]) writes `IDX.npy.ann` beside the index
//! (beside the file a link points to):
//!
//! ```text
//! b"TAIYIANN"   8 bytes
//! header length u64, little-endian
//! header        JSON, [`AnnHeader`]: engine, quantization, parameters, rows, width, and the
//!               SHA-256, length and modification time of the .npy it was built from
//! zero padding  to a multiple of 64 bytes
//! graph         the usearch index (its own format), to the end of the file
//! ```
//!
//! The file is written to a temporary name and renamed into place, so a reader sees the old or
//! the new file, never a mixture. [`AnnIndex::open`] memory-maps it and the `.npy` (the graph is
//! read once for its CRC-32; of the `.npy` a search reads only its candidate rows) and
//! checks that they belong together: the `.npy` must be the one the graph was built from (same
//! length and modification time, or else the same SHA-256, which is then computed), and its
//! manifest must name a generation with that digest. Anything else is an error that names both
//! sides.
//!
//! Rows are the usearch keys. The graph's vectors are the normalised rows, so a raw index
//! (`embed-image --raw`) is searched by cosine as well.

mod build;
mod collection;
mod format;
mod mapped;
mod pca;
mod update;

use std::path::{Path, PathBuf};

use ndarray::ArrayView1;

use crate::ClipError;
use crate::index::ManifestFile;
use crate::retrieval::Hit;
use mapped::{MappedGraph, MappedRows};

pub use build::AnnBuild;
pub use collection::{SearchIndex, SearchIndexInfo};
#[cfg(test)]
use format::graph_offset;
pub use format::{AnnHeader, AnnParams, AnnQuantization, EXACT_BELOW, NpyStamp};
use format::{FORMAT, VERSION, read_header};
pub use pca::{AUTO_ENERGY, Projection, ProjectionInfo, ReduceDim};
pub use update::{AnnEdit, AnnEdits, AnnUpdate, REBUILD_AFTER};

/// An embedding index opened for approximate search: the memory-mapped `.ann` graph, the
/// memory-mapped float32 rows of the `.npy` and the manifest's row names.
///
/// ```no_run
/// use taiyi_core::ann::AnnIndex;
/// # fn main() -> Result<(), taiyi_core::ClipError> {
/// // Once: taiyi_core::ann::AnnIndex::build("photos.npy".as_ref(), &Default::default())?;
/// let index = AnnIndex::open("photos.npy".as_ref())?;
/// let query = vec![0.0f32; index.dim()]; // a normalised text or image feature
/// for hit in index.search(ndarray::ArrayView1::from(&query), 10)? {
///     println!("{:.4}  {}", hit.score, index.names()[hit.index]);
/// }
/// # Ok(()) }
/// ```
pub struct AnnIndex {
    header: AnnHeader,
    graph: MappedGraph,
    rows: MappedRows,
    names: Vec<String>,
    normalized: bool,
    path: PathBuf,
    projection: Option<Projection>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl AnnIndex {
    /// The ANN file of the index `npy`: `FILE.npy.ann` beside the file a link points to.
    pub fn ann_path(npy: &Path) -> PathBuf {
        let mut s = crate::index::real_path(npy).into_os_string();
        s.push(".ann");
        PathBuf::from(s)
    }

    /// Build the graph of the index `npy` (loaded and checked as by
    /// [`crate::retrieval::EmbeddingIndex::load`]) and write [`AnnIndex::ann_path`], replacing
    /// an older one as one unit. Uses every rayon thread.
    ///
    /// # Errors
    /// The index's load errors; [`ClipError::Mismatch`] for parameters out of range;
    /// [`ClipError::Ann`] if the engine fails; the write's I/O errors (an older `.ann` then
    /// stays as it was).
    pub fn build(npy: &Path, params: &AnnParams) -> Result<AnnBuild, ClipError> {
        build::build(npy, params)
    }

    /// The parameters the `.ann` file of `npy` was built with, if there is a readable one
    /// (whether or not it still matches the `.npy`): what a rebuild after an update reuses.
    pub fn built_params(npy: &Path) -> Option<AnnParams> {
        let path = Self::ann_path(npy);
        let file = crate::input::InputFile::open(&path).ok()?;
        let (header, _) = read_header(&path, file.file(), file.len()).ok()?;
        Some(header.params)
    }

    /// Open the index `npy` with its `.ann` file for search (both memory-mapped).
    ///
    /// # Errors
    /// [`ClipError::Index`] if the `.ann` file is missing, malformed, or was built from
    /// another `.npy` (the message names both digests), or if the manifest has no generation
    /// for that `.npy`; the `.npy` reader's and the engine's errors.
    pub fn open(npy: &Path) -> Result<Self, ClipError> {
        let path = Self::ann_path(npy);
        let bad = |message: String| ClipError::Index {
            path: path.clone(),
            message,
        };
        let file = crate::input::InputFile::open(&path).map_err(|source| {
            if source.is_not_found() {
                bad(format!(
                    "missing: build it with `taiyi index build {}` (or search with --exact)",
                    npy.display()
                ))
            } else {
                ClipError::Read {
                    what: "ANN index",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let (header, header_len) = read_header(&path, file.file(), file.len())?;
        let (projection_at, graph_at) = header.layout(header_len);
        if header.format != FORMAT || header.version != VERSION {
            return Err(bad(format!(
                "unknown format {} version {}",
                header.format, header.version
            )));
        }
        header.params.check()?;
        // The .npy must be the one the graph was built from.
        let (bytes, modified_ns) = crate::commit::len_and_mtime(npy)?;
        let same_stat = bytes == header.npy.bytes && modified_ns == header.npy.modified_ns;
        if !same_stat {
            let now = crate::commit::file_sha256(npy)?.unwrap_or_default();
            if now != header.npy.sha256 {
                return Err(bad(format!(
                    "it was built from a .npy with SHA-256 {}, but {} now has SHA-256 {now}: \
                     rebuild it with `taiyi index build {}` (or search with --exact)",
                    header.npy.sha256,
                    npy.display(),
                    npy.display()
                )));
            }
        }
        let described = ManifestFile::read(npy)?.generation(npy, &header.npy.sha256)?;
        let rows = MappedRows::open(npy)?;
        let (n, d) = rows.view()?.dim();
        described.check_shape(n, d)?;
        if (n, d) != (header.rows, header.dim) {
            return Err(bad(format!(
                "it indexes [{}, {}], the .npy holds [{n}, {d}]",
                header.rows, header.dim
            )));
        }
        let projection = header
            .projection
            .map(|info| read_projection(&path, file.file(), projection_at, d, info))
            .transpose()?;
        let graph = MappedGraph::view(
            &path,
            file.file(),
            graph_at,
            &header.params.options(header.graph_dim()),
            header.graph_crc32,
        )?;
        if graph.graph().size() != n {
            return Err(bad(format!(
                "its graph holds {} vectors for {n} rows",
                graph.graph().size()
            )));
        }
        Ok(Self {
            header,
            graph,
            rows,
            names: described.names,
            normalized: described.normalized,
            path,
            projection,
        })
    }

    /// Open the index `npy` with its `.ann` file as [`AnnIndex::open`] does (so the graph is
    /// checked against the `.npy` it was built from) and read the graph into memory, to be
    /// brought up to date once the `.npy` is rewritten ([`AnnEdit::apply`]).
    ///
    /// # Errors
    /// As [`AnnIndex::open`]; [`ClipError::Ann`] if the engine cannot load the graph.
    pub fn edit(npy: &Path) -> Result<AnnEdit, ClipError> {
        let index = Self::open(npy)?;
        let options = index.header.params.options(index.header.graph_dim());
        let graph = index.graph.load_copy(&index.path, &options)?;
        Ok(AnnEdit {
            header: index.header,
            projection: index.projection,
            graph,
            path: index.path,
        })
    }

    /// The error for a `.ann` file whose graph does not hold what its header says.
    fn damaged(path: &Path, message: String) -> ClipError {
        ClipError::Index {
            path: path.to_path_buf(),
            message,
        }
    }

    /// What the file says about itself.
    pub fn header(&self) -> &AnnHeader {
        &self.header
    }

    /// The `.ann` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One name per row.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Rows indexed.
    pub fn rows(&self) -> usize {
        self.header.rows
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.header.dim
    }

    /// Change the search's candidate list size (HNSW `ef`; larger: better recall, slower).
    pub fn set_expansion_search(&self, ef: usize) {
        self.graph.graph().change_expansion_search(ef.max(1));
    }

    fn check_query(&self, query: &ArrayView1<'_, f32>) -> Result<(), ClipError> {
        if query.len() != self.dim() {
            return Err(ClipError::Mismatch {
                message: format!(
                    "query is {}-d but the index holds {}-d embeddings",
                    query.len(),
                    self.dim()
                ),
            });
        }
        Ok(())
    }

    /// The exact cosine of `query` (normalised) and `row` (normalised if the index says so).
    fn cosine(&self, row: ArrayView1<'_, f32>, query: &ArrayView1<'_, f32>) -> f32 {
        let dot = row.dot(query);
        if self.normalized {
            dot
        } else {
            dot / row.dot(&row).sqrt()
        }
    }

    /// The `k` best rows for a normalised query: graph candidates (more than `k`) re-ranked
    /// by their exact cosine, best first (ties: lower row first). Indexes of at most
    /// [`EXACT_BELOW`] rows, and requests for about as many rows as there are, are scanned
    /// exactly instead.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] for a query of another width; [`ClipError::Ann`] if the engine
    /// fails; [`ClipError::Index`] if it returns a row that does not exist.
    pub fn search(&self, query: ArrayView1<'_, f32>, k: usize) -> Result<Vec<Hit>, ClipError> {
        self.check_query(&query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let wanted = k.saturating_mul(self.header.params.quantization.rerank_factor());
        if self.rows() <= EXACT_BELOW || wanted >= self.rows() {
            return self.search_exact(query, k);
        }
        let mut q = query.to_vec();
        if let Some(p) = &self.projection {
            let full = std::mem::take(&mut q);
            p.project(&full, &mut q);
        }
        let found = self.graph.search(&q, wanted).map_err(|e| ClipError::Ann {
            path: self.path.clone(),
            what: "search failed",
            source: Box::new(e),
        })?;
        let mut hits = Vec::with_capacity(found.keys.len());
        let (mut row, mut bytes) = (vec![0f32; self.dim()], Vec::new());
        for key in found.keys {
            let r = usize::try_from(key)
                .ok()
                .filter(|&r| r < self.rows())
                .ok_or_else(|| ClipError::Index {
                    path: self.path.clone(),
                    message: format!("its graph returned row {key} of {}", self.rows()),
                })?;
            self.rows.read_rows(r, &mut row, &mut bytes)?;
            let row = ArrayView1::from(&row[..]);
            hits.push(Hit {
                index: r,
                score: self.cosine(row, &query),
            });
        }
        Ok(crate::retrieval::best(hits, k))
    }

    /// The `k` best rows by scoring every row (the exact answer; reads all of the `.npy`).
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] for a query of another width.
    pub fn search_exact(
        &self,
        query: ArrayView1<'_, f32>,
        k: usize,
    ) -> Result<Vec<Hit>, ClipError> {
        self.check_query(&query)?;
        let rows = self.rows.view()?;
        if self.normalized {
            return crate::retrieval::top_k(query, rows, k);
        }
        let hits = (0..self.rows())
            .map(|r| Hit {
                index: r,
                score: self.cosine(rows.row(r), &query),
            })
            .collect();
        Ok(crate::retrieval::best(hits, k))
    }
}

/// The projection matrix stored at `at` in the `.ann` file, checked against its CRC-32.
fn read_projection(
    path: &Path,
    file: &std::fs::File,
    at: usize,
    dim: usize,
    info: ProjectionInfo,
) -> Result<Projection, ClipError> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |message: String| ClipError::Index {
        path: path.to_path_buf(),
        message,
    };
    if info.dim == 0 || info.dim > dim {
        return Err(bad(format!(
            "its projection keeps {} of {dim} dimensions",
            info.dim
        )));
    }
    let mut bytes = vec![0u8; Projection::byte_len(dim, info.dim)];
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(at as u64))
        .and_then(|_| reader.read_exact(&mut bytes))
        .map_err(|_| bad(format!("it ends before its projection (byte {at})")))?;
    let found = crc32fast::hash(&bytes);
    if found != info.crc32 {
        return Err(bad(format!(
            "its projection is damaged (CRC-32 {found:08x}, its header says {:08x}): build it \
             again with `taiyi index build`",
            info.crc32
        )));
    }
    Projection::from_bytes(dim, info.dim, &bytes)
        .ok_or_else(|| bad("its projection holds non-finite values".into()))
}

#[cfg(test)]
mod tests;
