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

mod parquet;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{ClipError, npy};

pub use parquet::string_column_file;

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

/// Write one shard in clip-retrieval's layout under `out_dir`: the `[rows, dim]` features
/// (row-major `features`) and the `image_path` of each row.
///
/// # Shapes
/// `features`: `rows * dim` values, `rows == paths.len()`.
pub fn write_clip_retrieval(
    out_dir: &Path,
    shard: Shard,
    features: &[f32],
    dim: usize,
    paths: &[PathBuf],
    dtype: EmbeddingDtype,
) -> Result<ShardFiles, ClipError> {
    if features.len() != paths.len() * dim {
        return Err(ClipError::Mismatch {
            message: format!(
                "{} feature values for {} paths of dimension {dim}",
                features.len(),
                paths.len()
            ),
        });
    }
    let key = shard.file_key();
    let files = ShardFiles {
        embeddings: out_dir.join("img_emb").join(format!("img_emb_{key}.npy")),
        metadata: out_dir
            .join("metadata")
            .join(format!("metadata_{key}.parquet")),
    };
    for f in [&files.embeddings, &files.metadata] {
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ClipError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
    }
    let shape = [paths.len(), dim];
    match dtype {
        EmbeddingDtype::F32 => npy::write_f32(&files.embeddings, &shape, features)?,
        EmbeddingDtype::F16 => npy::write_f16(&files.embeddings, &shape, features)?,
    }
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    npy::write_atomic(&files.metadata, &string_column_file("image_path", &names))?;
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_list_in_order() -> Result<(), ClipError> {
        for len in [0usize, 1, 5, 7, 200] {
            for count in [1usize, 2, 3, 8, 13] {
                let items: Vec<usize> = (0..len).collect();
                let joined: Vec<usize> = (0..count)
                    .flat_map(|i| Shard::new(i, count).map(|s| s.select(&items).to_vec()))
                    .flatten()
                    .collect();
                assert_eq!(joined, items, "len {len}, {count} shards");
                let sizes: Vec<usize> = (0..count)
                    .map(|i| Shard::new(i, count).map(|s| s.range(len).len()))
                    .collect::<Result<_, _>>()?;
                let (min, max) = (sizes.iter().min(), sizes.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{sizes:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn parse_display_and_file_keys() -> Result<(), ClipError> {
        let s: Shard = "3/12".parse()?;
        assert_eq!(
            (s.index(), s.count(), s.to_string()),
            (3, 12, "3/12".to_string())
        );
        assert_eq!(s.file_key(), "03");
        assert_eq!(Shard::new(0, 3)?.file_key(), "0");
        assert_eq!(Shard::new(7, 1000)?.file_key(), "0007");
        for bad in ["3", "3/3", "0/0", "-1/2", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn writes_the_clip_retrieval_layout() -> Result<(), ClipError> {
        let dir = std::env::temp_dir().join(format!("taiyi-shard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = vec![PathBuf::from("a.png"), PathBuf::from("b.png")];
        let feats = [0.5f32, -0.25, 1.0, 0.1];
        let files = write_clip_retrieval(
            &dir,
            Shard::new(1, 2)?,
            &feats,
            2,
            &paths,
            EmbeddingDtype::F16,
        )?;
        assert_eq!(files.embeddings, dir.join("img_emb/img_emb_1.npy"));
        assert_eq!(files.metadata, dir.join("metadata/metadata_1.parquet"));
        let npy = std::fs::read(&files.embeddings).expect("npy");
        assert!(String::from_utf8_lossy(&npy[..80]).contains("'descr': '<f2'"));
        // 0.1 is not representable in f16: the nearest, 0x2e66, as numpy rounds it.
        assert_eq!(&npy[npy.len() - 2..], &[0x66, 0x2e]);
        assert!(
            write_clip_retrieval(
                &dir,
                Shard::new(0, 2)?,
                &feats,
                3,
                &paths,
                EmbeddingDtype::F32
            )
            .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
