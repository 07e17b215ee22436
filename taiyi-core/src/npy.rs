//! Minimal NumPy `.npy` (format 1.0) reading and writing for little-endian float32 arrays, the
//! format the CLI writes embeddings and pixels in (`np.load` reads them as they are), and
//! float16 writing (clip-retrieval's embedding files).
//!
//! Writes are atomic: the array goes to a temporary file next to the target, which is renamed
//! over it only once complete, so a failure never leaves a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ClipError;

/// Write a C-order float32 array of `shape` to `path` atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ClipError> {
    write_array(path, shape, data, "<f4", |v, out| {
        out.extend_from_slice(&v.to_le_bytes())
    })
}

/// Write `data` as a C-order float16 (`<f2`) array of `shape` to `path` atomically; values are
/// rounded to the nearest half (ties to even), as numpy's `astype(np.float16)`.
pub fn write_f16(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ClipError> {
    write_array(path, shape, data, "<f2", |v, out| {
        out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes())
    })
}

fn write_array(
    path: &Path,
    shape: &[usize],
    data: &[f32],
    descr: &str,
    push: impl Fn(f32, &mut Vec<u8>),
) -> Result<(), ClipError> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(ClipError::Mismatch {
            message: format!(
                "npy shape {shape:?} holds {expected} values, got {}",
                data.len()
            ),
        });
    }
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
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &v in data {
        push(v, &mut bytes);
    }
    write_atomic(path, &bytes)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClipError> {
    let io = |source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Read a little-endian float32 `.npy` file: returns its shape and values (C order).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), ClipError> {
    let bytes = std::fs::read(path).map_err(|source| ClipError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: &str| ClipError::Npy {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported .npy version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-UTF-8 header"))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad(
            "only little-endian float32 ('<f4') arrays are supported",
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported"));
    }
    let shape_str = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in header"))?;
    let shape = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape entry")))
        .collect::<Result<Vec<_>, _>>()?;
    let count: usize = shape.iter().product();
    let body = &bytes[start + header_len..];
    if body.len() != count * 4 {
        return Err(bad(&format!(
            "data holds {} bytes, shape {shape:?} needs {}",
            body.len(),
            count * 4
        )));
    }
    let values = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() -> Result<(), ClipError> {
        let dir = std::env::temp_dir().join(format!("taiyi-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| ClipError::Io {
            path: dir.clone(),
            source,
        })?;
        let p = dir.join("a.npy");
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
        write_f32(&p, &[2, 3], &data)?;
        let bytes = std::fs::read(&p).map_err(|source| ClipError::Io {
            path: p.clone(),
            source,
        })?;
        assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
        assert_eq!(read_f32(&p)?, (vec![2, 3], data));
        write_f32(&p, &[4], &[1.0, 2.0, 3.0, 4.0])?;
        assert_eq!(read_f32(&p)?.0, vec![4]);
        assert!(write_f32(&p, &[5], &[1.0]).is_err());
        let junk = dir.join("junk.npy");
        std::fs::write(&junk, b"hello world").map_err(|source| ClipError::Io {
            path: junk.clone(),
            source,
        })?;
        assert!(matches!(read_f32(&junk), Err(ClipError::Npy { .. })));
        assert!(matches!(
            read_f32(&dir.join("missing.npy")),
            Err(ClipError::Io { .. })
        ));
        Ok(())
    }
}
