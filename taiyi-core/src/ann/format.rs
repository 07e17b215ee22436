//! The `.ann` file's format: magic, the JSON header ([`AnnHeader`], with [`AnnParams`] and the
//! [`NpyStamp`] of the `.npy` it was built from), and where the graph starts.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::pca::{ProjectionInfo, ReduceDim};
use crate::ClipError;

/// The file's first bytes.
pub(super) const MAGIC: &[u8; 8] = b"TAIYIANN";
/// [`AnnHeader::format`].
pub(super) const FORMAT: &str = "taiyi-ann";
/// [`AnnHeader::version`].
pub(super) const VERSION: u32 = 1;
/// Largest header read (the JSON is a few hundred bytes).
const MAX_HEADER: u64 = 1 << 20;
/// The graph starts at a multiple of this many bytes.
pub(super) const ALIGN: usize = 64;
/// At or below this many rows a search scores every row: on 1024-d rows the exact scan of
/// 4096 rows (~4 M multiply-adds) takes about as long as a graph search with its re-rank.
pub const EXACT_BELOW: usize = 4096;

/// How the graph stores its copy of the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnQuantization {
    /// 8-bit integers (1 byte per value): half the memory of f16 and faster graph walks; the
    /// coarser distances are corrected by re-ranking more candidates.
    I8,
    /// IEEE half floats (2 bytes per value).
    F16,
}

impl AnnQuantization {
    pub(super) fn scalar(self) -> usearch::ScalarKind {
        match self {
            Self::I8 => usearch::ScalarKind::I8,
            Self::F16 => usearch::ScalarKind::F16,
        }
    }

    /// How many candidates the graph proposes per requested result (re-ranked exactly).
    pub(super) fn rerank_factor(self) -> usize {
        match self {
            Self::I8 => 4,
            Self::F16 => 2,
        }
    }

    /// The name used in headers and on command lines (`i8`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::F16 => "f16",
        }
    }
}

/// Graph parameters. The defaults were measured on 1M generated 1024-d vectors
/// (BENCHMARKS.md, "ANN index"): recall@10 ≥ 0.98 after the re-rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnParams {
    /// Vector storage in the graph.
    pub quantization: AnnQuantization,
    /// Edges per node (HNSW `M`).
    pub connectivity: usize,
    /// Candidate list size while building (HNSW `efConstruction`).
    pub expansion_add: usize,
    /// Candidate list size while searching (HNSW `ef`), at least the number of candidates
    /// asked for; can be changed at search time ([`AnnIndex::set_expansion_search`](super::AnnIndex::set_expansion_search)).
    pub expansion_search: usize,
    /// The graph's vectors: the rows' top principal directions ([`ReduceDim::Auto`], the
    /// default for new builds) or the full rows. Files without it were built full width.
    #[serde(default)]
    pub reduce: ReduceDim,
}

impl Default for AnnParams {
    fn default() -> Self {
        Self {
            quantization: AnnQuantization::I8,
            connectivity: 32,
            expansion_add: 128,
            expansion_search: 256,
            reduce: ReduceDim::Auto,
        }
    }
}

impl AnnParams {
    /// The engine's options for a graph of `dim`-wide vectors: the inner product of unit
    /// vectors (the normalised rows, or their projections normalised again: the cosine at the
    /// price of a dot product).
    pub(super) fn options(&self, dim: usize) -> usearch::IndexOptions {
        usearch::IndexOptions {
            dimensions: dim,
            metric: usearch::MetricKind::IP,
            quantization: self.quantization.scalar(),
            connectivity: self.connectivity,
            expansion_add: self.expansion_add,
            expansion_search: self.expansion_search,
            multi: false,
        }
    }

    pub(super) fn check(&self) -> Result<(), ClipError> {
        let ok = (2..=1024).contains(&self.connectivity)
            && (1..=65_536).contains(&self.expansion_add)
            && (1..=65_536).contains(&self.expansion_search);
        if !ok {
            return Err(ClipError::Mismatch {
                message: format!(
                    "ANN parameters out of range: connectivity {} (2..=1024), expansion_add {} \
                     and expansion_search {} (1..=65536)",
                    self.connectivity, self.expansion_add, self.expansion_search
                ),
            });
        }
        Ok(())
    }
}

/// The `.npy` an ANN index was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpyStamp {
    /// SHA-256 of the whole file (the digest its manifest records).
    pub sha256: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its modification time, nanoseconds since the Unix epoch (0 if the file system has none).
    pub modified_ns: u128,
}

/// The JSON header of a `.ann` file: what was built, from what, how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnHeader {
    /// `taiyi-ann`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// The engine and its version (`usearch 2.26.6`).
    pub engine: String,
    /// Graph parameters.
    pub params: AnnParams,
    /// Rows indexed (= rows of the `.npy`).
    pub rows: usize,
    /// Width of the vectors.
    pub dim: usize,
    /// The metric: `cosine` (inner product of normalised rows).
    pub metric: String,
    /// The `.npy` it was built from.
    pub npy: NpyStamp,
    /// Seconds the graph took to build.
    pub build_seconds: f64,
    /// CRC-32 of the graph bytes: a truncated, damaged or mixed-up file is refused before the
    /// engine reads it.
    pub graph_crc32: u32,
    /// The PCA projection of the graph's vectors (its `[dim, projection.dim]` f32 matrix is
    /// stored between the header and the graph); `None`: full width.
    #[serde(default)]
    pub projection: Option<ProjectionInfo>,
    /// Rows added to or removed from the graph since it was built (updates edit the graph in
    /// place until these reach [`REBUILD_AFTER`](super::REBUILD_AFTER) of its rows; then it is
    /// built again).
    #[serde(default)]
    pub edits: usize,
}

impl AnnHeader {
    /// Where the projection matrix (when there is one) and the graph start, after a header
    /// of `header_len` bytes.
    pub(super) fn layout(&self, header_len: usize) -> (usize, usize) {
        let start = graph_offset(header_len);
        match &self.projection {
            Some(p) => {
                let end = start + super::pca::Projection::byte_len(self.dim, p.dim);
                (start, end.div_ceil(ALIGN) * ALIGN)
            }
            None => (start, start),
        }
    }

    /// The graph's width: the projection's, else the rows'.
    pub(super) fn graph_dim(&self) -> usize {
        self.projection.map_or(self.dim, |p| p.dim)
    }
}

/// The header of the `.ann` file `file` (of `len` bytes) and its length in bytes (see
/// [`AnnHeader::layout`] for what follows it).
pub(super) fn read_header(
    path: &Path,
    file: &std::fs::File,
    len: u64,
) -> Result<(AnnHeader, usize), ClipError> {
    let bad = |message: String| ClipError::Index {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = file;
    let mut head = [0u8; 16];
    reader.read_exact(&mut head).map_err(|_| {
        bad(format!(
            "{len} bytes: too short for an ANN index (not written by taiyi index build?)"
        ))
    })?;
    if &head[..8] != MAGIC {
        return Err(bad("not an ANN index written by `taiyi index build`".into()));
    }
    let header_len = u64::from_le_bytes([
        head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
    ]);
    if header_len > MAX_HEADER || 16 + header_len > len {
        return Err(bad(format!(
            "its header claims {header_len} bytes in a file of {len}"
        )));
    }
    let mut json = vec![0u8; header_len as usize];
    reader.read_exact(&mut json).map_err(io)?;
    let header: AnnHeader =
        serde_json::from_slice(&json).map_err(|e| bad(format!("unreadable header: {e}")))?;
    Ok((header, header_len as usize))
}

/// Where the graph starts after a header of `header_len` bytes.
pub(super) fn graph_offset(header_len: usize) -> usize {
    (16 + header_len).div_ceil(ALIGN) * ALIGN
}
