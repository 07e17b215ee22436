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

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::commit::{fault, sha256_hex, sync_dir_of};
use crate::outfile::AtomicFile;
use crate::{ClipError, npy};

pub use manifest::{ShardInfo, manifest_path, verify};
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
#[allow(clippy::expect_used, clippy::panic)]
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

    /// Every fault-injection point of [`write_clip_retrieval`], in commit order.
    const STEPS: [&str; 9] = [
        "npy-write",
        "parquet-write",
        "manifest-write",
        "manifest-sync",
        "npy-rename",
        "parquet-rename",
        "data-sync",
        "manifest-cleanup",
        "none",
    ];

    fn paths(prefix: &str, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("{prefix}{i}.png")))
            .collect()
    }

    /// A shard rewritten with a failure at each step verifies as the previous shard (before
    /// the renames), is refused (between the two renames: files of two generations), or
    /// verifies as the new one; never a stale pair accepted. Then a rerun repairs it.
    #[test]
    fn a_failed_rewrite_at_any_step_is_whole_or_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let shard = Shard::new(1, 3).expect("shard");
        for (k, step) in STEPS.iter().enumerate() {
            let out = dir.path().join(format!("run{k}"));
            let old = write_clip_retrieval(
                &out,
                shard,
                &[1.0; 4],
                2,
                &paths("old", 2),
                EmbeddingDtype::F16,
            )
            .expect("first write");
            assert_eq!(verify(&out, shard).expect("old").rows, 2);
            crate::commit::tests::fail_at(Some(step));
            let result = write_clip_retrieval(
                &out,
                shard,
                &[0.5; 10],
                2,
                &paths("new", 5),
                EmbeddingDtype::F32,
            );
            crate::commit::tests::fail_at(None);
            assert_eq!(result.is_ok(), k >= 7, "{step}: {result:?}");
            match (k, verify(&out, shard)) {
                (0..=4, Ok(info)) => {
                    assert_eq!((info.rows, info.dtype), (2, EmbeddingDtype::F16), "{step}");
                    assert_eq!(info.files, old);
                }
                (5, Err(ClipError::Index { message, .. })) => {
                    assert!(message.contains("not the pair"), "{message}");
                }
                (6.., Ok(info)) => {
                    assert_eq!((info.rows, info.dtype), (5, EmbeddingDtype::F32), "{step}");
                }
                (_, other) => panic!("{step}: {other:?}"),
            }
            let litter = std::fs::read_dir(out.join("img_emb"))
                .expect("dir")
                .chain(std::fs::read_dir(out.join("metadata")).expect("dir"))
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                })
                .count();
            assert_eq!(litter, 0, "{step}");
            write_clip_retrieval(
                &out,
                shard,
                &[1.0; 2],
                2,
                &paths("x", 1),
                EmbeddingDtype::F16,
            )
            .expect("rerun");
            assert_eq!(verify(&out, shard).expect("rerun").rows, 1, "{step}");
        }
    }

    /// An orphan pair (no manifest), a stale `.parquet` beside a new `.npy`, another `i/N`
    /// are refused; an empty shard is whole.
    #[test]
    fn verify_refuses_orphans_and_mixed_pairs() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path();
        let shard = Shard::new(0, 2).expect("shard");
        let files = write_clip_retrieval(out, shard, &[], 4, &[], EmbeddingDtype::F16)
            .expect("empty shard");
        let info = verify(out, shard).expect("empty shard verifies");
        assert_eq!((info.rows, info.dim), (0, 4));
        let npy = std::fs::read(&files.embeddings).expect("npy");
        assert!(String::from_utf8_lossy(&npy).contains("'shape': (0, 4)"));
        // Another write's .parquet beside this .npy.
        let stale = std::fs::read(&files.metadata).expect("parquet");
        write_clip_retrieval(
            out,
            shard,
            &[1.0; 4],
            4,
            &paths("a", 1),
            EmbeddingDtype::F16,
        )
        .expect("write");
        std::fs::write(&files.metadata, &stale).expect("stale");
        assert!(matches!(verify(out, shard), Err(ClipError::Index { .. })));
        // Shard 0/3 has the same file names as 0/2: its manifest says 0/2.
        assert!(verify(out, Shard::new(0, 3).expect("shard")).is_err());
        // An orphan: no manifest.
        std::fs::remove_file(manifest_path(out, shard)).expect("rm");
        let err = verify(out, shard).expect_err("orphan");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
