//! Checkpoint reading and strict loading, shared by the taiyi towers.
//!
//! A [`Checkpoint`] is a flat map from PyTorch state-dict keys to lazily read tensors. It is
//! opened from a PyTorch zip pickle (`.bin`, `.pt`, `.pth`), a `.safetensors` file, or a
//! sharded checkpoint's `*.index.json`. Tensors are only read from disk when a module takes
//! them, so peak memory stays close to the size of the loaded module.
//!
//! [`Checkpoint::load_into`] applies the checkpoint to a burn module whose field names follow
//! the checkpoint's keys, through a short [`LoadSpec`]: an anchored remap table, an explicit
//! ignore list, and the PyTorch → burn layout adapter (`Linear` weights transposed, norm
//! `weight`/`bias` read as `gamma`/`beta`). Every floating-point tensor is cast to the module's
//! float dtype (fp16/bf16/f64 checkpoints load into f32 models and vice versa). Loading is
//! strict: a missing tensor, a tensor left unused (and not ignored) and a tensor of the wrong
//! shape are each an error that names the key. A missing tensor is never filled with random
//! values.
//!
//! ```no_run
//! use taiyi_store::{Checkpoint, LoadSpec};
//! # fn demo() -> Result<(), taiyi_store::StoreError> {
//! let mut ckpt = Checkpoint::open("open_clip_model.safetensors")?;
//! let visual = ckpt.split_prefix("visual.");
//! println!("{} visual tensors, {} others", visual.len(), ckpt.len());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, TensorData};
use burn_store::pytorch::PytorchReader;
use burn_store::{
    ApplyError, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore,
    TensorSnapshot,
};

/// Everything that can go wrong while reading a checkpoint or loading it into a module.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file extension is not one we know how to read.
    #[error(
        "unsupported checkpoint file {path}: expected .bin, .pt, .pth, .safetensors or .index.json"
    )]
    UnsupportedFormat {
        /// The offending path.
        path: PathBuf,
    },
    /// The PyTorch pickle could not be parsed (corrupt, truncated, or not a state dict).
    #[error("cannot parse PyTorch checkpoint {path}: {source}")]
    Pytorch {
        /// The file that failed.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: burn_store::pytorch::PytorchError,
    },
    /// The safetensors file could not be parsed.
    #[error("cannot parse safetensors checkpoint {path}: {source}")]
    Safetensors {
        /// The file that failed.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: burn_store::SafetensorsStoreError,
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

fn hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(
            " (unused tensors that look related: {})",
            suggestions.join(", ")
        )
    }
}

/// How a checkpoint's keys map onto a module.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSpec<'a> {
    /// Regex rewrites applied in order to every checkpoint key (e.g.
    /// `(r"\.attention\.self\.", ".attention.self_attn.")`); anchor them (`^`, `\.`) so they
    /// cannot match by accident. Replacement strings may use `$1`-style groups.
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
        let meta = std::fs::metadata(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, expected a checkpoint file",
                ),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let tensors = if name.ends_with(".index.json") {
            read_shards(path)?
        } else if name.ends_with(".safetensors") {
            read_safetensors(path)?
        } else if name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".pth") {
            read_pytorch(path)?
        } else {
            return Err(StoreError::UnsupportedFormat {
                path: path.to_path_buf(),
            });
        };
        if tensors.is_empty() {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        let mut ckpt = Self {
            source: path.to_path_buf(),
            tensors,
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
        }
    }

    /// Remove and return the tensor `key` converted to `f32` values (any float dtype).
    pub fn take_f32(&mut self, key: &str) -> Result<Vec<f32>, StoreError> {
        let snap = self
            .tensors
            .remove(key)
            .ok_or_else(|| StoreError::KeyNotFound {
                path: self.source.clone(),
                key: key.to_string(),
            })?;
        if !snap.dtype.is_float() {
            return Err(StoreError::Tensor {
                path: self.source.clone(),
                key: key.to_string(),
                message: format!("expected a float tensor, found {:?}", snap.dtype),
            });
        }
        let data = snap.to_data().map_err(|e| StoreError::Tensor {
            path: self.source.clone(),
            key: key.to_string(),
            message: format!("{e:?}"),
        })?;
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

    /// Load this checkpoint into `module`, strictly (see the crate docs), casting float tensors
    /// to the backend's default float dtype.
    pub fn load_into<B: Backend, M: Module<B>>(
        self,
        module: M,
        spec: &LoadSpec<'_>,
    ) -> Result<M, StoreError> {
        self.load_into_with_dtype(module, spec, <B::FloatElem as Element>::dtype())
    }

    /// [`Checkpoint::load_into`] with an explicit float dtype for the loaded parameters (e.g.
    /// `DType::F16` or `DType::BF16` on GPU backends that hold them).
    pub fn load_into_with_dtype<B: Backend, M: Module<B>>(
        self,
        mut module: M,
        spec: &LoadSpec<'_>,
        float_dtype: DType,
    ) -> Result<M, StoreError> {
        let ignore = compile(spec.ignore.iter().map(|p| (*p, "")))?;
        let remap = compile(spec.remap.iter().copied())?;
        let source = self.source;
        let mut snapshots = Vec::with_capacity(self.tensors.len());
        for (key, snap) in self.tensors {
            if ignore.iter().any(|(re, _)| re.is_match(&key)) {
                continue;
            }
            let mut new_key = key.clone();
            for (re, rep) in &remap {
                new_key = re.replace_all(&new_key, rep.as_str()).into_owned();
            }
            snapshots.push(if new_key == key {
                snap
            } else {
                rename(&snap, &new_key)
            });
        }
        let adapter = PyTorchToBurnAdapter.chain(CastFloat(float_dtype));
        let result = module.apply(snapshots, None, Some(Box::new(adapter)), false);
        if let Some(err) = result.errors.first() {
            return Err(match err {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => StoreError::Shape {
                    path: source,
                    key: checkpoint_name(path),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                },
                ApplyError::DTypeMismatch { path, .. }
                | ApplyError::AdapterError { path, .. }
                | ApplyError::LoadError { path, .. } => StoreError::Tensor {
                    path: source,
                    key: path.clone(),
                    message: err.to_string(),
                },
            });
        }
        if !result.missing.is_empty() {
            let keys: Vec<String> = result
                .missing
                .iter()
                .map(|(k, _)| checkpoint_name(k))
                .collect();
            let suggestions = suggest(&keys, &result.unused);
            return Err(StoreError::Missing {
                path: source,
                keys,
                suggestions,
            });
        }
        // burn-store reads a norm's `gamma`/`beta` from the checkpoint's `weight`/`bias` through
        // the adapter's alternative names, yet still lists those keys as unused: drop them.
        let applied: BTreeSet<&str> = result.applied.iter().map(String::as_str).collect();
        let unused: Vec<String> = result
            .unused
            .into_iter()
            .filter(|k| {
                let alt = k
                    .strip_suffix(".weight")
                    .map(|p| format!("{p}.gamma"))
                    .or_else(|| k.strip_suffix(".bias").map(|p| format!("{p}.beta")));
                !alt.is_some_and(|a| applied.contains(a.as_str()))
            })
            .collect();
        if !unused.is_empty() {
            return Err(StoreError::Unused {
                path: source,
                keys: unused,
            });
        }
        Ok(module)
    }
}

/// The PyTorch name of a burn parameter path: norms' `gamma`/`beta` are `weight`/`bias`.
fn checkpoint_name(path: &str) -> String {
    if let Some(p) = path.strip_suffix(".gamma") {
        format!("{p}.weight")
    } else if let Some(p) = path.strip_suffix(".beta") {
        format!("{p}.bias")
    } else {
        path.to_string()
    }
}

/// Unused keys that share the last two path segments of a missing key (e.g. a misspelt layer
/// container), to make "missing" errors actionable.
fn suggest(missing: &[String], unused: &[String]) -> Vec<String> {
    let tail = |k: &str| -> String {
        let parts: Vec<&str> = k.rsplitn(3, '.').collect();
        parts
            .iter()
            .take(2)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join(".")
    };
    let wanted: BTreeSet<String> = missing.iter().map(|k| tail(k)).collect();
    unused
        .iter()
        .filter(|u| wanted.contains(&tail(u)))
        .take(5)
        .cloned()
        .collect()
}

fn compile<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<(regex::Regex, String)>, StoreError> {
    pairs
        .map(|(p, r)| {
            regex::Regex::new(p)
                .map(|re| (re, r.to_string()))
                .map_err(|e| StoreError::Remap {
                    pattern: p.to_string(),
                    message: e.to_string(),
                })
        })
        .collect()
}

/// The same lazily read tensor under another key.
fn rename(snap: &TensorSnapshot, key: &str) -> TensorSnapshot {
    TensorSnapshot::from_closure(
        snap.clone_data_fn(),
        snap.dtype,
        snap.shape.clone(),
        key.split('.').map(str::to_string).collect(),
        Vec::new(),
        snap.tensor_id.unwrap_or_default(),
    )
}

/// Casts floating-point tensors to one dtype while they are read.
#[derive(Debug, Clone, Copy)]
struct CastFloat(DType);

impl ModuleAdapter for CastFloat {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let target = self.0;
        if !snapshot.dtype.is_float() || snapshot.dtype == target {
            return snapshot.clone();
        }
        let read = snapshot.clone_data_fn();
        let cast: Rc<dyn Fn() -> Result<TensorData, burn_store::TensorSnapshotError>> =
            Rc::new(move || read().map(|d| d.convert_dtype(target)));
        TensorSnapshot::from_closure(
            cast,
            target,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
    let reader = PytorchReader::new(path).map_err(|source| StoreError::Pytorch {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(reader
        .into_tensors()
        .into_iter()
        .map(|(k, s)| {
            let s = rename(&s, &k);
            (k, s)
        })
        .collect())
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
    let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
    let all = store
        .get_all_snapshots()
        .map_err(|source| StoreError::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(all.clone())
}

fn read_shards(index: &Path) -> Result<BTreeMap<String, TensorSnapshot>, StoreError> {
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
