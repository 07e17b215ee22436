//! Reading the checkpoint formats into flat maps of lazily read tensors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn_store::TensorSnapshot;

use crate::StoreError;

pub(crate) fn read_pytorch(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
    crate::torch::read(path).map_err(|source| StoreError::Pytorch {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

pub(crate) fn read_safetensors(
    path: &Path,
) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
    crate::safetensors::read(path).map_err(|source| StoreError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_shards(index: &Path) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
    let bad = |message: String| StoreError::ShardIndex {
        path: index.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(index).map_err(|source| StoreError::Io {
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
    let mut all = BTreeMap::new();
    for file in files {
        let shard = dir.join(&file);
        let lower = file.to_lowercase();
        let tensors = if lower.ends_with(".safetensors") {
            read_safetensors(&shard)?
        } else if lower.ends_with(".bin") || lower.ends_with(".pt") || lower.ends_with(".pth") {
            read_pytorch(&shard)?
        } else {
            return Err(StoreError::UnsupportedFormat { path: shard });
        };
        all.extend(tensors);
    }
    for key in map.keys() {
        if !all.contains_key(key) {
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
