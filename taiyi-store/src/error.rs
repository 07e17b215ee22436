//! The crate's error type.

use std::path::PathBuf;

use burn::tensor::DType;

/// Everything that can go wrong while reading a checkpoint or loading it into a module.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint is not a regular file (a directory, a FIFO, a device) or cannot be
    /// opened.
    #[error("cannot open checkpoint {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why it was not opened.
        #[source]
        source: crate::input::InputError,
    },
    /// The file extension is not one we know how to read.
    #[error(
        "unsupported checkpoint file {path}: expected .bin, .pt, .pth, .safetensors or .index.json"
    )]
    UnsupportedFormat {
        /// The offending path.
        path: PathBuf,
    },
    /// The PyTorch checkpoint cannot be read (corrupt, truncated, not a state dict, a view
    /// outside its storage, a storage record missing or of the wrong size).
    #[error("cannot read PyTorch checkpoint {path}")]
    Pytorch {
        /// The file that failed.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: Box<crate::torch::TorchError>,
    },
    /// The safetensors file could not be parsed.
    #[error("cannot read safetensors checkpoint {path}")]
    Safetensors {
        /// The file that failed.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: crate::safetensors::SafetensorsError,
    },
    /// A shard index (`*.index.json`) is malformed.
    #[error("malformed shard index {path}: {message}")]
    ShardIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The checkpoint holds no tensor at all.
    #[error("checkpoint {path} contains no tensors")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Tensors the module needs are absent from the checkpoint.
    #[error("checkpoint {path} is missing {} tensor(s): {}{}", keys.len(), keys.join(", "), hint(suggestions))]
    Missing {
        /// The file.
        path: PathBuf,
        /// Checkpoint keys (after remapping) the module needs but did not find.
        keys: Vec<String>,
        /// Unused checkpoint keys that look like what was meant.
        suggestions: Vec<String>,
    },
    /// Tensors of the checkpoint that the module does not use and that are not on the ignore list.
    #[error("checkpoint {path} has {} unexpected tensor(s) not used by the model: {}", keys.len(), keys.join(", "))]
    Unused {
        /// The file.
        path: PathBuf,
        /// The unused keys, as named in the checkpoint (after remapping).
        keys: Vec<String>,
    },
    /// A tensor has the wrong shape for the model's configuration.
    #[error("tensor '{key}' in {path} has shape {found:?}, but the model expects {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's key (after remapping).
        key: String,
        /// The shape the module expects (burn layout).
        expected: Vec<usize>,
        /// The shape found (burn layout, after the layout adapter).
        found: Vec<usize>,
    },
    /// A tensor's element kind differs from the parameter's (an integer or bool tensor where
    /// the model has a float parameter, or the reverse).
    #[error("tensor '{key}' in {path} is {found:?}, but the model expects a {expected} tensor")]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor's key (after remapping).
        key: String,
        /// The kind the model expects: `float`, `integer` or `bool`.
        expected: &'static str,
        /// The dtype found.
        found: DType,
    },
    /// A float tensor holds NaN or ±inf, or a value its cast to the model's dtype overflows.
    #[error("tensor '{key}' in {path} holds a non-finite value: {value} at flat index {index}{}", overflow.map(|d| format!(" (finite as stored, but it overflows {d:?})")).unwrap_or_default())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor's key (after remapping).
        key: String,
        /// Row-major index of the first offending element.
        index: usize,
        /// Its stored value.
        value: f64,
        /// The model dtype the value overflows, when it is finite as stored.
        overflow: Option<DType>,
    },
    /// A tensor could not be read or converted.
    #[error("cannot load tensor '{key}' from {path}: {message}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A tensor asked for by name is absent.
    #[error("checkpoint {path} has no tensor '{key}'")]
    KeyNotFound {
        /// The file.
        path: PathBuf,
        /// The key that was asked for.
        key: String,
    },
    /// A remap pattern is not a valid regular expression (a programming error in a remap table).
    #[error("invalid key remap pattern '{pattern}': {message}")]
    Remap {
        /// The pattern.
        pattern: String,
        /// The regex error.
        message: String,
    },
}

pub(crate) fn hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(
            " (unused tensors that look related: {})",
            suggestions.join(", ")
        )
    }
}
