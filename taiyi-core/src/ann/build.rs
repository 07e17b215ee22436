//! [`AnnIndex::build`](super::AnnIndex::build): the graph of an index, written as a `.ann`
//! file.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::AnnIndex;
use super::format::{ALIGN, AnnHeader, AnnParams, FORMAT, MAGIC, NpyStamp, VERSION};
use super::mapped::MappedRows;
use super::pca::{Projection, ProjectionInfo, SAMPLE_ROWS, SecondMoment};
use rayon::prelude::*;

use crate::ClipError;
use crate::index::{ManifestFile, checked_norm};
use crate::outfile::AtomicFile;

/// What [`AnnIndex::build`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AnnBuild {
    /// The `.ann` file written.
    pub path: std::path::PathBuf,
    /// Its header.
    pub header: AnnHeader,
    /// Bytes written.
    pub file_bytes: u64,
    /// Threads that added vectors.
    pub threads: usize,
}

/// Rows read and added per block (16 MiB of 1024-d float32).
const BLOCK_ROWS: usize = 4096;

pub(super) fn build(npy: &Path, params: &AnnParams) -> Result<AnnBuild, ClipError> {
    params.check()?;
    let source = Source::open(npy)?;
    let (rows, dim) = (source.rows, source.dim);
    let path = AnnIndex::ann_path(npy);
    let ann = |what| engine_error(&path, what);
    let started = Instant::now();
    let check = |first: usize, block: &mut [f32]| source.check_rows(first, block);
    let (mut block, mut bytes) = (Vec::new(), Vec::new());
    let projection = fit_projection(params, &source.mapped, (rows, dim), &check)?;
    let graph_dim = projection.as_ref().map_or(dim, |(p, _)| p.output());
    let graph =
        usearch::Index::new(&params.options(graph_dim)).map_err(ann("cannot create the graph"))?;
    let threads = rayon::current_num_threads().clamp(1, rows.max(1));
    graph
        .reserve_capacity_and_threads(rows, threads)
        .map_err(ann("cannot reserve the graph"))?;
    // Blocks of rows are read in turn (positioned reads: memory holds one block, not the
    // file), checked, projected when the graph is reduced, and added from the rayon pool;
    // usearch adds concurrently.
    for first in (0..rows).step_by(BLOCK_ROWS) {
        let count = BLOCK_ROWS.min(rows - first);
        block.resize(count * dim, 0f32);
        source.mapped.read_rows(first, &mut block, &mut bytes)?;
        check(first, &mut block)?;
        block
            .par_chunks(dim)
            .enumerate()
            .try_for_each_init(Vec::new, |reduced, (i, values)| {
                let vector = match &projection {
                    Some((p, _)) => {
                        p.project(values, reduced);
                        &reduced[..]
                    }
                    None => values,
                };
                graph
                    .add((first + i) as u64, vector)
                    .map_err(ann("cannot add a vector"))
            })?;
    }
    let build_seconds = started.elapsed().as_secs_f64();
    let npy_stamp = source.unchanged()?;
    let matrix = projection.as_ref().map(|(p, _)| p.to_bytes());
    let header = AnnHeader {
        format: FORMAT.to_string(),
        version: VERSION,
        engine: format!("usearch {}", usearch::version()),
        params: *params,
        rows,
        dim,
        metric: "cosine".to_string(),
        npy: npy_stamp,
        build_seconds,
        graph_crc32: 0,
        projection: projection.as_ref().map(|(p, energy)| ProjectionInfo {
            dim: p.output(),
            energy: *energy,
            crc32: matrix.as_deref().map_or(0, crc32fast::hash),
        }),
        edits: 0,
    };
    let (header, file_bytes) = write(&path, header, matrix.as_deref(), graph)?;
    Ok(AnnBuild {
        path,
        header,
        file_bytes,
        threads,
    })
}

/// A usearch failure `what` of the `.ann` file `path`, as [`ClipError::Ann`].
pub(super) fn engine_error(
    path: &Path,
    what: &'static str,
) -> impl FnOnce(cxx::Exception) -> ClipError + use<> {
    let path = path.to_path_buf();
    move |e| ClipError::Ann {
        path,
        what,
        source: Box::new(e),
    }
}

/// The `.npy` a graph is built from (or brought up to date with): its rows mapped, its
/// manifest generation, and its length and time when opened.
pub(super) struct Source<'a> {
    npy: &'a Path,
    pub(super) mapped: MappedRows,
    pub(super) rows: usize,
    pub(super) dim: usize,
    names: Vec<String>,
    normalized: bool,
    sha256: String,
    opened: (u64, u128),
}

impl<'a> Source<'a> {
    /// Open `npy`, read its manifest and the generation its SHA-256 names, and check the
    /// shape against it.
    pub(super) fn open(npy: &'a Path) -> Result<Self, ClipError> {
        let opened = crate::commit::len_and_mtime(npy)?;
        // The rows are read from a map, one block at a time, never all in memory: a build
        // holds the graph, not the float32 rows as well (at 1M × 1024, 3.8 GiB less).
        let manifest = ManifestFile::read(npy)?;
        let sha256 = crate::commit::file_sha256(npy)?.ok_or_else(|| ClipError::Index {
            path: npy.to_path_buf(),
            message: "missing or not a regular file".into(),
        })?;
        let described = manifest.generation(npy, &sha256)?;
        let mapped = MappedRows::open(npy)?;
        let (rows, dim) = mapped.view()?.dim();
        described.check_shape(rows, dim)?;
        Ok(Self {
            npy,
            mapped,
            rows,
            dim,
            names: described.names,
            normalized: described.normalized,
            sha256,
            opened,
        })
    }

    /// Check the rows of `block` (row `first` on) as a load checks them (finite, non-zero,
    /// norm 1 if the manifest says so) and normalise them.
    pub(super) fn check_rows(&self, first: usize, block: &mut [f32]) -> Result<(), ClipError> {
        block
            .par_chunks_mut(self.dim)
            .enumerate()
            .try_for_each(|(i, values)| {
                let r = first + i;
                let row = ndarray::ArrayView1::from(&*values);
                let norm = checked_norm(self.npy, r, &self.names[r], row, self.normalized)?;
                if !self.normalized {
                    values.iter_mut().for_each(|v| *v /= norm);
                }
                Ok(())
            })
    }

    /// The stamp of the `.npy`, which must not have changed since it was opened.
    pub(super) fn unchanged(self) -> Result<NpyStamp, ClipError> {
        let (bytes, modified_ns) = crate::commit::len_and_mtime(self.npy)?;
        if (bytes, modified_ns) != self.opened {
            return Err(ClipError::Index {
                path: self.npy.to_path_buf(),
                message: "it changed while its ANN index was built: build again".into(),
            });
        }
        Ok(NpyStamp {
            sha256: self.sha256,
            bytes,
            modified_ns,
        })
    }
}

/// Write the `.ann` file `path` as one unit: `header` (its graph CRC filled in here), the
/// projection `matrix` when there is one, and `graph`. Returns the header written and the
/// file's length.
pub(super) fn write(
    path: &Path,
    mut header: AnnHeader,
    matrix: Option<&[u8]>,
    graph: usearch::Index,
) -> Result<(AnnHeader, u64), ClipError> {
    let mut graph_bytes = vec![0u8; graph.serialized_length()];
    graph
        .save_to_buffer(&mut graph_bytes)
        .map_err(engine_error(path, "cannot serialise the graph"))?;
    drop(graph);
    header.graph_crc32 = crc32fast::hash(&graph_bytes);
    let json = serde_json::to_vec(&header).map_err(|e| ClipError::Mismatch {
        message: format!("cannot serialise the ANN header: {e}"),
    })?;
    let (projection_at, offset) = header.layout(json.len());
    debug_assert_eq!(offset % ALIGN, 0);
    let mut file = AtomicFile::create(path)?;
    file.write(MAGIC)?;
    file.write(&(json.len() as u64).to_le_bytes())?;
    file.write(&json)?;
    file.write(&vec![0u8; projection_at - 16 - json.len()])?;
    let mut at = projection_at;
    if let Some(m) = matrix {
        file.write(m)?;
        at += m.len();
    }
    file.write(&vec![0u8; offset - at])?;
    file.write(&graph_bytes)?;
    file.sync()?;
    file.commit()?;
    crate::commit::sync_dir_of(path)?;
    Ok((header, (offset + graph_bytes.len()) as u64))
}

/// Checks and normalises the rows of a block that starts at a row.
type CheckRows<'a> = dyn Fn(usize, &mut [f32]) -> Result<(), ClipError> + Sync + 'a;

/// The PCA projection `params.reduce` asks for, fitted on up to [`SAMPLE_ROWS`] rows read in
/// evenly spaced blocks (checked and normalised by `check` as the build's rows are), with
/// the share of their energy it keeps; `None` for the full width.
fn fit_projection(
    params: &AnnParams,
    mapped: &MappedRows,
    (rows, dim): (usize, usize),
    check: &CheckRows<'_>,
) -> Result<Option<(Projection, f64)>, ClipError> {
    if params.reduce == super::pca::ReduceDim::Off || rows == 0 {
        return Ok(None);
    }
    let blocks = rows.div_ceil(BLOCK_ROWS);
    let stride = blocks.div_ceil(SAMPLE_ROWS.div_ceil(BLOCK_ROWS)).max(1);
    let mut moment = SecondMoment::new(dim);
    let (mut block, mut bytes) = (Vec::new(), Vec::new());
    for b in (0..blocks).step_by(stride) {
        let first = b * BLOCK_ROWS;
        let count = BLOCK_ROWS.min(rows - first);
        block.resize(count * dim, 0f32);
        mapped.read_rows(first, &mut block, &mut bytes)?;
        check(first, &mut block)?;
        moment.add(&block);
    }
    moment.fit(params.reduce)
}
