//! The legacy `torch.save` stream (`_use_new_zipfile_serialization=False`): five pickles
//! (magic number, protocol version, system info, the object, the sorted storage keys), then
//! each storage as an 8-byte little-endian element count and its raw bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::pickle::{self, Key, Value};
use super::{Loc, Parsed, TorchError, rebuild};

/// The first pickle of a legacy file: protocol 2, `LONG1` 0x1950a86a20f9469cfc6c, `STOP`.
const MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
const PROTOCOL_VERSION: i64 = 1001;

fn part<R: std::io::BufRead>(r: &mut R, name: &str) -> Result<Value, TorchError> {
    pickle::read(r).map_err(|source| TorchError::Pickle {
        part: name.to_string(),
        source,
    })
}

pub(super) fn read(file: File) -> Result<Parsed, TorchError> {
    let file_len = file.metadata().map_err(TorchError::Io)?.len();
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 15];
    if r.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(TorchError::NotPytorch);
    }
    match part(&mut r, "protocol version")? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(TorchError::Unsupported {
                key: String::new(),
                what: format!("legacy protocol version {other:?}"),
            });
        }
    }
    let big_endian = match part(&mut r, "system info")? {
        Value::Dict(d, _) => matches!(
            d.get(&Key::Str("little_endian".into())),
            Some(Value::Bool(false))
        ),
        _ => false,
    };
    let root = part(&mut r, "state dict")?;
    let keys = part(&mut r, "storage keys")?;
    let tensors = rebuild::collect(&root)?;
    let Value::List(keys, _) = keys else {
        return Err(TorchError::Malformed {
            key: String::new(),
            message: "the storage key list is not a list".into(),
        });
    };
    // The storage each key names (element size and declared count), and one tensor using it
    // (for error messages).
    let mut by_key = BTreeMap::new();
    for (name, t) in &tensors {
        by_key
            .entry(t.storage.key.clone())
            .or_insert((name.clone(), t.storage.clone()));
    }
    let mut pos = r.stream_position().map_err(TorchError::Io)?;
    let mut locs = BTreeMap::new();
    for k in keys.iter() {
        let Value::Str(k) = k else {
            return Err(TorchError::Malformed {
                key: String::new(),
                message: "a storage key is not a str".into(),
            });
        };
        let Some((name, s)) = by_key.get(&**k) else {
            // A storage no tensor uses: its element size is unknown, and torch.load would
            // fail on it too.
            return Err(TorchError::Malformed {
                key: String::new(),
                message: format!("storage '{k}' is listed but no tensor uses it"),
            });
        };
        let expected = s.numel.saturating_mul(s.dtype.size() as u64);
        let cut = |found: u64| TorchError::RecordSize {
            key: name.clone(),
            record: k.to_string(),
            found,
            expected,
        };
        r.seek(SeekFrom::Start(pos)).map_err(TorchError::Io)?;
        let mut count = [0u8; 8];
        r.read_exact(&mut count)
            .map_err(|_| cut(file_len.saturating_sub(pos)))?;
        let count = u64::from_le_bytes(count);
        let declared = count.checked_mul(s.dtype.size() as u64);
        if declared != Some(expected) {
            return Err(cut(declared.unwrap_or(u64::MAX)));
        }
        let start = pos + 8;
        let left = file_len.saturating_sub(start);
        if left < expected {
            return Err(cut(left));
        }
        locs.insert(k.to_string(), Loc::At(start));
        pos = start + expected;
    }
    if let Some((name, t)) = tensors
        .iter()
        .find(|(_, t)| !locs.contains_key(&t.storage.key))
    {
        return Err(TorchError::MissingRecord {
            key: name.clone(),
            record: t.storage.key.clone(),
        });
    }
    Ok((tensors, locs, big_endian))
}
