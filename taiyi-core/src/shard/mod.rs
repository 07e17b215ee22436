//! Sharded embedding jobs for schedulers without Python (Slurm arrays, Kubernetes indexed jobs):
//! a deterministic `i/N` slice of a file list, and clip-retrieval's output layout.
//!
//! Shard `i` of `N` is the contiguous slice `[i·n/N, (i+1)·n/N)` of the list (a folder walk,
//! [`crate::walk::image_files`], is sorted by path), so the
//! shards in index order are exactly the unsharded list, every file in exactly one shard.
//! Outputs follow [clip-retrieval](https://github.com/rom1504/clip-retrieval)'s
//! `img_emb/img_emb_{i}.npy` (float16 or float32, `[rows, d]`) and
//! `metadata/metadata_{i}.parquet` (column `image_path`, same row order), which autofaiss,
//! clip-retrieval's back end and `embedding_reader` read directly. `{i}` is zero-padded to the
//! digits of `N` (like LAION's `img_emb_0000.npy`), so a name sort is the index order.
//!
//! # One unit: the shard manifest
//!
//! The two files are bound by `DIR/shards/shard_{i}.json` (a folder clip-retrieval's readers
//! do not look in): `i/N`, the row count, width and dtype, and the SHA-256 of both files.
//! [`verify`] is the check taiyi's readers make before using a shard: a shard without a
//! manifest (an orphan), or whose two files are not the pair of one generation, is refused.
//! [`write_clip_retrieval`] commits like [`crate::retrieval::EmbeddingIndex::write`]:
//!
//! 1. both new files written in full to temporary files and synced (a full disk fails here,
//!    with the previous shard untouched);
//! 2. the manifest replaced (rename, folder sync) by one naming the new generation and, as
//!    `previous`, the generation of the pair now on disk if that pair was whole;
//! 3. the `.npy` renamed into place, then the `.parquet`, both folders synced;
//! 4. the manifest rewritten without `previous` (best effort).
//!
//! A failure before step 3 leaves the previous shard verifying as before; after the second
//! rename, the new one. Between the two renames (a failed or interrupted rename of the
//! `.parquet`) the pair is of two generations and [`verify`] refuses it: rerun the shard.
//! An empty shard (more shards than images) is valid: a `[0, d]` array and a 0-row table.

mod manifest;
mod parquet;
mod read;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::commit::{fault, sha256_hex, sync_dir_of};
use crate::outfile::AtomicFile;
use crate::{ClipError, npy};

pub use manifest::{ShardInfo, manifest_path, verify};
pub use parquet::{read_string_column, string_column_file};
pub use read::{MergedShards, read_all};

/// Shard `index` of `count` (`"i/N"`, `0 <= i < N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole list: shard 0 of 1.
    pub const ONE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; errors unless `count >= 1` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, ClipError> {
        if count == 0 || index >= count {
            return Err(ClipError::Mismatch {
                message: format!("shard {index}/{count}: need 0 <= i < N and N >= 1"),
            });
        }
        Ok(Self { index, count })
    }

    /// The shard's index `i`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of shards `N`.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The range of positions of a list of `len` items that this shard takes.
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        // u128: len * count cannot overflow.
        let at = |k: usize| ((len as u128 * k as u128) / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// This shard's slice of `items`.
    pub fn select<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        &items[self.range(items.len())]
    }

    /// `{i}` as it appears in file names: zero-padded to the digits of `N`.
    pub fn file_key(&self) -> String {
        let width = self.count.to_string().len();
        format!("{:0width$}", self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ClipError;

    fn from_str(s: &str) -> Result<Self, ClipError> {
        let bad = || ClipError::Mismatch {
            message: format!("shard '{s}': expected i/N with 0 <= i < N, e.g. 0/8"),
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<usize>().map_err(|_| bad())?;
        let n = n.trim().parse::<usize>().map_err(|_| bad())?;
        Self::new(i, n).map_err(|_| bad())
    }
}

/// Element type of the embedding files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingDtype {
    /// `<f2`, clip-retrieval's default (round to nearest even, as numpy's `astype`).
    #[default]
    F16,
    /// `<f4`.
    F32,
}

impl EmbeddingDtype {
    /// The name used on the command line and in the shard manifest: `float16`, `float32`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::F16 => "float16",
            Self::F32 => "float32",
        }
    }

    /// The `.npy` `descr` of the type: `<f2`, `<f4`.
    pub fn descr(&self) -> &'static str {
        match self {
            Self::F16 => "<f2",
            Self::F32 => "<f4",
        }
    }
}

impl FromStr for EmbeddingDtype {
    type Err = ClipError;

    fn from_str(s: &str) -> Result<Self, ClipError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f16" | "float16" => Ok(Self::F16),
            "f32" | "float32" => Ok(Self::F32),
            _ => Err(ClipError::Mismatch {
                message: format!("embedding dtype '{s}': expected float16 or float32"),
            }),
        }
    }
}

/// The files written by [`write_clip_retrieval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFiles {
    /// `img_emb/img_emb_{i}.npy`.
    pub embeddings: PathBuf,
    /// `metadata/metadata_{i}.parquet`.
    pub metadata: PathBuf,
}

impl ShardFiles {
    /// The files of `shard` under `out_dir`.
    pub fn new(out_dir: &Path, shard: Shard) -> Self {
        let key = shard.file_key();
        Self {
            embeddings: out_dir.join("img_emb").join(format!("img_emb_{key}.npy")),
            metadata: out_dir
                .join("metadata")
                .join(format!("metadata_{key}.parquet")),
        }
    }
}

/// Write one shard in clip-retrieval's layout under `out_dir`: the `[rows, dim]` features
/// (row-major `features`) and the `image_path` of each row, and the shard manifest binding
/// them, replacing a previous output of the shard as one unit (see the module docs). Zero
/// rows write a `[0, dim]` array and an empty table.
///
/// # Shapes
/// `features`: `rows * dim` values, `rows == paths.len()`, `dim >= 1`.
///
/// # Errors
/// [`ClipError::Mismatch`] if the shapes disagree; the errors of
/// [`crate::outfile::AtomicFile`] and of creating the folders.
pub fn write_clip_retrieval(
    out_dir: &Path,
    shard: Shard,
    features: &[f32],
    dim: usize,
    paths: &[PathBuf],
    dtype: EmbeddingDtype,
) -> Result<ShardFiles, ClipError> {
    if dim == 0 || features.len() != paths.len() * dim {
        return Err(ClipError::Mismatch {
            message: format!(
                "{} feature values for {} paths of dimension {dim}",
                features.len(),
                paths.len()
            ),
        });
    }
    let files = ShardFiles::new(out_dir, shard);
    let manifest_path = manifest_path(out_dir, shard);
    for f in [&files.embeddings, &files.metadata, &manifest_path] {
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ClipError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
    }
    let shape = [paths.len(), dim];
    let npy_bytes = match dtype {
        EmbeddingDtype::F32 => npy::encode_f32(&shape, features)?,
        EmbeddingDtype::F16 => npy::encode_f16(&shape, features)?,
    };
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let parquet_bytes = string_column_file("image_path", &names);
    let current = manifest::Generation {
        rows: paths.len(),
        dim,
        dtype: dtype.name().to_string(),
        npy_sha256: sha256_hex(&npy_bytes),
        parquet_sha256: sha256_hex(&parquet_bytes),
    };
    // 1. Both files, complete and synced, under temporary names.
    let mut npy_file = AtomicFile::create(&files.embeddings)?;
    fault("npy-write", &files.embeddings)?;
    npy_file.write(&npy_bytes)?;
    npy_file.sync()?;
    let mut parquet_file = AtomicFile::create(&files.metadata)?;
    fault("parquet-write", &files.metadata)?;
    parquet_file.write(&parquet_bytes)?;
    parquet_file.sync()?;
    // The files a link points to are the ones replaced and checked.
    let real = ShardFiles {
        embeddings: npy_file.target().to_path_buf(),
        metadata: parquet_file.target().to_path_buf(),
    };
    // 2. The manifest naming the new generation and the one on disk.
    let previous = manifest::generation_on_disk(&real, &manifest_path)?;
    let m = manifest::Manifest::new(shard, &files, out_dir, current, previous);
    fault("manifest-write", &manifest_path)?;
    crate::outfile::write_atomic(&manifest_path, &m.to_json()?)?;
    fault("manifest-sync", &manifest_path)?;
    sync_dir_of(&manifest_path)?;
    // 3. Both files into place: the new shard is whole after the second rename.
    fault("npy-rename", &files.embeddings)?;
    npy_file.commit()?;
    fault("parquet-rename", &files.metadata)?;
    parquet_file.commit()?;
    fault("data-sync", &files.metadata)?;
    sync_dir_of(&real.embeddings)?;
    sync_dir_of(&real.metadata)?;
    // 4. Drop the previous generation (best effort: the shard verifies either way).
    if m.previous.is_some() {
        let _ = fault("manifest-cleanup", &manifest_path).and_then(|()| {
            let json =
                manifest::Manifest::new(shard, &files, out_dir, m.current, None).to_json()?;
            crate::outfile::write_atomic(&manifest_path, &json)
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
