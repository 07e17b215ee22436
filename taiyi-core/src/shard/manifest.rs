//! The per-shard manifest `DIR/shards/shard_{i}.json`: binds `img_emb_{i}.npy` and
//! `metadata_{i}.parquet` by row count and both SHA-256 digests, written around the two
//! renames so that a shard is replaced as one unit (see [`super`] for the commit order), and
//! [`verify`], the check every taiyi reader of a shard makes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EmbeddingDtype, Shard, ShardFiles};
use crate::ClipError;
use crate::commit::file_sha256;

/// The manifest's `format` value.
const FORMAT: &str = "taiyi-shard";
/// The manifest's `version`.
const VERSION: u32 = 1;

/// One generation of a shard: what the manifest says about one pair of files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Generation {
    pub(super) rows: usize,
    pub(super) dim: usize,
    pub(super) dtype: String,
    pub(super) npy_sha256: String,
    pub(super) parquet_sha256: String,
}

/// The JSON manifest of a shard: the newest generation at the top level and, during a swap,
/// the previous one.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    format: String,
    version: u32,
    /// `i/N`.
    shard: String,
    /// The two files, relative to the output folder.
    embeddings: String,
    metadata: String,
    #[serde(flatten)]
    pub(super) current: Generation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous: Option<Generation>,
}

impl Manifest {
    pub(super) fn new(
        shard: Shard,
        files: &ShardFiles,
        out_dir: &Path,
        current: Generation,
        previous: Option<Generation>,
    ) -> Self {
        let rel = |p: &Path| {
            p.strip_prefix(out_dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        Self {
            format: FORMAT.to_string(),
            version: VERSION,
            shard: shard.to_string(),
            embeddings: rel(&files.embeddings),
            metadata: rel(&files.metadata),
            current,
            previous,
        }
    }

    pub(super) fn to_json(&self) -> Result<Vec<u8>, ClipError> {
        serde_json::to_vec_pretty(self).map_err(|e| ClipError::Mismatch {
            message: format!("cannot serialise the shard manifest: {e}"),
        })
    }

    /// The generation whose files have these digests.
    fn generation(self, npy: &str, parquet: &str) -> Option<Generation> {
        let matches = |g: &Generation| g.npy_sha256 == npy && g.parquet_sha256 == parquet;
        if matches(&self.current) {
            Some(self.current)
        } else {
            self.previous.filter(matches)
        }
    }
}

/// What [`verify`] found: a whole shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard's two files.
    pub files: ShardFiles,
    /// Rows in both files.
    pub rows: usize,
    /// Width of the embeddings.
    pub dim: usize,
    /// Element type of the embeddings.
    pub dtype: EmbeddingDtype,
}

/// The manifest's bytes (a regular file of at most [`crate::input::JSON_MAX_BYTES`]: it
/// holds digests, no names).
fn read(path: &Path) -> Result<Vec<u8>, ClipError> {
    let kind = crate::input::InputKind::new("shard manifest", crate::input::JSON_MAX_BYTES);
    crate::input::read_input(path, kind).map_err(|source| ClipError::Read {
        what: "shard manifest",
        path: path.to_path_buf(),
        source,
    })
}

/// The generation of the pair of files now on disk according to the manifest there, if that
/// shard is whole (used by the writer to keep it valid during a swap).
pub(super) fn generation_on_disk(
    files: &ShardFiles,
    manifest_path: &Path,
) -> Result<Option<Generation>, ClipError> {
    if !std::fs::metadata(manifest_path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let (Some(npy), Some(parquet)) = (
        file_sha256(&files.embeddings)?,
        file_sha256(&files.metadata)?,
    ) else {
        return Ok(None);
    };
    let manifest = read(manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
    Ok(manifest
        .filter(|m| m.format == FORMAT && m.version == VERSION)
        .and_then(|m| m.generation(&npy, &parquet)))
}

/// Check shard `shard` under `out_dir` before reading it: its manifest exists and names a
/// generation whose digests are those of the `.npy` and the `.parquet` on disk now (so the two
/// files were written together, completely, for this `i/N`), and the `.npy` header agrees with
/// its row count, width and dtype. A shard without a manifest (an orphan, or written by
/// another tool) is refused.
///
/// # Errors
/// [`ClipError::Index`] naming the file at fault: a missing or malformed manifest, another
/// `i/N`, files of different generations or of another write; the I/O errors of reading them.
pub fn verify(out_dir: &Path, shard: Shard) -> Result<ShardInfo, ClipError> {
    let files = ShardFiles::new(out_dir, shard);
    let manifest_path = manifest_path(out_dir, shard);
    let bad = |path: &Path, message: String| ClipError::Index {
        path: path.to_path_buf(),
        message,
    };
    if std::fs::symlink_metadata(&manifest_path).is_err() {
        return Err(bad(
            &manifest_path,
            format!(
                "missing: shard {shard} has no manifest, so its embeddings and metadata cannot \
                 be checked against each other (an output of a failed run?): embed the shard \
                 again"
            ),
        ));
    }
    let m: Manifest = serde_json::from_slice(&read(&manifest_path)?)
        .map_err(|e| bad(&manifest_path, format!("not a shard manifest: {e}")))?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(bad(
            &manifest_path,
            format!("unknown manifest format {} version {}", m.format, m.version),
        ));
    }
    if m.shard != shard.to_string() {
        return Err(bad(
            &manifest_path,
            format!("it describes shard {}, not {shard}", m.shard),
        ));
    }
    let digest = |p: &Path| {
        file_sha256(p)?.ok_or_else(|| bad(p, "missing or not a regular file".to_string()))
    };
    let (npy, parquet) = (digest(&files.embeddings)?, digest(&files.metadata)?);
    let Some(g) = m.generation(&npy, &parquet) else {
        return Err(bad(
            &manifest_path,
            format!(
                "{} and {} are not the pair it was written with (an interrupted or concurrent \
                 write?): embed the shard again",
                files.embeddings.display(),
                files.metadata.display()
            ),
        ));
    };
    let dtype: EmbeddingDtype = g.dtype.parse()?;
    let header = read_npy_header(&files.embeddings)?;
    let shape_ok = header.shape == [g.rows, g.dim];
    if !shape_ok || header.descr != dtype.descr() || header.fortran_order {
        return Err(bad(
            &files.embeddings,
            format!(
                "header {:?} {:?} disagrees with the manifest's [{}, {}] {}",
                header.descr, header.shape, g.rows, g.dim, g.dtype
            ),
        ));
    }
    Ok(ShardInfo {
        files,
        rows: g.rows,
        dim: g.dim,
        dtype,
    })
}

/// The header of the `.npy` at `path` (its first bytes only).
fn read_npy_header(path: &Path) -> Result<crate::npy::header::Header, ClipError> {
    use std::io::Read;
    let npy_err = |message: String| ClipError::Npy {
        path: path.to_path_buf(),
        message,
    };
    let mut prefix = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(12 + crate::npy::header::MAX_HEADER_BYTES as u64)
                .read_to_end(&mut prefix)
        })
        .map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let (start, len) = match prefix.get(6..12) {
        Some([1, 0, a, b, ..]) => (10usize, usize::from(u16::from_le_bytes([*a, *b]))),
        Some([2 | 3, 0, a, b, c, d]) => (
            12,
            usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX),
        ),
        _ => return Err(npy_err("not a .npy file of version 1–3".to_string())),
    };
    let text = start
        .checked_add(len)
        .and_then(|end| prefix.get(start..end))
        .ok_or_else(|| npy_err("truncated header".to_string()))?;
    crate::npy::header::parse(text).map_err(npy_err)
}

/// `N` of the shards under `out_dir`, from the first manifest in `DIR/shards/` (each shard is
/// then checked against its own manifest by [`verify`]).
///
/// # Errors
/// [`ClipError::Index`] if there is no readable shard manifest.
pub(super) fn shard_count(out_dir: &Path) -> Result<usize, ClipError> {
    let dir = out_dir.join("shards");
    let none = |message: String| ClipError::Index {
        path: dir.clone(),
        message,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            none(format!(
                "no shard manifests ({e}): not an embed-image --out-dir folder"
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard_") && n.ends_with(".json"))
        })
        .collect();
    entries.sort();
    let first = entries
        .first()
        .ok_or_else(|| none("no shard_*.json manifest in it".into()))?;
    let m: Manifest = serde_json::from_slice(&read(first)?)
        .map_err(|e| none(format!("{}: not a shard manifest: {e}", first.display())))?;
    let shard: Shard = m.shard.parse()?;
    Ok(shard.count())
}

/// `DIR/shards/shard_{i}.json`.
pub fn manifest_path(out_dir: &Path, shard: Shard) -> PathBuf {
    out_dir
        .join("shards")
        .join(format!("shard_{}.json", shard.file_key()))
}
