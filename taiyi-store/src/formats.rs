//! Reading the checkpoint formats into flat maps of lazily read tensors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::{StoreError, Tensors};

/// A checkpoint file format, told by the file name (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `*.index.json`: a sharded checkpoint's `weight_map`.
    ShardIndex,
    /// `*.safetensors`.
    Safetensors,
    /// `*.bin`, `*.pt`, `*.pth`: `torch.save` (zip or legacy).
    Pytorch,
}

impl Format {
    /// The format of `path` by its name; an unknown extension is an error naming the file.
    pub(crate) fn from_path(path: &Path) -> Result<Self, StoreError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            Ok(Format::ShardIndex)
        } else if name.ends_with(".safetensors") {
            Ok(Format::Safetensors)
        } else if [".bin", ".pt", ".pth"].iter().any(|e| name.ends_with(e)) {
            Ok(Format::Pytorch)
        } else {
            Err(StoreError::UnsupportedFormat {
                path: path.to_path_buf(),
            })
        }
    }

    /// Read `path` in this format.
    pub(crate) fn read(self, path: &Path) -> Result<Tensors, StoreError> {
        match self {
            Format::ShardIndex => read_shards(path),
            Format::Safetensors => read_safetensors(path),
            Format::Pytorch => read_pytorch(path),
        }
    }
}

/// Refuse a checkpoint path that is not a regular file (a directory, a FIFO, a device) before
/// a reader opens it: a FIFO's `open` would block, a device never ends.
pub(crate) fn check_file(path: &Path) -> Result<(), StoreError> {
    crate::input::InputFile::open(path)
        .map(drop)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn read_pytorch(path: &Path) -> Result<Tensors, StoreError> {
    crate::torch::read(path).map_err(|source| StoreError::Pytorch {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

fn read_safetensors(path: &Path) -> Result<Tensors, StoreError> {
    crate::safetensors::read(path).map_err(|source| StoreError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

fn read_shards(index: &Path) -> Result<Tensors, StoreError> {
    let bad = |message: String| StoreError::ShardIndex {
        path: index.to_path_buf(),
        message,
    };
    let text = crate::input::read_input_to_string(index, crate::input::InputKind::JSON_CONFIG)
        .map_err(|source| StoreError::Open {
            path: index.to_path_buf(),
            source,
        })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object".to_string()))?;
    let dir = index.parent().unwrap_or_else(|| Path::new("."));
    let mut files = BTreeSet::new();
    for (key, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map entry '{key}' is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file.contains("..") {
            return Err(bad(format!("shard name '{file}' is not a plain file name")));
        }
        files.insert(file.to_string());
    }
    let mut all = Tensors::default();
    for file in files {
        let shard = dir.join(&file);
        // A shard is a weights file: an index naming another index is not followed.
        let tensors = match Format::from_path(&shard)? {
            Format::ShardIndex => return Err(StoreError::UnsupportedFormat { path: shard }),
            format => {
                check_file(&shard)?;
                format.read(&shard)?
            }
        };
        all.extend(tensors);
    }
    for key in map.keys() {
        if !all.snapshots.contains_key(key) {
            return Err(bad(format!(
                "tensor '{key}' is listed but absent from its shard"
            )));
        }
    }
    Ok(all)
}

/// Pick the first of `candidates` (file names, in order of preference) that exists in `dir`.
///
/// Returns an error naming the directory and every name that was tried.
pub fn find_in_dir(dir: &Path, candidates: &[&str]) -> Result<PathBuf, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| StoreError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no weights file found (tried {})", candidates.join(", ")),
            ),
        })
}
