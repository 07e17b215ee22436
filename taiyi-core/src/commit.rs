//! What the two-file outputs ([`crate::retrieval::EmbeddingIndex`], [`crate::shard`]) need to
//! replace a previous output as one unit: SHA-256 digests of bytes and of files on disk, a
//! directory sync that makes a rename durable before the next one, and named fault-injection
//! points that the unit tests use to fail the commit sequence at every step.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ClipError;

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// An incremental SHA-256: `finish` is [`sha256_hex`] of everything given to `update`.
#[derive(Default)]
pub(crate) struct Sha256Hex(Sha256);

impl Sha256Hex {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the regular file at `path` (read in pieces), or `None` if there is no regular
/// file there (missing, a directory, a FIFO: nothing that could be a previous output).
pub(crate) fn file_sha256(path: &Path) -> Result<Option<String>, ClipError> {
    let io = |source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The one input opener: a FIFO swapped in after a check is never opened for reading.
    let input = match taiyi_store::input::InputFile::open(path) {
        Ok(f) => f,
        Err(taiyi_store::input::InputError::NotRegular { .. }) => return Ok(None),
        Err(e) if e.is_not_found() => return Ok(None),
        Err(source) => {
            return Err(ClipError::Read {
                what: "previous output",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut file = input.file();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(Some(hex(&hasher.finalize())))
}

/// Length and modification time (nanoseconds since the Unix epoch, 0 if the file system has
/// none) of the file at `path` (a link followed): the cheap "has it changed" check of the ANN
/// index's `.npy` and of `embed-image --update`'s inputs.
pub(crate) fn len_and_mtime(path: &Path) -> Result<(u64, u128), ClipError> {
    let m = std::fs::metadata(path).map_err(|source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((m.len(), modified))
}

/// The folder a file `path` lives in (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Sync the folder holding `path`, so that a rename into it is on disk before the next step
/// of a commit (without it, a power loss may keep a later rename and lose an earlier one).
pub(crate) fn sync_dir_of(path: &Path) -> Result<(), ClipError> {
    let dir = parent_dir(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ClipError::Io { path: dir, source })
}

/// A fault-injection point of a commit sequence: in unit tests, the step named by
/// `tests::fail_at` fails here with an I/O error about `path`, as a full disk would; in
/// other builds, nothing.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn fault(_step: &'static str, _path: &Path) -> Result<(), ClipError> {
    Ok(())
}

/// A fault-injection point of a commit sequence (the test build: see `tests::fail_at`).
#[cfg(test)]
pub(crate) fn fault(step: &'static str, path: &Path) -> Result<(), ClipError> {
    let hit = tests::FAIL_AT.with(|f| f.borrow().as_deref() == Some(step));
    tests::SEEN.with(|s| s.borrow_mut().push(step));
    if hit {
        return Err(ClipError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("injected fault at step '{step}'")),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    thread_local! {
        /// The step that fails in this thread (`None`: none).
        pub(crate) static FAIL_AT: RefCell<Option<String>> = const { RefCell::new(None) };
        /// The steps passed in this thread, in order.
        pub(crate) static SEEN: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    /// Make `step` fail in this thread from now on (`None`: no step fails); clears the record
    /// of steps seen.
    pub(crate) fn fail_at(step: Option<&str>) {
        FAIL_AT.with(|f| *f.borrow_mut() = step.map(str::to_string));
        SEEN.with(|s| s.borrow_mut().clear());
    }

    /// The steps passed in this thread since the last [`fail_at`].
    pub(crate) fn seen() -> Vec<&'static str> {
        SEEN.with(|s| s.borrow().clone())
    }

    #[test]
    fn file_digest_matches_the_bytes_digest() -> Result<(), crate::ClipError> {
        let dir = tempfile::tempdir().map_err(|source| crate::ClipError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let p = dir.path().join("x.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        crate::outfile::write_atomic(&p, &bytes)?;
        assert_eq!(super::file_sha256(&p)?, Some(super::sha256_hex(&bytes)));
        assert_eq!(super::file_sha256(&dir.path().join("none"))?, None);
        assert_eq!(super::file_sha256(dir.path())?, None);
        Ok(())
    }
}
