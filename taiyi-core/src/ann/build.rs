//! [`AnnIndex::build`](super::AnnIndex::build): the graph of an index, written as a `.ann`
//! file.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::AnnIndex;
use super::format::{ALIGN, AnnHeader, AnnParams, FORMAT, MAGIC, NpyStamp, VERSION, graph_offset};
use super::mapped::MappedRows;
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
    let (before_bytes, before_modified) = crate::commit::len_and_mtime(npy)?;
    // The rows are read from a map, one at a time, never all in memory: a build holds the
    // graph, not the float32 rows as well (at 1M × 1024, 3.8 GiB less).
    let manifest = ManifestFile::read(npy)?;
    let sha256 = crate::commit::file_sha256(npy)?.ok_or_else(|| ClipError::Index {
        path: npy.to_path_buf(),
        message: "missing or not a regular file".into(),
    })?;
    let described = manifest.generation(npy, &sha256)?;
    let mapped = MappedRows::open(npy)?;
    let (rows, dim) = mapped.view()?.dim();
    described.check_shape(rows, dim)?;
    let path = AnnIndex::ann_path(npy);
    let ann = |what: &'static str| {
        let path = path.clone();
        move |e: cxx::Exception| ClipError::Ann {
            path,
            what,
            source: Box::new(e),
        }
    };
    let started = Instant::now();
    let graph =
        usearch::Index::new(&params.options(dim)).map_err(ann("cannot create the graph"))?;
    let threads = rayon::current_num_threads().clamp(1, rows.max(1));
    graph
        .reserve_capacity_and_threads(rows, threads)
        .map_err(ann("cannot reserve the graph"))?;
    // Blocks of rows are read in turn (positioned reads: memory holds one block, not the
    // file) and their rows added from the rayon pool; usearch adds concurrently. Each row is
    // checked as a load checks it (finite, non-zero, norm 1 if the manifest says so) and
    // normalised.
    let (names, normalized) = (&described.names, described.normalized);
    let (mut block, mut bytes) = (Vec::new(), Vec::new());
    for first in (0..rows).step_by(BLOCK_ROWS) {
        let count = BLOCK_ROWS.min(rows - first);
        block.resize(count * dim, 0f32);
        mapped.read_rows(first, &mut block, &mut bytes)?;
        block
            .par_chunks_mut(dim)
            .enumerate()
            .try_for_each(|(i, values)| {
                let r = first + i;
                let row = ndarray::ArrayView1::from(&*values);
                let norm = checked_norm(npy, r, &names[r], row, normalized)?;
                if !normalized {
                    values.iter_mut().for_each(|v| *v /= norm);
                }
                graph
                    .add(r as u64, values)
                    .map_err(ann("cannot add a vector"))
            })?;
    }
    let build_seconds = started.elapsed().as_secs_f64();
    // The .npy must not have changed while it was read and indexed.
    let (bytes, modified_ns) = crate::commit::len_and_mtime(npy)?;
    if (bytes, modified_ns) != (before_bytes, before_modified) {
        return Err(ClipError::Index {
            path: npy.to_path_buf(),
            message: "it changed while its ANN index was built: build again".into(),
        });
    }
    let mut header = AnnHeader {
        format: FORMAT.to_string(),
        version: VERSION,
        engine: format!("usearch {}", usearch::version()),
        params: *params,
        rows,
        dim,
        metric: "cosine".to_string(),
        npy: NpyStamp {
            sha256,
            bytes,
            modified_ns,
        },
        build_seconds,
        graph_crc32: 0,
    };
    let mut graph_bytes = vec![0u8; graph.serialized_length()];
    graph
        .save_to_buffer(&mut graph_bytes)
        .map_err(ann("cannot serialise the graph"))?;
    drop(graph);
    header.graph_crc32 = crc32fast::hash(&graph_bytes);
    let json = serde_json::to_vec(&header).map_err(|e| ClipError::Mismatch {
        message: format!("cannot serialise the ANN header: {e}"),
    })?;
    let offset = graph_offset(json.len());
    debug_assert_eq!(offset % ALIGN, 0);
    let mut file = AtomicFile::create(&path)?;
    file.write(MAGIC)?;
    file.write(&(json.len() as u64).to_le_bytes())?;
    file.write(&json)?;
    file.write(&vec![0u8; offset - 16 - json.len()])?;
    file.write(&graph_bytes)?;
    file.sync()?;
    file.commit()?;
    crate::commit::sync_dir_of(&path)?;
    Ok(AnnBuild {
        path,
        header,
        file_bytes: (offset + graph_bytes.len()) as u64,
        threads,
    })
}
