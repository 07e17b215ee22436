//! `.safetensors` files, read with positioned reads instead of a memory map.
//!
//! The header (an 8-byte little-endian length, then that many bytes of JSON) is parsed and
//! checked once, as strictly as the `safetensors` library checks it: known dtypes, each
//! tensor's byte range matching its dtype and shape, the ranges tiling the data section from
//! its first byte to the end of the file without gap or overlap. A tensor's bytes are read
//! from the file only when a module takes it, into memory the tensor then owns: nothing of
//! the file stays resident (burn-store's reader maps the whole file, so every tensor read
//! stayed in the process's RSS until the last tensor of the file was dropped, doubling the
//! peak memory of a load) and tensors that are never taken (the English text tower of an
//! open_clip file) are never read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{BoolStore, DType};
use burn_store::TensorSnapshot;

use crate::buffer::{ElemBuf, read_at};
use crate::readahead::Extent;
use crate::{Tensors, read_failed};

/// Largest header accepted (the `safetensors` library's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Why a safetensors file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// Reading the file failed.
    #[error("read failed")]
    Io(#[source] std::io::Error),
    /// The file is shorter than its header says.
    #[error("the header needs {needed} bytes, the file has {available}")]
    Truncated {
        /// Bytes the header length (plus its 8-byte prefix) needs.
        needed: u64,
        /// Bytes in the file.
        available: u64,
    },
    /// The declared header length is beyond the format's limit.
    #[error("declared header length {0} exceeds the limit of {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge(u64),
    /// The header is not the JSON object the format defines.
    #[error("the header is not valid safetensors JSON")]
    Header(#[source] serde_json::Error),
    /// A tensor's entry is inconsistent.
    #[error("tensor '{key}': {message}")]
    Entry {
        /// The tensor's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The byte ranges do not tile the data section.
    #[error("{0}")]
    Layout(String),
    /// The header names a tensor twice (a JSON object with a repeated key: readers that keep
    /// one of them would load whichever they happen to keep).
    #[error("duplicate tensor name '{0}' in the header")]
    DuplicateName(String),
}

/// One header entry, as the format defines it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// burn's dtype of a safetensors dtype name (the ones burn can hold).
fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U64" => DType::U64,
        "U32" => DType::U32,
        "U16" => DType::U16,
        "U8" => DType::U8,
        "BOOL" => DType::Bool(BoolStore::Native),
        _ => return None,
    })
}

/// A tensor's place in the file.
struct Located {
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte offset in the file.
    start: u64,
    len: usize,
}

/// Read the header of a safetensors file and return its tensors, lazily read.
pub(crate) fn read(path: &Path) -> Result<Tensors, SafetensorsError> {
    let mut file = File::open(path).map_err(SafetensorsError::Io)?;
    let available = file.metadata().map_err(SafetensorsError::Io)?.len();
    let mut prefix = [0u8; 8];
    if available < 8 {
        return Err(SafetensorsError::Truncated {
            needed: 8,
            available,
        });
    }
    file.read_exact(&mut prefix).map_err(SafetensorsError::Io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge(header_len));
    }
    let data_start = 8 + header_len;
    if data_start > available {
        return Err(SafetensorsError::Truncated {
            needed: data_start,
            available,
        });
    }
    // Bounded by MAX_HEADER_BYTES above.
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(SafetensorsError::Io)?;
    let tensors = parse_header(&header, available - data_start)?;
    let path = Arc::new(path.to_path_buf());
    let mut out = Tensors::default();
    for (key, mut t) in tensors {
        t.start += data_start;
        let extent = Extent {
            file: Arc::clone(&path),
            start: t.start,
            len: t.len as u64,
        };
        out.insert(key.clone(), snapshot(&path, &key, t), Some(extent));
    }
    Ok(out)
}

/// The header's top-level object, every key kept once, and the first key that came twice
/// (`serde_json` into a map keeps the last value of a repeated key without a word).
struct HeaderObject {
    entries: BTreeMap<String, serde_json::Value>,
    duplicate: Option<String>,
}

impl<'de> serde::Deserialize<'de> for HeaderObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeaderObject, A::Error> {
                let mut entries = BTreeMap::new();
                let mut duplicate = None;
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    match entries.entry(key) {
                        std::collections::btree_map::Entry::Occupied(e) => {
                            duplicate.get_or_insert_with(|| e.key().clone());
                        }
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(value);
                        }
                    }
                }
                Ok(HeaderObject { entries, duplicate })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Parse and check the header JSON against a data section of `data_len` bytes.
fn parse_header(
    header: &[u8],
    data_len: u64,
) -> Result<BTreeMap<String, Located>, SafetensorsError> {
    let raw: HeaderObject = serde_json::from_slice(header).map_err(SafetensorsError::Header)?;
    if let Some(key) = raw.duplicate {
        return Err(SafetensorsError::DuplicateName(key));
    }
    let raw = raw.entries;
    let mut tensors = BTreeMap::new();
    for (key, value) in raw {
        if key == "__metadata__" {
            // Free-form string pairs; the format allows nothing else there.
            serde_json::from_value::<BTreeMap<String, String>>(value)
                .map_err(SafetensorsError::Header)?;
            continue;
        }
        let bad = |message: String| SafetensorsError::Entry {
            key: key.clone(),
            message,
        };
        let entry: Entry = serde_json::from_value(value).map_err(SafetensorsError::Header)?;
        let dtype =
            dtype(&entry.dtype).ok_or_else(|| bad(format!("unsupported dtype {}", entry.dtype)))?;
        let (begin, end) = entry.data_offsets;
        if end < begin {
            return Err(bad(format!("data_offsets [{begin}, {end}] run backwards")));
        }
        let numel = entry
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        let expected = numel.and_then(|n| n.checked_mul(dtype.size() as u64));
        if expected != Some(end - begin) {
            return Err(bad(format!(
                "shape {:?} of {} needs {} bytes, data_offsets [{begin}, {end}] hold {}",
                entry.shape,
                entry.dtype,
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                end - begin
            )));
        }
        let len = usize::try_from(end - begin)
            .map_err(|_| bad(format!("{} bytes do not fit in memory", end - begin)))?;
        tensors.insert(
            key,
            Located {
                dtype,
                shape: entry.shape,
                start: begin,
                len,
            },
        );
    }
    check_tiling(&tensors, data_len)?;
    Ok(tensors)
}

/// The ranges, in order, must start at 0, follow each other without gap or overlap, and end
/// where the file ends (what `safetensors` requires: anything else is a damaged file).
fn check_tiling(
    tensors: &BTreeMap<String, Located>,
    data_len: u64,
) -> Result<(), SafetensorsError> {
    let mut ranges: Vec<(u64, u64, &str)> = tensors
        .iter()
        .map(|(k, t)| (t.start, t.start + t.len as u64, k.as_str()))
        .collect();
    ranges.sort_unstable();
    let mut at = 0u64;
    for (begin, end, key) in ranges {
        if begin != at {
            return Err(SafetensorsError::Layout(format!(
                "tensor '{key}' starts at data byte {begin}, the previous tensor ends at {at}"
            )));
        }
        at = end;
    }
    if at != data_len {
        return Err(SafetensorsError::Layout(format!(
            "the tensors end at data byte {at}, the file's data section has {data_len} bytes"
        )));
    }
    Ok(())
}

fn snapshot(path: &Arc<PathBuf>, key: &str, t: Located) -> TensorSnapshot {
    let (dtype, shape) = (t.dtype, t.shape.clone());
    let path = Arc::clone(path);
    crate::lazy_snapshot(key, dtype, shape, move || {
        let mut buf = ElemBuf::zeroed(t.len, t.dtype.size());
        let file = File::open(path.as_path()).map_err(read_failed)?;
        read_at(&file, t.start, buf.bytes_mut()).map_err(read_failed)?;
        Ok(buf.into_data(t.shape.clone(), t.dtype))
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<BTreeMap<String, Located>, SafetensorsError> {
        parse_header(json.as_bytes(), 24)
    }

    #[test]
    fn accepts_a_tiled_header_with_metadata() {
        let t = header(
            r#"{"__metadata__":{"format":"pt"},
                "b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},
                "a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}"#,
        )
        .expect("valid");
        assert_eq!(t.len(), 2);
        assert_eq!((t["a"].start, t["a"].len, t["a"].dtype), (0, 8, DType::F16));
        assert_eq!((t["b"].start, t["b"].len), (8, 16));
    }

    #[test]
    fn refuses_what_the_format_forbids() {
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,24]}}"#,
                "needs 8 bytes",
            ),
            (
                r#"{"a":{"dtype":"F8_E4M3","shape":[24],"data_offsets":[0,24]}}"#,
                "unsupported dtype",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[4,28]}}"#,
                "starts at data byte 4",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                "section has 24 bytes",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[9,1]}}"#,
                "run backwards",
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[4294967296,4294967296,2],"data_offsets":[0,24]}}"#,
                "too many",
            ),
        ];
        for (json, want) in cases {
            let err = header(json)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{json}: {err}");
        }
        for json in [
            "[1]",
            r#"{"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24],"extra":1}}"#,
            r#"{"__metadata__":{"n":1}}"#,
            r#"{"a":{"dtype":"F32","shape":[-6],"data_offsets":[0,24]}}"#,
        ] {
            assert!(
                matches!(header(json), Err(SafetensorsError::Header(_))),
                "{json}"
            );
        }
    }

    /// A tensor named twice is reported as such (serde_json into a map keeps the last one,
    /// which then looked like an offset error).
    #[test]
    fn a_duplicate_tensor_name_is_named() {
        let json = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
            "b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},
            "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let err = header(json)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, "duplicate tensor name 'a' in the header");
        // Also for the metadata key.
        let json = r#"{"__metadata__":{},"__metadata__":{},
            "a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}"#;
        assert!(matches!(
            header(json),
            Err(SafetensorsError::DuplicateName(k)) if k == "__metadata__"
        ));
    }
}
