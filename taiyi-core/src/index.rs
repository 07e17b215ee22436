//! [`EmbeddingIndex`]: an embedded collection on disk, `FILE.npy` (the `[n, d]` float32
//! embeddings, readable by `numpy.load`) plus its manifest `FILE.npy.names.json`.
//!
//! The two files are one unit: the manifest holds the row names (JSON strings, so any UTF-8
//! name round-trips, newlines included), the row count, the width, whether the rows are
//! normalised, and the SHA-256 of the `.npy` file it was written with. [`EmbeddingIndex::load`]
//! checks that digest, so a `.npy` paired with another run's names (a writer killed between the
//! two renames, two writers racing) is an error, never a wrong answer.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ClipError;
use crate::retrieval::{Hit, top_k};

/// The manifest's `format` value.
const FORMAT: &str = "taiyi-embedding-index";
/// The manifest's `version`.
const VERSION: u32 = 1;

/// An input left out of an index, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The input's name (e.g. its path).
    pub name: String,
    /// The error, as text.
    pub error: String,
}

/// The JSON sidecar of an index.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    rows: usize,
    dim: usize,
    normalized: bool,
    npy_sha256: String,
    names: Vec<String>,
    #[serde(default)]
    skipped: Vec<Skipped>,
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

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A manifest's bytes, through [`crate::input`] (a regular file, at most
/// [`crate::input::MANIFEST_MAX_BYTES`]); `.npy` files are read by [`crate::npy::read_bytes`].
fn read(path: &Path) -> Result<Vec<u8>, ClipError> {
    crate::input::read_input(path, crate::input::InputKind::MANIFEST).map_err(|source| {
        ClipError::Read {
            what: "index manifest",
            path: path.to_path_buf(),
            source,
        }
    })
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
    /// it, each atomically. `normalized` records whether the rows are L2-normalised.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] if `names` and `values` disagree; the errors of
    /// [`crate::outfile::AtomicFile`].
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
        let manifest = Manifest {
            format: FORMAT.to_string(),
            version: VERSION,
            rows,
            dim,
            normalized,
            npy_sha256: sha256_hex(&bytes),
            names: names.to_vec(),
            skipped: skipped.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ClipError::Mismatch {
            message: format!("cannot serialise the index manifest: {e}"),
        })?;
        crate::outfile::write_atomic(npy, &bytes)?;
        crate::outfile::write_atomic(&Self::names_path(npy), &json)
    }

    /// Load `FILE.npy` and its manifest. Without a manifest, rows are called by their number
    /// (any float32 `[n, d]` `.npy` can be searched).
    ///
    /// # Errors
    /// [`ClipError::Index`] if the manifest does not belong to this `.npy` (digest, rows or
    /// width differ), is malformed, or only an old `.names.txt` sidecar exists; the `.npy`
    /// reader's errors; [`ClipError::Index`] for a row that cannot be normalised (zero or
    /// non-finite).
    pub fn load(npy: &Path) -> Result<Self, ClipError> {
        let (shape, values) = crate::npy::read_f32(npy)?;
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
        let mut embeddings =
            Array2::from_shape_vec((n, d), values).map_err(|e| ClipError::Npy {
                path: npy.to_path_buf(),
                message: e.to_string(),
            })?;
        let manifest_path = Self::names_path(npy);
        let bad = |message: String| ClipError::Index {
            path: manifest_path.clone(),
            message,
        };
        let (names, normalized, skipped) = match std::fs::symlink_metadata(&manifest_path) {
            Ok(_) => {
                let m: Manifest = serde_json::from_slice(&read(&manifest_path)?)
                    .map_err(|e| bad(format!("not an index manifest: {e}")))?;
                if m.format != FORMAT || m.version != VERSION {
                    return Err(bad(format!(
                        "unknown manifest format {} version {}",
                        m.format, m.version
                    )));
                }
                if sha256_hex(&crate::npy::read_bytes(npy)?) != m.npy_sha256 {
                    return Err(bad(format!(
                        "it was written with another {} (an interrupted or concurrent \
                         write?): embed the collection again",
                        npy.display()
                    )));
                }
                if m.rows != n || m.dim != d || m.names.len() != n {
                    return Err(bad(format!(
                        "it describes {} rows of width {} with {} names, the .npy holds [{n}, {d}]",
                        m.rows,
                        m.dim,
                        m.names.len()
                    )));
                }
                (m.names, m.normalized, m.skipped)
            }
            Err(_) if Self::legacy_names_path(npy).exists() => {
                return Err(bad(format!(
                    "missing; {} is an old names file that cannot be checked against the \
                     .npy: embed the collection again",
                    Self::legacy_names_path(npy).display()
                )));
            }
            Err(_) => ((0..n).map(|i| i.to_string()).collect(), false, Vec::new()),
        };
        for (i, mut row) in embeddings.outer_iter_mut().enumerate() {
            let norm = row.dot(&row).sqrt();
            if !norm.is_finite() || norm == 0.0 {
                return Err(ClipError::Index {
                    path: npy.to_path_buf(),
                    message: format!("row {i} ({}) has norm {norm}", names[i]),
                });
            }
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
}
