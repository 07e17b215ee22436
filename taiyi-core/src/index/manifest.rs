//! The manifest `FILE.npy.names.json` of an index: its generations ([`Generation`], during a
//! swap two: see the parent module's commit order) and [`ManifestFile`], the one reader.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EmbeddingIndex, Skipped, exists, real_path};
use crate::ClipError;
use crate::commit::file_sha256;

/// The manifest's `format` value.
pub(super) const FORMAT: &str = "taiyi-embedding-index";
/// The manifest's `version`.
pub(super) const VERSION: u32 = 1;

/// One generation of an index: what the manifest says about one `.npy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Generation {
    pub(super) rows: usize,
    pub(super) dim: usize,
    pub(super) normalized: bool,
    pub(super) npy_sha256: String,
    pub(super) names: Vec<String>,
    #[serde(default)]
    pub(super) skipped: Vec<Skipped>,
}

/// The JSON sidecar of an index: the newest generation at the top level (the layout of
/// version 1, which readers of `names` rely on) and, during a swap, the previous one.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    format: String,
    version: u32,
    #[serde(flatten)]
    pub(super) current: Generation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous: Option<Generation>,
}

impl Manifest {
    pub(super) fn new(current: Generation, previous: Option<Generation>) -> Self {
        Self {
            format: FORMAT.to_string(),
            version: VERSION,
            current,
            previous,
        }
    }

    pub(super) fn to_json(&self) -> Result<Vec<u8>, ClipError> {
        serde_json::to_vec_pretty(self).map_err(|e| ClipError::Mismatch {
            message: format!("cannot serialise the index manifest: {e}"),
        })
    }

    /// The generation whose `.npy` has digest `sha256`.
    pub(super) fn generation(self, sha256: &str) -> Option<Generation> {
        if self.current.npy_sha256 == sha256 {
            Some(self.current)
        } else {
            self.previous.filter(|g| g.npy_sha256 == sha256)
        }
    }
}

/// A manifest's bytes, through [`crate::input`] (a regular file, at most
/// [`crate::input::MANIFEST_MAX_BYTES`]); `.npy` files are read by [`crate::npy::read_f32_with`] (digest and values in one pass).
pub(super) fn read(path: &Path) -> Result<Vec<u8>, ClipError> {
    crate::input::read_input(path, crate::input::InputKind::MANIFEST).map_err(|source| {
        ClipError::Read {
            what: "index manifest",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A generation as [`ManifestFile::generation`] hands it out: the rows' names and how they
/// were written.
pub(crate) struct Described {
    /// Row count.
    pub(crate) rows: usize,
    /// Width.
    pub(crate) dim: usize,
    /// Whether the rows on disk are L2-normalised.
    pub(crate) normalized: bool,
    /// One name per row.
    pub(crate) names: Vec<String>,
    /// Inputs left out.
    pub(crate) skipped: Vec<Skipped>,
    /// The manifest it was read from.
    manifest: PathBuf,
}

impl Described {
    /// An error unless this describes an `[n, d]` array with a name per row.
    pub(crate) fn check_shape(&self, n: usize, d: usize) -> Result<(), ClipError> {
        if self.rows != n || self.dim != d || self.names.len() != n {
            return Err(ClipError::Index {
                path: self.manifest.clone(),
                message: format!(
                    "it describes {} rows of width {} with {} names, the .npy holds [{n}, {d}]",
                    self.rows,
                    self.dim,
                    self.names.len()
                ),
            });
        }
        Ok(())
    }
}

/// The manifest of an index `.npy`, read and its format checked (where it lives: see
/// [`EmbeddingIndex::load`]).
pub(crate) struct ManifestFile {
    path: PathBuf,
    manifest: Manifest,
}

impl ManifestFile {
    /// The manifest of `npy`.
    ///
    /// # Errors
    /// As [`EmbeddingIndex::load`] for a missing, legacy, malformed or unknown manifest.
    pub(crate) fn read(npy: &Path) -> Result<Self, ClipError> {
        let real = real_path(npy);
        let path = match EmbeddingIndex::names_path(&real) {
            p if !exists(&p) && real != npy && exists(&EmbeddingIndex::names_path(npy)) => {
                EmbeddingIndex::names_path(npy)
            }
            p => p,
        };
        let bad = |message: String| ClipError::Index {
            path: path.clone(),
            message,
        };
        if !exists(&path) {
            let legacy = EmbeddingIndex::legacy_names_path(npy);
            if exists(&legacy) {
                return Err(bad(format!(
                    "missing; {} is an old names file that cannot be checked against the \
                     .npy: embed the collection again",
                    legacy.display()
                )));
            }
            return Err(bad(format!(
                "missing: {} has no manifest, so its rows cannot be named or checked (an \
                 output of a failed write, or a copy without its manifest?); a plain [n, d] \
                 array is searched with --plain-npy",
                npy.display()
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&read(&path)?)
            .map_err(|e| bad(format!("not an index manifest: {e}")))?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            return Err(bad(format!(
                "unknown manifest format {} version {}",
                manifest.format, manifest.version
            )));
        }
        Ok(Self { path, manifest })
    }

    /// The generation whose `.npy` has digest `sha256`.
    ///
    /// # Errors
    /// [`ClipError::Index`] if there is none (the `.npy` was written by another run).
    pub(crate) fn generation(self, npy: &Path, sha256: &str) -> Result<Described, ClipError> {
        let path = self.path;
        let g = self
            .manifest
            .generation(sha256)
            .ok_or_else(|| ClipError::Index {
                path: path.clone(),
                message: format!(
                    "it was written with another {} (an interrupted or concurrent write?): \
                 embed the collection again",
                    npy.display()
                ),
            })?;
        Ok(Described {
            rows: g.rows,
            dim: g.dim,
            normalized: g.normalized,
            names: g.names,
            skipped: g.skipped,
            manifest: path,
        })
    }
}

/// The generation of the `.npy` now at `npy` according to the manifest at
/// `manifest_path`, if that pair is a valid index.
pub(super) fn generation_on_disk(
    npy: &Path,
    manifest_path: &Path,
) -> Result<Option<Generation>, ClipError> {
    let is_file = std::fs::metadata(manifest_path).is_ok_and(|m| m.is_file());
    if !is_file {
        return Ok(None);
    }
    let Some(digest) = file_sha256(npy)? else {
        return Ok(None);
    };
    let manifest = match read(manifest_path) {
        Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).ok(),
        Err(_) => None,
    };
    Ok(manifest
        .filter(|m| m.format == FORMAT && m.version == VERSION)
        .and_then(|m| m.generation(&digest)))
}
