//! Incremental updates of an index (`embed-image --update`): which inputs are unchanged since
//! the index was written (their rows are kept), which must be embedded, which rows are gone.
//!
//! What an input was when its row was embedded is kept in a sidecar, `FILE.npy.files.json`
//! ([`FileStamps`]): per name, the file's length, modification time and SHA-256, bound to the
//! index by the `.npy`'s SHA-256. It is a sidecar, not part of the manifest, so that a search
//! (which reads the manifest for the names) does not parse a million stamps. It is written
//! after the index; a sidecar that is missing, unreadable or of another `.npy` is ignored, and
//! an update then embeds every input again (correct, only slower).
//!
//! An input is unchanged if its length and modification time are those stamped, or else if its
//! SHA-256 is (a copy, a `touch`). Anything else is embedded again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{EmbeddingIndex, ManifestFile};
use crate::ClipError;
use crate::commit::Sha256Hex;

/// The sidecar's `format`.
const FORMAT: &str = "taiyi-file-stamps";

/// What an input file was: length, modification time (ns since the epoch, 0 if unknown) and
/// SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Length in bytes.
    pub bytes: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: u128,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// SHA-256 of the file at `path`, read through [`crate::input`] (regular files only).
fn sha256_of(path: &Path) -> Result<String, ClipError> {
    use std::io::Read;
    let file = crate::input::InputFile::open(path).map_err(|source| ClipError::Read {
        what: "image",
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = file.file();
    let mut h = Sha256Hex::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ClipError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    Ok(h.finish())
}

impl FileStamp {
    /// The stamp of the file at `path` now (reads it whole for the digest).
    ///
    /// # Errors
    /// [`ClipError::Io`] / [`ClipError::Read`] if it cannot be read.
    pub fn of(path: &Path) -> Result<Self, ClipError> {
        let (bytes, modified_ns) = crate::commit::len_and_mtime(path)?;
        Ok(Self {
            bytes,
            modified_ns,
            sha256: sha256_of(path)?,
        })
    }
}

/// The sidecar `FILE.npy.files.json`.
#[derive(Debug, Serialize, Deserialize)]
struct FileStamps {
    format: String,
    version: u32,
    /// SHA-256 of the `.npy` these stamps describe.
    npy_sha256: String,
    /// Per row name.
    files: HashMap<String, FileStamp>,
}

impl EmbeddingIndex {
    /// The file-stamp sidecar of `npy`: `FILE.npy.files.json`.
    pub fn stamps_path(npy: &Path) -> PathBuf {
        let mut s = super::real_path(npy).into_os_string();
        s.push(".files.json");
        PathBuf::from(s)
    }

    /// [`EmbeddingIndex::write`], then the stamps of the rows' input files (one per name, in
    /// row order) to [`EmbeddingIndex::stamps_path`], bound to the `.npy` written: what
    /// [`UpdatePlan::new`] compares against.
    ///
    /// # Errors
    /// [`EmbeddingIndex::write`]'s; [`ClipError::Mismatch`] if there is not one stamp per
    /// name; the sidecar's write errors (the index is then written and valid, and the next
    /// update embeds everything again).
    pub fn write_stamped(
        npy: &Path,
        dim: usize,
        values: &[f32],
        names: &[String],
        normalized: bool,
        skipped: &[super::Skipped],
        stamps: &[FileStamp],
    ) -> Result<(), ClipError> {
        if stamps.len() != names.len() {
            return Err(ClipError::Mismatch {
                message: format!("{} stamps for {} names", stamps.len(), names.len()),
            });
        }
        Self::write(npy, dim, values, names, normalized, skipped)?;
        let digest = crate::commit::file_sha256(&super::real_path(npy))?.unwrap_or_default();
        let sidecar = FileStamps {
            format: FORMAT.into(),
            version: 1,
            npy_sha256: digest,
            files: names.iter().cloned().zip(stamps.iter().cloned()).collect(),
        };
        let json = serde_json::to_vec(&sidecar).map_err(|e| ClipError::Mismatch {
            message: format!("cannot serialise the file stamps: {e}"),
        })?;
        crate::outfile::write_atomic(&Self::stamps_path(npy), &json)
    }
}

/// The stamps recorded for the `.npy` with digest `digest`, or none (missing, unreadable, or
/// written for another `.npy`).
fn recorded(npy: &Path, digest: &str) -> HashMap<String, FileStamp> {
    let path = EmbeddingIndex::stamps_path(npy);
    crate::input::read_input(&path, crate::input::InputKind::MANIFEST)
        .ok()
        .and_then(|b| serde_json::from_slice::<FileStamps>(&b).ok())
        .filter(|s| s.format == FORMAT && s.version == 1 && s.npy_sha256 == digest)
        .map(|s| s.files)
        .unwrap_or_default()
}

/// What an update of an index does with each input: keep its old row, or embed it.
#[derive(Debug)]
pub struct UpdatePlan {
    /// Per input (in input order): the old row to keep, or `None` to embed it.
    pub keep: Vec<Option<usize>>,
    /// Per input: its stamp now.
    pub stamps: Vec<FileStamp>,
    /// Old rows no input keeps (files gone or changed).
    pub dropped: usize,
    /// The old rows as stored (`[old rows, dim]`, row-major).
    values: Vec<f32>,
    /// Their width.
    pub dim: usize,
}

impl UpdatePlan {
    /// Compare `inputs` (files, named `names`) with the index `npy` written with `normalized`
    /// rows. No index at `npy` yet: every input is embedded.
    ///
    /// # Errors
    /// The index's load errors (an index that exists but does not load is an error, not a
    /// silent rebuild); [`ClipError::Mismatch`] if it was written with the other
    /// normalisation (`--raw`); an input that cannot be stamped.
    pub fn new(
        npy: &Path,
        inputs: &[PathBuf],
        names: &[String],
        normalized: bool,
    ) -> Result<Self, ClipError> {
        let mut old_rows: HashMap<&str, usize> = HashMap::new();
        let (values, dim, stamps_then, old_names) = if std::fs::metadata(npy).is_ok() {
            let manifest = ManifestFile::read(npy)?;
            let mut digest = Sha256Hex::default();
            let (shape, values) = crate::npy::read_f32_with(npy, |b| digest.update(b))?;
            let digest = digest.finish();
            let g = manifest.generation(npy, &digest)?;
            let (n, d) = match shape[..] {
                [n, d] => (n, d),
                _ => (0, 0),
            };
            g.check_shape(n, d)?;
            if g.normalized != normalized {
                return Err(ClipError::Mismatch {
                    message: format!(
                        "{} holds {} features and this run writes {}: update it with the same \
                         --raw setting, or embed it again without --update",
                        npy.display(),
                        if g.normalized { "normalised" } else { "raw" },
                        if normalized { "normalised" } else { "raw" }
                    ),
                });
            }
            (values, d, recorded(npy, &digest), g.names)
        } else {
            (Vec::new(), 0, HashMap::new(), Vec::new())
        };
        for (r, name) in old_names.iter().enumerate() {
            old_rows.insert(name, r);
        }
        // Stat every input; hash only those whose length or time changed (and all when there
        // is nothing to compare with, so that the stamps can be written).
        let results: Vec<Result<(Option<usize>, FileStamp), ClipError>> = inputs
            .par_iter()
            .zip(names)
            .map(|(path, name)| {
                let (bytes, modified_ns) = crate::commit::len_and_mtime(path)?;
                let then = stamps_then.get(name);
                let row = old_rows.get(name.as_str()).copied();
                if let (Some(t), Some(r)) = (then, row)
                    && t.bytes == bytes
                    && t.modified_ns == modified_ns
                {
                    return Ok((Some(r), t.clone()));
                }
                let sha256 = sha256_of(path)?;
                let now = FileStamp {
                    bytes,
                    modified_ns,
                    sha256,
                };
                let same = matches!(then, Some(t) if t.sha256 == now.sha256 && t.bytes == bytes);
                Ok((row.filter(|_| same), now))
            })
            .collect();
        let mut keep = Vec::with_capacity(inputs.len());
        let mut stamps = Vec::with_capacity(inputs.len());
        for r in results {
            let (k, s) = r?;
            keep.push(k);
            stamps.push(s);
        }
        let kept: std::collections::HashSet<usize> = keep.iter().flatten().copied().collect();
        Ok(Self {
            dropped: old_names.len() - kept.len(),
            keep,
            stamps,
            values,
            dim,
        })
    }

    /// Inputs to embed (positions in the input list).
    pub fn to_embed(&self) -> Vec<usize> {
        (0..self.keep.len())
            .filter(|&i| self.keep[i].is_none())
            .collect()
    }

    /// The stored values of old row `r` (`dim` of them).
    pub fn old_row(&self, r: usize) -> &[f32] {
        &self.values[r * self.dim..(r + 1) * self.dim]
    }
}
