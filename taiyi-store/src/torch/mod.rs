//! PyTorch checkpoints (`torch.save`): the zip format (PyTorch ≥ 1.6) and the legacy
//! (`_use_new_zipfile_serialization=False`) stream, read as `torch.load` reads them.
//!
//! Every tensor is a strided view of a storage record: offsets, strides (transposed views,
//! `expand`ed stride-0 tensors, slices) are honoured, each view is checked against its storage,
//! and each storage record must hold exactly the bytes its header declares (a truncated,
//! padded or missing record is an error naming the tensor, where burn-store's reader padded with
//! zeros). Data stays on disk until a tensor is read; only the bytes its view spans are read.

mod legacy;
mod pickle;
mod rebuild;
mod view;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn_store::{TensorSnapshot, TensorSnapshotError};

use crate::Tensors;
use crate::buffer::{ElemBuf, read_at};
use crate::read_failed as io_err;
use crate::readahead::Extent;

pub use pickle::PickleError;
use view::TensorRef;

/// Largest `data.pkl` accepted (the published 4 GB checkpoints have ~100 kB pickles).
const MAX_PICKLE_BYTES: u64 = 1 << 28;

/// Why a PyTorch checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// Reading the file failed.
    #[error("read failed")]
    Io(#[source] std::io::Error),
    /// The zip container is unreadable.
    #[error("not a readable zip archive")]
    Zip(#[source] zip::result::ZipError),
    /// A zip without `<name>/data.pkl`.
    #[error("the zip archive has no <name>/data.pkl: not a torch.save checkpoint")]
    NoPickle,
    /// Neither a zip nor a legacy PyTorch stream.
    #[error("neither a torch.save zip archive nor a legacy PyTorch file (bad magic number)")]
    NotPytorch,
    /// The pickle named is not parseable.
    #[error("cannot parse the pickle {part}")]
    Pickle {
        /// Which pickle (`data.pkl`, or a part of a legacy file).
        part: String,
        /// What is wrong.
        #[source]
        source: PickleError,
    },
    /// The pickle calls something a weights file never calls (and `torch.load` refuses with
    /// `weights_only=True`). Nothing is ever executed.
    #[error("'{key}' is built by calling {global}, which a weights file never does (refused)")]
    Global {
        /// The key where it was found.
        key: String,
        /// `module.name`.
        global: String,
    },
    /// A tensor's description is invalid.
    #[error("tensor '{key}': {message}")]
    Malformed {
        /// The tensor's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A dtype or format this reader does not handle.
    #[error("tensor '{key}': unsupported {what}")]
    Unsupported {
        /// The tensor's key (empty for the file as a whole).
        key: String,
        /// What is unsupported.
        what: String,
    },
    /// A view reaches past the end of its storage.
    #[error(
        "tensor '{key}': its view needs {needed} storage elements, the storage has {available}"
    )]
    OutOfBounds {
        /// The tensor's key.
        key: String,
        /// Elements the view needs (offset + extent).
        needed: u64,
        /// Elements in the storage.
        available: u64,
    },
    /// The storage record of a tensor is absent.
    #[error("tensor '{key}': storage record '{record}' is missing")]
    MissingRecord {
        /// The tensor's key.
        key: String,
        /// The record.
        record: String,
    },
    /// A storage record's size differs from what its header declares.
    #[error("tensor '{key}': storage record '{record}' holds {found} bytes, {expected} declared")]
    RecordSize {
        /// The tensor's key.
        key: String,
        /// The record.
        record: String,
        /// Bytes present (for a legacy file cut short: bytes left in the file).
        found: u64,
        /// Bytes declared by the pickle.
        expected: u64,
    },
}

/// Where a storage record's bytes are.
#[derive(Debug, Clone)]
enum Loc {
    /// Uncompressed, at this byte offset of the file.
    At(u64),
    /// A compressed zip entry (never written by `torch.save`), read whole.
    Zipped(String),
}

/// Read every tensor of a PyTorch checkpoint, lazily.
pub(crate) fn read(path: &Path) -> Result<Tensors, TorchError> {
    let mut file = File::open(path).map_err(TorchError::Io)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(TorchError::Io)?;
    file.seek(SeekFrom::Start(0)).map_err(TorchError::Io)?;
    let (tensors, locs, big_endian) = if n == 4 && magic == *b"PK\x03\x04" {
        read_zip(file)?
    } else {
        legacy::read(file)?
    };
    let path = Arc::new(path.to_path_buf());
    let mut out = Tensors::default();
    for (key, t) in tensors {
        let Some(loc) = locs.get(&t.storage.key).cloned() else {
            continue;
        };
        let extent = match (&loc, byte_range(&t)) {
            (Loc::At(start), Ok(Some((first, len)))) => Some(Extent {
                file: Arc::clone(&path),
                start: start + first,
                len: len as u64,
            }),
            _ => None,
        };
        out.insert(
            key.clone(),
            snapshot(&path, &key, t, loc, big_endian),
            extent,
        );
    }
    Ok(out)
}

type Parsed = (Vec<(String, TensorRef)>, BTreeMap<String, Loc>, bool);

fn read_zip(file: File) -> Result<Parsed, TorchError> {
    let mut zip = zip::ZipArchive::new(file).map_err(TorchError::Zip)?;
    let mut names: Vec<&str> = zip
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .collect();
    names.sort_unstable();
    let pkl = names.first().ok_or(TorchError::NoPickle)?.to_string();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let big_endian = match zip.by_name(&format!("{prefix}byteorder")) {
        Ok(mut f) => {
            let mut s = String::new();
            f.by_ref()
                .take(16)
                .read_to_string(&mut s)
                .map_err(TorchError::Io)?;
            match s.as_str() {
                "little" => false,
                "big" => true,
                _ => {
                    return Err(TorchError::Unsupported {
                        key: String::new(),
                        what: format!("byte order record {s:?}"),
                    });
                }
            }
        }
        Err(_) => false,
    };
    let root = {
        let entry = zip.by_name(&pkl).map_err(TorchError::Zip)?;
        let mut r = BufReader::new(entry.take(MAX_PICKLE_BYTES));
        pickle::read(&mut r).map_err(|source| TorchError::Pickle {
            part: pkl.clone(),
            source,
        })?
    };
    let tensors = rebuild::collect(&root)?;
    let mut locs = BTreeMap::new();
    for (key, t) in &tensors {
        let s = &t.storage;
        if locs.contains_key(&s.key) {
            continue;
        }
        let record = format!("{prefix}data/{}", s.key);
        let entry = zip
            .by_name(&record)
            .map_err(|_| TorchError::MissingRecord {
                key: key.clone(),
                record: record.clone(),
            })?;
        let expected = s.numel.saturating_mul(s.dtype.size() as u64);
        if entry.size() != expected {
            return Err(TorchError::RecordSize {
                key: key.clone(),
                record,
                found: entry.size(),
                expected,
            });
        }
        let loc = match (entry.compression(), entry.data_start()) {
            (zip::CompressionMethod::Stored, Some(start)) => Loc::At(start),
            _ => Loc::Zipped(record),
        };
        locs.insert(s.key.clone(), loc);
    }
    Ok((tensors, locs, big_endian))
}

/// The bytes `t`'s view spans in its record: offset of its first element and length (`None`
/// for an empty view).
fn byte_range(t: &TensorRef) -> Result<Option<(u64, usize)>, TensorSnapshotError> {
    let es = t.storage.dtype.size() as u64;
    let overflow = || io_err("view extent overflows");
    let extent = t.extent().ok_or_else(overflow)?;
    if extent == 0 {
        return Ok(None);
    }
    // Bounded by the record's size (checked when the file was opened).
    let first = (t.storage.base.checked_add(t.offset))
        .and_then(|f| f.checked_mul(es))
        .ok_or_else(overflow)?;
    let len = extent.checked_mul(es).ok_or_else(overflow)?;
    Ok(Some((first, usize::try_from(len).map_err(io_err)?)))
}

/// Read the bytes of `t`'s view (from its first element, `extent` elements).
fn read_view(path: &Path, t: &TensorRef, loc: &Loc) -> Result<ElemBuf, TensorSnapshotError> {
    let es = t.storage.dtype.size();
    let Some((first, len)) = byte_range(t)? else {
        return Ok(ElemBuf::zeroed(0, es));
    };
    let mut buf = ElemBuf::zeroed(len, es);
    let file = File::open(path).map_err(io_err)?;
    match loc {
        Loc::At(start) => read_at(&file, start + first, buf.bytes_mut()).map_err(io_err)?,
        Loc::Zipped(record) => {
            let mut zip = zip::ZipArchive::new(file).map_err(io_err)?;
            let entry = zip.by_name(record).map_err(io_err)?;
            let mut all = Vec::new();
            entry
                .take(first + len as u64)
                .read_to_end(&mut all)
                .map_err(io_err)?;
            let src = usize::try_from(first)
                .ok()
                .and_then(|f| all.get(f..f + len))
                .ok_or_else(|| io_err(format!("record {record} is shorter than declared")))?;
            buf.bytes_mut().copy_from_slice(src);
        }
    }
    Ok(buf)
}

fn snapshot(path: &Arc<PathBuf>, key: &str, t: TensorRef, loc: Loc, big: bool) -> TensorSnapshot {
    let (dtype, shape) = (t.storage.dtype, t.shape.clone());
    let path = Arc::clone(path);
    crate::lazy_snapshot(key, dtype, shape, move || {
        let es = t.storage.dtype.size();
        let mut raw = read_view(&path, &t, &loc)?;
        let mut buf = if t.is_contiguous() {
            raw
        } else {
            let bytes = view::gather(raw.bytes_mut(), es, &t.shape, &t.stride)
                .ok_or_else(|| io_err("view reaches past the bytes read"))?;
            ElemBuf::copy_of(&bytes, es)
        };
        if big && es > 1 {
            buf.bytes_mut()
                .chunks_exact_mut(es)
                .for_each(<[u8]>::reverse);
        }
        Ok(buf.into_data(t.shape.clone(), t.storage.dtype))
    })
}
