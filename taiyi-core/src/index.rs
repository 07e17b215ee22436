//! [`EmbeddingIndex`]: an embedded collection on disk, `FILE.npy` (the `[n, d]` float32
//! embeddings, readable by `numpy.load`) plus its manifest `FILE.npy.names.json`.
//!
//! The two files are one unit: the manifest holds the row names (JSON strings, so any UTF-8
//! name round-trips, newlines included), the row count, the width, whether the rows are
//! normalised, and the SHA-256 of the `.npy` file it was written with. [`EmbeddingIndex::load`]
//! reads the `.npy` once, hashes those very bytes and takes the names of the generation with
//! that digest, so a `.npy` paired with another run's names (a writer killed between the two
//! renames, two writers racing) is an error, never a wrong answer.
//!
//! # Replacing an index as one unit
//!
//! Two files cannot be renamed at once, so the manifest may describe two generations: its
//! top-level fields are the newest one, and during a swap `previous` holds the one the `.npy`
//! on disk still has. [`EmbeddingIndex::write`] commits in this order:
//!
//! 1. the new `.npy` is written in full to a temporary file beside the target and synced
//!    (a full disk fails here, nothing else touched);
//! 2. the manifest is replaced (temporary file, sync, rename, folder sync) by one naming the
//!    new generation and, as `previous`, the generation of the `.npy` now on disk (looked up by
//!    its digest in the old manifest; none if the old pair was not valid);
//! 3. the new `.npy` is renamed over the old one (link followed), and the folder synced: from
//!    here on the new index is the valid one;
//! 4. the manifest is rewritten without `previous` (best effort: a failure here leaves a valid
//!    index whose manifest is larger until the next write).
//!
//! A failure or an interrupt before step 3 leaves the previous index loading exactly as
//! before; after it, the new one. At no point does a reader pair rows with names of another
//! generation. Readers that do not check the digest (a plain `json.load` of `names`) see the
//! new names early only if a write died between steps 2 and 3.
//!
//! A `.npy` whose manifest is missing is refused by [`EmbeddingIndex::load`] (an orphan of a
//! failed write by an older taiyi, or a copy without its manifest); a plain `[n, d]` array
//! written by another tool is searched with [`EmbeddingIndex::load_plain`] (`taiyi search
//! --plain-npy`), rows named by their number. A link is followed: the manifest lives beside
//! the file the link points to, so the index loads through either path.
//!
//! Rows are checked when an index loads: every row must have a finite, non-zero norm, rows of
//! an index whose manifest says `normalized` must have norm 1 (within [`NORM_TOLERANCE`]) or
//! the load fails, and rows of a raw index are normalised, so scores are always cosines.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::ClipError;
use crate::commit::{Sha256Hex, fault, sha256_hex, sync_dir_of};
use crate::outfile::AtomicFile;
use crate::retrieval::{Hit, top_k, top_k_batch};

/// How far from 1 the norm of a row may be in an index whose manifest says the rows are
/// normalised (f32 normalisation is exact to ~1e-6; a row beyond this was not normalised).
pub const NORM_TOLERANCE: f32 = 1e-3;

/// An input left out of an index, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The input's name (e.g. its path).
    pub name: String,
    /// The error, as text.
    pub error: String,
}

/// An embedded collection: one embedding per row, with a name per row (e.g. the image path),
/// as `taiyi embed-image` writes it (`FILE.npy` + `FILE.npy.names.json`).
#[derive(Debug, Clone)]
pub struct EmbeddingIndex {
    /// `[n, d]` embeddings, L2-normalised rows (an index written with raw features is
    /// normalised when loaded).
    pub embeddings: Array2<f32>,
    /// One name per row.
    pub names: Vec<String>,
    /// Inputs that were left out when the index was written.
    pub skipped: Vec<Skipped>,
}

/// `path`, a symbolic link resolved (the file a write replaces and whose manifest it writes).
pub(crate) fn real_path(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The norm of row `i` (named `name`) of the index `npy`, checked: finite and non-zero, and 1
/// (within [`NORM_TOLERANCE`]) if the manifest says the rows are `normalized` (never believed
/// unchecked).
///
/// # Errors
/// [`ClipError::Index`] naming the row.
pub(crate) fn checked_norm(
    npy: &Path,
    i: usize,
    name: &str,
    row: ArrayView1<'_, f32>,
    normalized: bool,
) -> Result<f32, ClipError> {
    let norm = row.dot(&row).sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(ClipError::Index {
            path: npy.to_path_buf(),
            message: format!("row {i} ({name}) has norm {norm}"),
        });
    }
    if normalized && (norm - 1.0).abs() > NORM_TOLERANCE {
        return Err(ClipError::Index {
            path: npy.to_path_buf(),
            message: format!(
                "row {i} ({name}) has norm {norm}, but the manifest says the rows are \
                 L2-normalised: its scores would not be cosines"
            ),
        });
    }
    Ok(norm)
}

impl EmbeddingIndex {
    /// The manifest of `npy`: `FILE.npy.names.json`.
    pub fn names_path(npy: &Path) -> PathBuf {
        let mut s = npy.as_os_str().to_owned();
        s.push(".names.json");
        PathBuf::from(s)
    }

    /// The sidecar of indexes written by taiyi 0.1 before the manifest (`FILE.npy.names.txt`),
    /// which [`EmbeddingIndex::load`] refuses (it cannot be checked against the `.npy`).
    fn legacy_names_path(npy: &Path) -> PathBuf {
        let mut s = npy.as_os_str().to_owned();
        s.push(".names.txt");
        PathBuf::from(s)
    }

    /// Write an index: `values` (`[rows, dim]`, row-major) to `npy` and the manifest beside
    /// it (beside the file a link points to), replacing a previous index as one unit: see the
    /// module docs for the commit order. `normalized` records whether the rows are
    /// L2-normalised.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] if `names` and `values` disagree; the errors of
    /// [`crate::outfile::AtomicFile`] (the previous index then loads as before).
    pub fn write(
        npy: &Path,
        dim: usize,
        values: &[f32],
        names: &[String],
        normalized: bool,
        skipped: &[Skipped],
    ) -> Result<(), ClipError> {
        if dim == 0 || values.len() != names.len() * dim {
            return Err(ClipError::Mismatch {
                message: format!(
                    "{} names for {} values of width {dim}",
                    names.len(),
                    values.len()
                ),
            });
        }
        let rows = names.len();
        // The .npy bytes in memory: their digest goes into the manifest.
        let bytes = crate::npy::encode_f32(&[rows, dim], values)?;
        let current = Generation {
            rows,
            dim,
            normalized,
            npy_sha256: sha256_hex(&bytes),
            names: names.to_vec(),
            skipped: skipped.to_vec(),
        };
        // 1. The new .npy, complete and synced, under a temporary name.
        let mut file = AtomicFile::create(npy)?;
        let target = file.target().to_path_buf();
        fault("npy-write", &target)?;
        file.write(&bytes)?;
        file.sync()?;
        // 2. The manifest naming the new generation and the one the .npy on disk has.
        let manifest_path = Self::names_path(&target);
        let previous = manifest::generation_on_disk(&target, &manifest_path)?;
        let manifest = Manifest::new(current, previous);
        let json = manifest.to_json()?;
        fault("manifest-write", &manifest_path)?;
        crate::outfile::write_atomic(&manifest_path, &json)?;
        fault("manifest-sync", &manifest_path)?;
        sync_dir_of(&manifest_path)?;
        // 3. The new .npy into place: the commit point.
        fault("npy-rename", &target)?;
        file.commit()?;
        fault("npy-sync", &target)?;
        sync_dir_of(&target)?;
        // 4. Drop the previous generation (best effort: the index is valid either way).
        if manifest.previous.is_some() {
            // On a failure the manifest with both generations stays; the next write drops the
            // old one.
            let _ = fault("manifest-cleanup", &manifest_path).and_then(|()| {
                let json = Manifest::new(manifest.current, None).to_json()?;
                crate::outfile::write_atomic(&manifest_path, &json)
            });
        }
        Ok(())
    }

    /// Load `FILE.npy` and its manifest (the manifest beside the file a link points to, or,
    /// for an index written through a link by an older taiyi, beside the link).
    ///
    /// # Errors
    /// [`ClipError::Index`] if the manifest is missing (an orphan `.npy`: see
    /// [`EmbeddingIndex::load_plain`] for plain arrays), does not belong to this `.npy` (no
    /// generation with its digest, or rows / width differ), is malformed, or only an old
    /// `.names.txt` sidecar exists; the `.npy` reader's errors; [`ClipError::Index`] for a row
    /// that cannot be normalised (zero or non-finite) or, in an index that says its rows are
    /// normalised, a row whose norm is not 1.
    pub fn load(npy: &Path) -> Result<Self, ClipError> {
        let manifest = ManifestFile::read(npy)?;
        // One read: the rows parsed are the bytes hashed, in the same pass.
        let mut digest = Sha256Hex::default();
        let (shape, values) = crate::npy::read_f32_with(npy, |b| digest.update(b))?;
        let g = manifest.generation(npy, &digest.finish())?;
        let embeddings = Self::matrix(npy, &shape, values)?;
        let (n, d) = embeddings.dim();
        g.check_shape(n, d)?;
        Self::checked(npy, embeddings, g.names, g.normalized, g.skipped)
    }

    /// Load a plain `[n, d]` float32 `.npy` without a manifest (written by another tool):
    /// rows are named by their number and normalised.
    ///
    /// # Errors
    /// [`ClipError::Index`] if the file has a manifest (it is an index: use
    /// [`EmbeddingIndex::load`], which checks it) or a row cannot be normalised; the `.npy`
    /// reader's errors.
    pub fn load_plain(npy: &Path) -> Result<Self, ClipError> {
        let real = real_path(npy);
        for manifest in [Self::names_path(&real), Self::names_path(npy)] {
            if exists(&manifest) {
                return Err(ClipError::Index {
                    path: npy.to_path_buf(),
                    message: format!(
                        "it has a manifest ({}): it is an index, load it as one (without \
                         --plain-npy) so that its names and digest are used",
                        manifest.display()
                    ),
                });
            }
        }
        let (shape, values) = crate::npy::read_f32(npy)?;
        let embeddings = Self::matrix(npy, &shape, values)?;
        let names = (0..embeddings.nrows()).map(|i| i.to_string()).collect();
        Self::checked(npy, embeddings, names, false, Vec::new())
    }

    /// The `[n, d]` matrix of a parsed `.npy`.
    fn matrix(npy: &Path, shape: &[usize], values: Vec<f32>) -> Result<Array2<f32>, ClipError> {
        // d ≥ 1 bounds the row count by the file's size (the reader checked the data length).
        let (n, d) = match shape[..] {
            [n, d] if d >= 1 => (n, d),
            _ => {
                return Err(ClipError::Npy {
                    path: npy.to_path_buf(),
                    message: format!(
                        "expected a 2-D [n, d] array with d ≥ 1, found shape {shape:?}"
                    ),
                });
            }
        };
        Array2::from_shape_vec((n, d), values).map_err(|e| ClipError::Npy {
            path: npy.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The index, its rows checked: finite and non-zero, norm 1 if `normalized` says so
    /// (never believed unchecked), normalised otherwise.
    fn checked(
        npy: &Path,
        mut embeddings: Array2<f32>,
        names: Vec<String>,
        normalized: bool,
        skipped: Vec<Skipped>,
    ) -> Result<Self, ClipError> {
        for (i, mut row) in embeddings.outer_iter_mut().enumerate() {
            let name = names.get(i).map_or("", String::as_str);
            let norm = checked_norm(npy, i, name, row.view(), normalized)?;
            if !normalized {
                row /= norm;
            }
        }
        Ok(Self {
            embeddings,
            names,
            skipped,
        })
    }

    /// The `k` best rows for a normalised query embedding (cosine similarity).
    pub fn search(&self, query: ArrayView1<'_, f32>, k: usize) -> Result<Vec<Hit>, ClipError> {
        top_k(query, self.embeddings.view(), k)
    }

    /// [`EmbeddingIndex::search`] for every row of `queries` (`[m, d]`, normalised), scored
    /// block by block against all queries at once ([`top_k_batch`]).
    pub fn search_batch(
        &self,
        queries: ArrayView2<'_, f32>,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, ClipError> {
        top_k_batch(queries, self.embeddings.view(), k)
    }
}

mod manifest;
mod update;
pub(crate) use manifest::ManifestFile;
use manifest::{Generation, Manifest};
pub use update::{FileStamp, UpdatePlan};

#[cfg(test)]
mod tests;
