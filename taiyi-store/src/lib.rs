//! Checkpoint reading and strict loading, shared by the taiyi towers.
//!
//! A [`Checkpoint`] is a flat map from PyTorch state-dict keys to lazily read tensors. It is
//! opened from a PyTorch checkpoint (`.bin`, `.pt`, `.pth`: `torch.save`'s zip format or its
//! legacy stream, read as `torch.load` reads them, strided views included, by a pickle reader
//! that never runs code), a `.safetensors` file, or a sharded checkpoint's `*.index.json`.
//! Tensors are only read from disk when a module takes them, so peak memory stays close to the
//! size of the loaded module.
//!
//! [`Checkpoint::load_into`] applies the checkpoint to a burn module whose field names follow
//! the checkpoint's keys, through a short [`LoadSpec`]: an anchored remap table, an explicit
//! ignore list, and the PyTorch → burn layout adapter (`Linear` weights transposed, norm
//! `weight`/`bias` read as `gamma`/`beta`). Every floating-point tensor is cast to the module's
//! float dtype (fp16/bf16/f64 checkpoints load into f32 models and vice versa). Loading is
//! strict: a missing tensor, a tensor left unused (and not ignored), a tensor of the wrong
//! shape or element kind (an integer tensor for a float parameter), and a float tensor holding
//! NaN/±inf (or a value its cast overflows) are each an error that names the key. A missing
//! tensor is never filled with random values.
//!
//! ```no_run
//! use taiyi_store::{Checkpoint, LoadSpec};
//! # fn demo() -> Result<(), taiyi_store::StoreError> {
//! let mut ckpt = Checkpoint::open("open_clip_model.safetensors")?;
//! let visual = ckpt.split_prefix("visual.");
//! println!("{} visual tensors, {} others", visual.len(), ckpt.len());
//! # Ok(()) }
//! ```

mod apply;
mod buffer;
mod cast;
mod error;
mod formats;
pub mod input;
mod layout;
mod readahead;
mod safetensors;
mod torch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{DType, TensorData};
use burn_store::TensorSnapshot;

pub use error::StoreError;
use formats::Format;
pub use formats::find_in_dir;
use readahead::{Extent, Extents};
pub use safetensors::SafetensorsError;
pub use torch::{PickleError, TorchError};

/// What a format reader found: the lazily read tensors by key, and where those stored as one
/// contiguous byte range lie (for the read-ahead of a load).
#[derive(Default)]
pub(crate) struct Tensors {
    snapshots: BTreeMap<String, TensorSnapshot>,
    extents: Extents,
}

impl Tensors {
    /// Add a tensor, with its byte range when it has one.
    pub(crate) fn insert(&mut self, key: String, snap: TensorSnapshot, extent: Option<Extent>) {
        if let (Some(id), Some(e)) = (snap.tensor_id, extent) {
            self.extents.insert(id, e);
        }
        self.snapshots.insert(key, snap);
    }

    /// Add every tensor of `other` (a later key replaces an earlier one).
    pub(crate) fn extend(&mut self, other: Tensors) {
        self.snapshots.extend(other.snapshots);
        self.extents.extend(other.extents);
    }
}

/// How a checkpoint's keys map onto a module.
///
/// A key goes through the [`LoadSpec::renames`] first, then the [`LoadSpec::remap`] table.
/// Errors name keys in the checkpoint's own spelling: a key the checkpoint holds as it is
/// stored, a key the module lacks with the renames undone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSpec<'a> {
    /// Literal, invertible renames of whole key segments, `(checkpoint, module)`: for names a
    /// Rust field cannot or should not spell, e.g. `("self", "self_attn")` or
    /// `("LayerNorm", "layer_norm")`. A segment equal to the first is replaced by the second.
    pub renames: &'a [(&'a str, &'a str)],
    /// Regex rewrites applied in order to every (renamed) key, for structural moves (e.g.
    /// `(r"\.in_proj_weight$", ".in_proj.weight")`); anchor them (`^`, `\.`) so they cannot
    /// match by accident. Replacement strings may use `$1`-style groups.
    pub remap: &'a [(&'a str, &'a str)],
    /// Regexes matched against the checkpoint keys (before remapping): matching tensors are
    /// dropped silently. Everything else that the module does not use is an error.
    pub ignore: &'a [&'a str],
}

/// A flat, lazily read state dict.
#[derive(Clone)]
pub struct Checkpoint {
    source: PathBuf,
    tensors: BTreeMap<String, TensorSnapshot>,
    /// Byte ranges of the file-backed tensors, by snapshot id (shared by split checkpoints).
    extents: Arc<Extents>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("source", &self.source)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Top-level wrappers that training scripts put around a state dict; stripped when every key
/// carries them.
const WRAPPERS: &[&str] = &["state_dict.", "model_state_dict.", "module."];

impl Checkpoint {
    /// Open a checkpoint file: `.bin`/`.pt`/`.pth` (PyTorch zip or legacy pickle),
    /// `.safetensors`, or a shard index `*.index.json` (every shard it names, merged).
    ///
    /// Wrappers added by training code (`state_dict.`, `model_state_dict.`, `module.`) are
    /// removed when every key carries them.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        formats::check_file(path)?;
        let read = Format::from_path(path)?.read(path)?;
        if read.snapshots.is_empty() {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut ckpt = Self {
            source: path.to_path_buf(),
            tensors: read.snapshots,
            extents: Arc::new(read.extents),
        };
        for w in WRAPPERS {
            ckpt.strip_prefix_if_all(w);
        }
        Ok(ckpt)
    }

    /// Build a checkpoint from snapshots (tests, in-memory sources). `source` is only used in
    /// error messages.
    pub fn from_snapshots(
        source: impl Into<PathBuf>,
        snapshots: impl IntoIterator<Item = TensorSnapshot>,
    ) -> Self {
        Self {
            source: source.into(),
            tensors: snapshots.into_iter().map(|s| (s.full_path(), s)).collect(),
            extents: Arc::default(),
        }
    }

    /// The file this checkpoint was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// Shape of the tensor `key`, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|s| s.shape.to_vec())
    }

    /// Dtype of the tensor `key`, if present.
    pub fn dtype(&self, key: &str) -> Option<DType> {
        self.tensors.get(key).map(|s| s.dtype)
    }

    /// Remove `prefix` from every key if every key starts with it. Returns whether it did.
    pub fn strip_prefix_if_all(&mut self, prefix: &str) -> bool {
        if self.tensors.is_empty() || !self.tensors.keys().all(|k| k.starts_with(prefix)) {
            return false;
        }
        let old = std::mem::take(&mut self.tensors);
        self.tensors = old
            .into_iter()
            .map(|(k, s)| {
                let key = k[prefix.len()..].to_string();
                (key.clone(), rename(&s, &key))
            })
            .collect();
        true
    }

    /// Move every tensor whose key starts with `prefix` into a new checkpoint, with the prefix
    /// removed. The tensors stay lazily read.
    pub fn split_prefix(&mut self, prefix: &str) -> Checkpoint {
        let keys: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(s) = self.tensors.remove(&k) {
                let key = k[prefix.len()..].to_string();
                out.insert(key.clone(), rename(&s, &key));
            }
        }
        Checkpoint {
            source: self.source.clone(),
            tensors: out,
            extents: Arc::clone(&self.extents),
        }
    }

    /// Remove and return the tensor `key` as stored (its dtype, row-major).
    pub fn take(&mut self, key: &str) -> Result<TensorData, StoreError> {
        let snap = self
            .tensors
            .remove(key)
            .ok_or_else(|| StoreError::KeyNotFound {
                path: self.source.clone(),
                key: key.to_string(),
            })?;
        snap.to_data().map_err(|e| StoreError::Tensor {
            path: self.source.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Remove and return the tensor `key` converted to `f32` values (any float dtype).
    pub fn take_f32(&mut self, key: &str) -> Result<Vec<f32>, StoreError> {
        match self.dtype(key) {
            Some(d) if !d.is_float() => {
                return Err(StoreError::DType {
                    path: self.source.clone(),
                    key: key.to_string(),
                    expected: "float",
                    found: d,
                });
            }
            _ => {}
        }
        let data = self.take(key)?;
        data.convert_dtype(DType::F32)
            .into_vec::<f32>()
            .map_err(|e| StoreError::Tensor {
                path: self.source.clone(),
                key: key.to_string(),
                message: format!("{e:?}"),
            })
    }

    /// Remove the tensor `key` if present; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        self.tensors.remove(key).is_some()
    }
}

/// A tensor of a checkpoint file under `key`, read by `read` only when a module takes it.
pub(crate) fn lazy_snapshot(
    key: &str,
    dtype: DType,
    shape: Vec<usize>,
    read: impl Fn() -> Result<TensorData, burn_store::TensorSnapshotError> + 'static,
) -> TensorSnapshot {
    TensorSnapshot::from_closure(
        std::rc::Rc::new(read),
        dtype,
        burn::tensor::Shape::from(shape),
        key.split('.').map(str::to_string).collect(),
        Vec::new(),
        burn::module::ParamId::new(),
    )
}

/// A reader's I/O failure as the error of a lazily read tensor.
pub(crate) fn read_failed(e: impl std::fmt::Display) -> burn_store::TensorSnapshotError {
    burn_store::TensorSnapshotError::IoError(e.to_string())
}

/// The same lazily read tensor under another key.
pub(crate) fn rename(snap: &TensorSnapshot, key: &str) -> TensorSnapshot {
    TensorSnapshot::from_closure(
        snap.clone_data_fn(),
        snap.dtype,
        snap.shape.clone(),
        key.split('.').map(str::to_string).collect(),
        Vec::new(),
        snap.tensor_id.unwrap_or_default(),
    )
}
