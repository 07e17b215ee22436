//! Output files written safely: through a temporary file in the target's directory that is
//! renamed over the target only when complete.
//!
//! - Only a regular file (or nothing) is ever replaced. A device node, FIFO, socket or
//!   directory is refused with [`ClipError::NotRegularFile`] (as root, replacing `/dev/null`
//!   with a regular file would break the system); a symbolic link is followed and the file it
//!   points to is replaced (the link stays), a dangling link is refused.
//! - A read-only target (no write permission bit) is refused with [`ClipError::ReadOnly`]; a
//!   writable one keeps its permission bits.
//! - A failed or abandoned write removes its temporary file; [`remove_temporary_files`] removes
//!   those of writes in progress, for a signal handler (the CLI calls it on SIGINT/SIGTERM), so
//!   an interrupt leaves no `.NAME.tmp-*` litter.

use std::collections::BTreeSet;
use std::fs::{File, Permissions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ClipError;

/// Temporary files of writes in progress (removed by [`remove_temporary_files`]).
static IN_PROGRESS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
/// Distinguishes two writes of one process to the same target.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    // A poisoned registry still holds valid paths.
    IN_PROGRESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Remove the temporary files of every write in progress. Meant for signal handlers: after it,
/// those writes fail at their rename and the targets stay as they were.
pub fn remove_temporary_files() {
    for tmp in std::mem::take(&mut *registry()) {
        let _ = std::fs::remove_file(tmp);
    }
}

/// Where a write to `path` really goes, and the permissions the new file must keep.
fn resolve_target(path: &Path) -> Result<(PathBuf, Option<Permissions>), ClipError> {
    let io = |source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((path.to_path_buf(), None));
        }
        Err(e) => return Err(io(e)),
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(|source| ClipError::DanglingLink {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = std::fs::metadata(&target).map_err(io)?;
        (target, meta)
    } else {
        (path.to_path_buf(), meta)
    };
    if !meta.is_file() {
        return Err(ClipError::NotRegularFile { path: target });
    }
    if meta.permissions().readonly() {
        return Err(ClipError::ReadOnly { path: target });
    }
    Ok((target, Some(meta.permissions())))
}

/// A file being written: bytes go to a temporary file next to the target until
/// [`AtomicFile::commit`] renames it over the target. Dropped without a commit, it removes
/// the temporary file and leaves the target untouched.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    keep: Option<Permissions>,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Start writing `path` (see the module docs for what is refused).
    ///
    /// # Errors
    /// [`ClipError::NotRegularFile`], [`ClipError::ReadOnly`], [`ClipError::DanglingLink`], or
    /// [`ClipError::Io`] if the temporary file cannot be created.
    pub fn create(path: &Path) -> Result<Self, ClipError> {
        let (target, keep) = resolve_target(path)?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".to_string());
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|source| ClipError::Io {
                path: target.clone(),
                source,
            })?;
        registry().insert(tmp.clone());
        Ok(Self {
            target,
            tmp,
            keep,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The file that [`AtomicFile::commit`] replaces (a symbolic link resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    fn io(&self, source: std::io::Error) -> ClipError {
        ClipError::Io {
            path: self.target.clone(),
            source,
        }
    }

    /// Append `bytes`.
    ///
    /// # Errors
    /// [`ClipError::Io`] naming the target.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ClipError> {
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(std::io::Error::other("the file is already closed")),
        };
        result.map_err(|e| self.io(e))
    }

    /// Flush the bytes written so far and sync them to disk (the temporary file: the target is
    /// untouched), so that a later [`AtomicFile::commit`] has nothing left to write. The
    /// two-file outputs call it before they touch their manifest, so a full disk fails the
    /// write while the previous output is still whole.
    ///
    /// # Errors
    /// [`ClipError::Io`] naming the target.
    pub fn sync(&mut self) -> Result<(), ClipError> {
        let result = match self.file.as_mut() {
            Some(f) => f.flush().and_then(|()| f.get_ref().sync_all()),
            None => Err(std::io::Error::other("the file is already closed")),
        };
        result.map_err(|e| self.io(e))
    }

    /// Flush, sync and rename the temporary file over the target.
    ///
    /// # Errors
    /// [`ClipError::Io`] naming the target (the target is then unchanged), also when the
    /// temporary file was removed by [`remove_temporary_files`] meanwhile.
    pub fn commit(mut self) -> Result<(), ClipError> {
        let Some(file) = self.file.take() else {
            return Err(self.io(std::io::Error::other("the file is already closed")));
        };
        let result = (|| {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            if let Some(p) = &self.keep {
                file.set_permissions(p.clone())?;
            }
            file.sync_all()?;
            drop(file);
            // Unregister first: once renamed, an interrupt must not delete the output.
            if !registry().remove(&self.tmp) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "interrupted: the temporary file was removed",
                ));
            }
            std::fs::rename(&self.tmp, &self.target)
        })();
        if result.is_err() {
            registry().remove(&self.tmp);
            let _ = std::fs::remove_file(&self.tmp);
        }
        result.map_err(|e| self.io(e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Still open: neither committed nor failed in a commit.
        if self.file.take().is_some() {
            registry().remove(&self.tmp);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `bytes` to `path` atomically (an [`AtomicFile`] written at once).
///
/// # Errors
/// As [`AtomicFile::create`], [`AtomicFile::write`] and [`AtomicFile::commit`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClipError> {
    let mut f = AtomicFile::create(path)?;
    f.write(bytes)?;
    f.commit()
}
