//! Reading an output folder of `embed-image --shard i/N --out-dir DIR` back as one collection
//! ([`read_all`]): what `taiyi index build IDX.npy --from-shards DIR` merges into an index.

use std::path::Path;

use super::manifest::shard_count;
use super::{EmbeddingDtype, Shard, verify};
use crate::ClipError;

/// Every shard of a folder, in shard order: the rows as float32 and their names.
#[derive(Debug, Clone)]
pub struct MergedShards {
    /// Width of the embeddings.
    pub dim: usize,
    /// `[rows, dim]`, row-major (float16 shards widened exactly).
    pub values: Vec<f32>,
    /// One `image_path` per row.
    pub names: Vec<String>,
    /// How many shards (`N`).
    pub shards: usize,
}

/// Read every shard `i/N` of `out_dir` (N from its manifests), each checked by [`verify`]
/// (manifest, digests of both files, header), and concatenate them in shard order — the order
/// of the unsharded run.
///
/// # Errors
/// [`ClipError::Index`] if the folder has no shard manifest, shards disagree on `N` or width,
/// or one is missing or fails [`verify`]; [`ClipError::Npy`] / [`ClipError::Io`] for files
/// that cannot be read; metadata not written by taiyi is refused.
pub fn read_all(out_dir: &Path) -> Result<MergedShards, ClipError> {
    let n = shard_count(out_dir)?;
    let mut merged = MergedShards {
        dim: 0,
        values: Vec::new(),
        names: Vec::new(),
        shards: n,
    };
    for i in 0..n {
        let shard = Shard::new(i, n)?;
        let info = verify(out_dir, shard)?;
        if merged.dim != 0 && info.dim != merged.dim && info.rows > 0 {
            return Err(ClipError::Index {
                path: info.files.embeddings.clone(),
                message: format!(
                    "shard {shard} holds {}-d embeddings, the shards before it {}-d",
                    info.dim, merged.dim
                ),
            });
        }
        merged.dim = merged.dim.max(info.dim);
        let bytes = std::fs::read(&info.files.embeddings).map_err(|source| ClipError::Io {
            path: info.files.embeddings.clone(),
            source,
        })?;
        let width = match info.dtype {
            EmbeddingDtype::F16 => 2,
            EmbeddingDtype::F32 => 4,
        };
        let data_len = info.rows * info.dim * width;
        // The header was checked by `verify`; the data is the file's tail.
        let data = bytes
            .len()
            .checked_sub(data_len)
            .map(|start| &bytes[start..])
            .ok_or_else(|| ClipError::Npy {
                path: info.files.embeddings.clone(),
                message: format!("shorter than its {data_len} bytes of data"),
            })?;
        match info.dtype {
            EmbeddingDtype::F16 => merged.values.extend(
                data.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            EmbeddingDtype::F32 => merged.values.extend(
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
        let table = std::fs::read(&info.files.metadata).map_err(|source| ClipError::Io {
            path: info.files.metadata.clone(),
            source,
        })?;
        let names = super::parquet::read_string_column(&table, info.rows).map_err(|message| {
            ClipError::Index {
                path: info.files.metadata.clone(),
                message,
            }
        })?;
        merged.names.extend(names);
    }
    Ok(merged)
}
