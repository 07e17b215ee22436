//! Minimal NumPy `.npy` reading (formats 1.0–3.0) and writing (1.0) for little-endian float32
//! arrays, the format the CLI writes embeddings and pixels in (`np.load` reads them as they
//! are), and float16 writing (clip-retrieval's embedding files).
//!
//! Writes go through [`AtomicFile`]: the array goes to a temporary file next to the target,
//! which is renamed over it only once complete, so a failure never leaves a half-written file
//! (and only a regular file is ever replaced: see [`crate::outfile`]).

use std::path::Path;

use crate::ClipError;
use crate::outfile::AtomicFile;

pub mod header;

/// The `.npy` 1.0 header of a C-order array of `descr` (`<f4`, `<f2`) and `shape`: magic,
/// version, length, and the dict padded with spaces to a multiple of 64 bytes.
fn header_bytes(shape: &[usize], descr: &str) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and ending in
    // '\n' to a multiple of 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// A whole C-order float32 `.npy` file in memory.
///
/// # Errors
/// [`ClipError::Mismatch`] if `data` does not hold the values of `shape`.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, ClipError> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(ClipError::Mismatch {
            message: format!("npy shape {shape:?} does not hold {} values", data.len()),
        });
    }
    let mut bytes = header_bytes(shape, "<f4");
    bytes.reserve(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Ok(bytes)
}

/// Write a C-order float32 array of `shape` to `path` atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ClipError> {
    let mut w = NpyWriter::create(path, shape)?;
    w.write(data)?;
    w.finish()
}

/// Write `data` as a C-order float16 (`<f2`) array of `shape` to `path` atomically; values are
/// rounded to the nearest half (ties to even), as numpy's `astype(np.float16)`.
///
/// # Errors
/// [`ClipError::Mismatch`] if `data` does not hold the values of `shape`; the errors of
/// [`crate::outfile::write_atomic`].
pub fn write_f16(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ClipError> {
    crate::outfile::write_atomic(path, &encode_f16(shape, data)?)
}

/// A whole C-order float16 (`<f2`) `.npy` file in memory, values rounded as by
/// [`write_f16`].
///
/// # Errors
/// [`ClipError::Mismatch`] if `data` does not hold the values of `shape`.
pub fn encode_f16(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, ClipError> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(ClipError::Mismatch {
            message: format!("npy shape {shape:?} does not hold {} values", data.len()),
        });
    }
    let mut bytes = header_bytes(shape, "<f2");
    bytes.reserve(data.len() * 2);
    for &v in data {
        bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
    }
    Ok(bytes)
}

/// A float32 `.npy` written piece by piece (C order), e.g. batch by batch, without holding
/// the whole array: the shape is fixed up front and [`NpyWriter::finish`] checks that exactly
/// that many values came. Atomic like [`write_f32`]: dropped unfinished, it leaves the target
/// untouched.
#[derive(Debug)]
pub struct NpyWriter {
    file: AtomicFile,
    expected: usize,
    written: usize,
}

impl NpyWriter {
    /// Start writing an array of `shape` to `path`.
    ///
    /// # Errors
    /// As [`AtomicFile::create`], or [`ClipError::Mismatch`] if the shape overflows.
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self, ClipError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| ClipError::Mismatch {
                message: format!("npy shape {shape:?} is too large"),
            })?;
        let mut file = AtomicFile::create(path)?;
        file.write(&header_bytes(shape, "<f4"))?;
        Ok(Self {
            file,
            expected,
            written: 0,
        })
    }

    /// Append `values` (the next values in C order).
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] if they exceed the shape; [`ClipError::Io`].
    pub fn write(&mut self, values: &[f32]) -> Result<(), ClipError> {
        if self.written + values.len() > self.expected {
            return Err(ClipError::Mismatch {
                message: format!(
                    "npy array holds {} values, got at least {}",
                    self.expected,
                    self.written + values.len()
                ),
            });
        }
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.file.write(&bytes)?;
        self.written += values.len();
        Ok(())
    }

    /// Check the count and rename the file into place.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] if fewer values than the shape holds were written (the target
    /// is then untouched); [`ClipError::Io`].
    pub fn finish(self) -> Result<(), ClipError> {
        if self.written != self.expected {
            return Err(ClipError::Mismatch {
                message: format!(
                    "npy shape holds {} values, got {}",
                    self.expected, self.written
                ),
            });
        }
        self.file.commit()
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename (see
/// [`crate::outfile::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClipError> {
    crate::outfile::write_atomic(path, bytes)
}

/// Read a little-endian float32 `.npy` file: returns its shape and values (C order).
///
/// The header is parsed as the format defines it ([`header`]); versions 1.0, 2.0 and 3.0 are
/// read. Only `'<f4'`, C-order arrays are accepted, and the data must be exactly as long as the
/// shape says (every size is checked for overflow before use). The file is read by
/// [`read_bytes`]: only a regular file, and only as many bytes as its header declares.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), ClipError> {
    read_f32_with(path, |_| {})
}

/// Bytes read per piece by [`read_f32_with`].
const PIECE: usize = 4 << 20;

/// [`read_f32`] that hands every byte of the file, in file order, to `seen` (a digest of the
/// whole file, taken in the same pass) and reads the data in pieces of 4 MiB straight into the
/// values: the file's bytes and its values are never in memory together (peak: the values and
/// one piece, where reading the bytes whole and then parsing them took twice the data).
///
/// # Errors
/// As [`read_bytes`] and [`read_f32`]; a file shortened while it is read is an error.
pub fn read_f32_with(
    path: &Path,
    mut seen: impl FnMut(&[u8]),
) -> Result<(Vec<usize>, Vec<f32>), ClipError> {
    use std::io::Read;
    let Opened {
        file,
        mut prefix,
        data_start,
        shape,
        declared,
    } = Opened::new(path)?;
    let data_len = (declared - data_start as u64) as usize;
    let mut values: Vec<f32> = Vec::new();
    values
        .try_reserve_exact(data_len / 4)
        .map_err(|_| ClipError::Npy {
            path: path.to_path_buf(),
            message: format!("cannot allocate {data_len} bytes for shape {shape:?}"),
        })?;
    seen(&prefix);
    let mut carry = prefix.split_off(data_start);
    push_floats(&mut values, &mut carry);
    let consumed = (data_start + carry.len() + values.len() * 4) as u64;
    let mut rest = Read::take(file.file(), declared - consumed);
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = match rest.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(read_error(
                    path,
                    crate::input::InputError::Io {
                        path: path.to_path_buf(),
                        source,
                    },
                ));
            }
        };
        seen(&piece[..n]);
        carry.extend_from_slice(&piece[..n]);
        push_floats(&mut values, &mut carry);
    }
    let read = (data_start + values.len() * 4 + carry.len()) as u64;
    if read != declared || !carry.is_empty() {
        // Shortened while it was read.
        return Err(length_error(path, read, declared, data_start, &shape));
    }
    Ok((shape, values))
}

/// The float32 `.npy` at `path` opened to be memory-mapped: the file, where its data starts
/// and its shape (header and length checked as for [`read_f32`]; nothing of the data is read).
///
/// # Errors
/// As [`read_f32`] for a file that cannot be opened, a bad header or a wrong length.
#[cfg(feature = "ann")]
pub(crate) fn open_for_map(
    path: &Path,
) -> Result<(crate::input::InputFile, usize, Vec<usize>), ClipError> {
    let o = Opened::new(path)?;
    Ok((o.file, o.data_start, o.shape))
}

/// A float32 `.npy` opened through [`crate::input`] with its header read and checked: the
/// first bytes read (the header and possibly some data), where the data starts, the shape, and
/// the file length the header declares (equal to the file's length, checked).
struct Opened {
    file: crate::input::InputFile,
    prefix: Vec<u8>,
    data_start: usize,
    shape: Vec<usize>,
    declared: u64,
}

impl Opened {
    fn new(path: &Path) -> Result<Self, ClipError> {
        use std::io::Read;
        let npy_err = |message: String| ClipError::Npy {
            path: path.to_path_buf(),
            message,
        };
        let file = crate::input::InputFile::open(path).map_err(|e| read_error(path, e))?;
        // Magic, version, header length, header: at most 12 + MAX_HEADER_BYTES bytes.
        let prefix_cap = 12 + header::MAX_HEADER_BYTES as u64;
        let mut prefix = Vec::new();
        Read::take(file.file(), prefix_cap)
            .read_to_end(&mut prefix)
            .map_err(|source| {
                read_error(
                    path,
                    crate::input::InputError::Io {
                        path: path.to_path_buf(),
                        source,
                    },
                )
            })?;
        let (data_start, shape, data_len) = layout(&prefix).map_err(npy_err)?;
        let declared = u64::try_from(data_start)
            .ok()
            .zip(u64::try_from(data_len).ok())
            .and_then(|(a, b)| a.checked_add(b))
            .ok_or_else(|| npy_err(format!("shape {shape:?} overflows")))?;
        if file.len() != declared || prefix.len() as u64 > declared {
            return Err(length_error(path, file.len(), declared, data_start, &shape));
        }
        Ok(Self {
            file,
            prefix,
            data_start,
            shape,
            declared,
        })
    }
}

/// A `.npy` that cannot be read as a file.
fn read_error(path: &Path, source: crate::input::InputError) -> ClipError {
    ClipError::Read {
        what: ".npy file",
        path: path.to_path_buf(),
        source,
    }
}

/// A `.npy` whose length is not the one its header declares.
fn length_error(
    path: &Path,
    found: u64,
    declared: u64,
    data_start: usize,
    shape: &[usize],
) -> ClipError {
    ClipError::Npy {
        path: path.to_path_buf(),
        message: format!(
            "the file holds {found} bytes, its header declares {declared} ({data_start} bytes \
             of header, then shape {shape:?} × 4 bytes)"
        ),
    }
}

/// The whole little-endian f32s at the front of `carry` appended to `values` (at most 3 bytes
/// stay in `carry`).
fn push_floats(values: &mut Vec<f32>, carry: &mut Vec<u8>) {
    let whole = carry.len() / 4 * 4;
    values.extend(
        carry[..whole]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    carry.drain(..whole);
}

/// The bytes of the float32 `.npy` file `path`, read through [`crate::input`]: a regular file
/// (a FIFO or a device is refused without blocking), whose header is read and parsed first;
/// its cap is what the header declares (magic, header, then rows × cols × 4 bytes), and a file
/// of another length is refused before its data is read.
///
/// # Errors
/// [`ClipError::Read`] if it is not a regular file or cannot be read; [`ClipError::Npy`] for
/// an invalid header or a length other than the header's.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ClipError> {
    let Opened {
        mut file,
        prefix: mut bytes,
        data_start,
        shape,
        declared,
    } = Opened::new(path)?;
    let kind = crate::input::InputKind::new(".npy file", declared);
    file.read_capped(&mut bytes, kind).map_err(|e| match e {
        crate::input::InputError::TooLarge { size, .. } => {
            length_error(path, size, declared, data_start, &shape)
        }
        e => read_error(path, e),
    })?;
    if bytes.len() as u64 != declared {
        // Shortened while it was read.
        return Err(length_error(
            path,
            bytes.len() as u64,
            declared,
            data_start,
            &shape,
        ));
    }
    Ok(bytes)
}

/// Where the data of a float32 `.npy` starts, its shape and the data's length in bytes, from
/// the file's first bytes (up to the end of its header at least); the reason, in words, for a
/// file that is not one.
fn layout(bytes: &[u8]) -> Result<(usize, Vec<usize>, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match (bytes[6], bytes[7]) {
        (1, 0) => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2 | 3, 0) if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(n).unwrap_or(usize::MAX), 12)
        }
        (major, minor) => return Err(format!("unsupported .npy version {major}.{minor}")),
    };
    if header_len > header::MAX_HEADER_BYTES {
        return Err(format!(
            "header of {header_len} bytes exceeds the limit of {}",
            header::MAX_HEADER_BYTES
        ));
    }
    let text = bytes
        .get(start..start + header_len)
        .ok_or("the file ends inside the header")?;
    // 1.0 and 2.0 headers are latin-1, 3.0 UTF-8: both are ASCII for every valid header.
    let h = header::parse(text).map_err(|e| format!("invalid header: {e}"))?;
    if h.descr != "<f4" {
        return Err(format!(
            "dtype '{}' is not supported: only little-endian float32 ('<f4')",
            h.descr
        ));
    }
    if h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err("Fortran-order arrays are not supported".into());
    }
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| format!("shape {:?} overflows", h.shape))?;
    Ok((start + header_len, h.shape, count))
}

/// [`read_f32`] on the bytes of a file; the error is the reason, in words.
pub fn parse_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let (start, shape, count) = layout(bytes)?;
    let body = &bytes[start..];
    if body.len() != count {
        return Err(format!(
            "data holds {} bytes, shape {shape:?} needs {count}",
            body.len(),
        ));
    }
    let values = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests;
