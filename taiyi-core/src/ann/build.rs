//! [`AnnIndex::build`](super::AnnIndex::build): the graph of an index, written as a `.ann`
//! file.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::AnnIndex;
use super::format::{ALIGN, AnnHeader, AnnParams, FORMAT, MAGIC, NpyStamp, VERSION, graph_offset};
use crate::ClipError;
use crate::outfile::AtomicFile;
use crate::retrieval::EmbeddingIndex;

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

pub(super) fn build(npy: &Path, params: &AnnParams) -> Result<AnnBuild, ClipError> {
    params.check()?;
    let (before_bytes, before_modified) = crate::commit::len_and_mtime(npy)?;
    let (index, sha256) = EmbeddingIndex::load_with_digest(npy)?;
    let (rows, dim) = index.embeddings.dim();
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
    let vectors = index.embeddings.view();
    // Rows are dealt round-robin to the threads; usearch adds concurrently.
    let failed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let graph = &graph;
                s.spawn(move || -> Result<(), cxx::Exception> {
                    for r in (t..rows).step_by(threads) {
                        let row = vectors.row(r);
                        let values = row.as_slice().map_or_else(|| row.to_vec(), <[f32]>::to_vec);
                        graph.add(r as u64, &values)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).find_map(|r| match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Some(e)),
            Err(_) => Some(None),
        })
    });
    match failed {
        None => {}
        Some(Some(e)) => return Err(ann("cannot add a vector")(e)),
        Some(None) => {
            return Err(ClipError::Mismatch {
                message: "a graph-building thread panicked".into(),
            });
        }
    }
    drop(index);
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
