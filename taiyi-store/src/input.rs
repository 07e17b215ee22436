//! The one way to open an input file for reading: vocabularies, configs, texts files, images,
//! `.npy` indexes, their manifests and checkpoints all go through [`InputFile::open`] (or
//! [`read_input`] / [`read_input_to_string`], which read it whole under a cap).
//!
//! Only a regular file (or a symbolic link to one) is opened: a FIFO, a character or block
//! device, a socket or a directory is refused with an error that names the path and what it
//! is, without blocking (a FIFO's `open` waits for a writer; `/dev/zero` never ends). The type
//! is checked with `stat` before the open and again on the opened handle, and on Linux the
//! open itself is non-blocking, so a FIFO swapped in between cannot hang the reader either.
//!
//! A whole-file read is capped per kind ([`InputKind`]): a file longer than the cap is refused
//! up front from its length, and the read itself stops one byte past the cap (a file that grows
//! while it is read is refused too), so no input can make the process hold more than its cap.
//!
//! It lives in `taiyi-store`, the lowest crate of the workspace (no taiyi dependency): every
//! reader depends on it already (`taiyi-text`, `taiyi-vision`, `taiyi-core`) or may
//! (`taiyi-preprocess`), and the checkpoint readers here use the same check.

use std::fs::{File, FileType, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Cap of a texts file (`--texts-file`): 1 GiB, about 20 million captions of 50 bytes; all of
/// them are held in memory with their tokens anyway. The CLI's `TAIYI_MAX_TEXTS_FILE_BYTES`
/// raises or lowers it.
pub const TEXTS_FILE_MAX_BYTES: u64 = 1 << 30;

/// Cap of a `vocab.txt`: 64 MiB. The largest public BERT vocabularies (250 000 tokens) take
/// about 5 MB.
pub const VOCAB_MAX_BYTES: u64 = 64 << 20;

/// Cap of a JSON configuration file (`config.json`, `tokenizer_config.json`,
/// `special_tokens_map.json`, an open_clip architecture JSON, a sharded checkpoint's
/// `*.index.json`): 16 MiB, a thousand times the size of any of them.
pub const JSON_MAX_BYTES: u64 = 16 << 20;

/// Cap of an embedding index manifest (`FILE.npy.names.json`): 4 GiB, the names of 40 million
/// rows at 100 bytes each (whose `.npy` would hold 160 GB at width 1024).
pub const MANIFEST_MAX_BYTES: u64 = 4 << 30;

/// What an input file is read as: the name used in messages and the most bytes it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputKind {
    name: &'static str,
    cap: u64,
    raise_with: Option<&'static str>,
}

impl InputKind {
    /// A texts file, one text per line ([`TEXTS_FILE_MAX_BYTES`]).
    pub const TEXTS_FILE: Self = Self::new("texts file", TEXTS_FILE_MAX_BYTES);
    /// A `vocab.txt` ([`VOCAB_MAX_BYTES`]).
    pub const VOCAB: Self = Self::new("vocabulary", VOCAB_MAX_BYTES);
    /// A JSON configuration file ([`JSON_MAX_BYTES`]).
    pub const JSON_CONFIG: Self = Self::new("JSON config", JSON_MAX_BYTES);
    /// An embedding index manifest ([`MANIFEST_MAX_BYTES`]).
    pub const MANIFEST: Self = Self::new("index manifest", MANIFEST_MAX_BYTES);

    /// A kind named `name` (in messages: "more than the CAP bytes allowed for a NAME") that
    /// holds at most `cap` bytes.
    pub const fn new(name: &'static str, cap: u64) -> Self {
        Self {
            name,
            cap,
            raise_with: None,
        }
    }

    /// The same kind with another cap.
    #[must_use]
    pub const fn with_cap(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// The same kind, whose too-large error tells how to raise the cap (e.g. an environment
    /// variable's name).
    #[must_use]
    pub const fn raised_by(mut self, how: &'static str) -> Self {
        self.raise_with = Some(how);
        self
    }

    /// The name used in messages.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The most bytes a file of this kind may hold.
    pub const fn cap(&self) -> u64 {
        self.cap
    }
}

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path is not a regular file (nor a link to one).
    #[error("{path} is {what}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is: "a FIFO", "a directory", "a character device", ...
        what: &'static str,
    },
    /// The file holds more than its kind's cap.
    #[error(
        "{path} holds {size} bytes, more than the {cap} bytes allowed for a {kind}{}",
        raise_with.map(|h| format!(" ({h} raises the limit)")).unwrap_or_default()
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The kind's name.
        kind: &'static str,
        /// The bytes found (at least; a file still growing may hold more).
        size: u64,
        /// The kind's cap.
        cap: u64,
        /// How to raise the cap, when it can be.
        raise_with: Option<&'static str>,
    },
    /// Opening, inspecting or reading the file failed (missing, unreadable, ...).
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read as text but is not UTF-8.
    #[error("{path} is not UTF-8 text")]
    NotUtf8 {
        /// The path.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: std::string::FromUtf8Error,
    },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::NotRegular { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Io { path, .. }
            | Self::NotUtf8 { path, .. } => path,
        }
    }

    /// Whether the file does not exist (a missing file, or a link to one).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a file type is, in words, for messages: "a regular file", "a directory", "a FIFO",
/// "a character device", "a block device", "a socket", "a symbolic link", else "a special
/// file".
pub fn describe(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// A regular file opened for reading, with its length when opened.
#[derive(Debug)]
pub struct InputFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl InputFile {
    /// Opens `path` (following symbolic links) if it is a regular file; never blocks on a
    /// FIFO or a device.
    ///
    /// # Errors
    /// [`InputError::NotRegular`] for anything but a regular file; [`InputError::Io`] if it is
    /// missing or cannot be opened.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let io = |source| InputError::Io {
            path: path.to_path_buf(),
            source,
        };
        let not_regular = |meta: &Metadata| InputError::NotRegular {
            path: path.to_path_buf(),
            what: describe(&meta.file_type()),
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(not_regular(&meta));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        // Non-blocking, in case a FIFO replaced the file since the `stat`: its open then
        // returns at once and the check of the handle below refuses it.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let file = options.open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(not_regular(&meta));
        }
        #[cfg(target_os = "linux")]
        {
            // Back to blocking reads (a no-op for regular files on local file systems, but
            // not necessarily on every network or FUSE one).
            let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| io(e.into()))?;
            rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
                .map_err(|e| io(e.into()))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: meta.len(),
        })
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path it was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (positioned where the reads of this value left it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Appends the rest of the file to `buf`, refusing a file whose total (what `buf` already
    /// holds from it plus the rest) exceeds `kind`'s cap: up front from the length, and while
    /// reading, which stops one byte past the cap.
    ///
    /// # Errors
    /// [`InputError::TooLarge`] over the cap; [`InputError::Io`] if a read fails or the memory
    /// cannot be reserved.
    pub fn read_capped(&mut self, buf: &mut Vec<u8>, kind: InputKind) -> Result<(), InputError> {
        let too_large = |size: u64| InputError::TooLarge {
            path: self.path.clone(),
            kind: kind.name,
            size,
            cap: kind.cap,
            raise_with: kind.raise_with,
        };
        if self.len > kind.cap {
            return Err(too_large(self.len));
        }
        let io = |source| InputError::Io {
            path: self.path.clone(),
            source,
        };
        let have = buf.len() as u64;
        let expected = usize::try_from(self.len.saturating_sub(have)).unwrap_or(0);
        buf.try_reserve_exact(expected)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)))?;
        let limit = kind.cap.saturating_add(1).saturating_sub(have);
        (&mut self.file).take(limit).read_to_end(buf).map_err(io)?;
        let total = buf.len() as u64;
        if total > kind.cap {
            return Err(too_large(total));
        }
        Ok(())
    }
}

/// Reads the regular file `path` whole, at most `kind`'s cap (see the module's notes).
///
/// # Errors
/// As [`InputFile::open`] and [`InputFile::read_capped`].
pub fn read_input(path: &Path, kind: InputKind) -> Result<Vec<u8>, InputError> {
    let mut file = InputFile::open(path)?;
    let mut buf = Vec::new();
    file.read_capped(&mut buf, kind)?;
    Ok(buf)
}

/// [`read_input`] as UTF-8 text.
///
/// # Errors
/// As [`read_input`]; [`InputError::NotUtf8`] if the bytes are not UTF-8.
pub fn read_input_to_string(path: &Path, kind: InputKind) -> Result<String, InputError> {
    String::from_utf8(read_input(path, kind)?).map_err(|source| InputError::NotUtf8 {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
