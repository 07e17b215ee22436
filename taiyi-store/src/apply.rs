//! Strict loading of a checkpoint into a burn module.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Element, Int, Tensor};
use burn_store::{ApplyError, ModuleAdapter, ModuleSnapshot};

use crate::cast::CastFloat;
use crate::layout::TorchLayout;
use crate::readahead::{Extent, Readahead};
use crate::{Checkpoint, LoadSpec, StoreError, rename};

/// The element kind of a module parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Bool,
}

impl Kind {
    fn of(dtype: DType) -> Self {
        if dtype.is_float() {
            Kind::Float
        } else if matches!(dtype, DType::Bool(_)) {
            Kind::Bool
        } else {
            Kind::Int
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Float => "float",
            Kind::Int => "integer",
            Kind::Bool => "bool",
        }
    }
}

/// Records each parameter's path and kind, and the order a load visits them in, without reading
/// (or initialising) it.
#[derive(Default)]
struct Kinds {
    path: Vec<String>,
    kinds: BTreeMap<String, Kind>,
    order: BTreeMap<String, usize>,
}

impl Kinds {
    fn add(&mut self, kind: Kind) {
        let path = self.path.join(".");
        let n = self.order.len();
        self.order.entry(path.clone()).or_insert(n);
        self.kinds.insert(path, kind);
    }

    /// Where the load takes the tensor at module path `key` (a norm's `weight`/`bias` being
    /// its `gamma`/`beta`); last for keys the module lacks.
    fn rank(&self, key: &str) -> usize {
        self.order
            .get(key)
            .or_else(|| burn_alias(key).and_then(|a| self.order.get(&a)))
            .copied()
            .unwrap_or(usize::MAX)
    }
}

impl<B: Backend> ModuleVisitor<B> for Kinds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<B, D>>) {
        self.add(Kind::Float);
    }
    fn visit_int<const D: usize>(&mut self, _: &Param<Tensor<B, D, Int>>) {
        self.add(Kind::Int);
    }
    fn visit_bool<const D: usize>(&mut self, _: &Param<Tensor<B, D, Bool>>) {
        self.add(Kind::Bool);
    }
}

/// The burn name of a checkpoint key for a norm: `weight`/`bias` are `gamma`/`beta`.
fn burn_alias(key: &str) -> Option<String> {
    key.strip_suffix(".weight")
        .map(|p| format!("{p}.gamma"))
        .or_else(|| key.strip_suffix(".bias").map(|p| format!("{p}.beta")))
}

impl Checkpoint {
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
        module: M,
        spec: &LoadSpec<'_>,
        float_dtype: DType,
    ) -> Result<M, StoreError> {
        self.load_into_with_dtypes(module, spec, float_dtype, float_dtype)
    }

    /// [`Checkpoint::load_into_with_dtype`], with the weights of `Linear` / `taiyi_nn::Dense`
    /// layers in `linear_dtype` (e.g. `DType::BF16` for layers that are then prepacked for the
    /// CPU's bf16 kernels: the model never holds them in f32).
    pub fn load_into_with_dtypes<B: Backend, M: Module<B>>(
        self,
        mut module: M,
        spec: &LoadSpec<'_>,
        float_dtype: DType,
        linear_dtype: DType,
    ) -> Result<M, StoreError> {
        let ignore = compile(spec.ignore.iter().map(|p| (*p, "")))?;
        let remap = compile(spec.remap.iter().copied())?;
        let source = self.source;
        let mut names = Names::new(spec.renames);
        let mut snapshots = Vec::with_capacity(self.tensors.len());
        for (key, snap) in self.tensors {
            if ignore.iter().any(|(re, _)| re.is_match(&key)) {
                continue;
            }
            let mut new_key = names.rename(&key);
            for (re, rep) in &remap {
                new_key = re.replace_all(&new_key, rep.as_str()).into_owned();
            }
            snapshots.push(if new_key == key {
                snap
            } else {
                rename(&snap, &new_key)
            });
            names.original.insert(new_key, key);
        }
        // burn panics (then crashes) when an integer tensor meets a float parameter: check the
        // kinds first, from the module's structure (no parameter is read or initialised).
        let mut kinds = Kinds::default();
        module.visit(&mut kinds);
        for s in &snapshots {
            let key = s.full_path();
            let want = kinds
                .kinds
                .get(&key)
                .or_else(|| burn_alias(&key).and_then(|a| kinds.kinds.get(&a)));
            if let Some(&want) = want
                && want != Kind::of(s.dtype)
            {
                return Err(StoreError::DType {
                    path: source,
                    key: names.checkpoint_key(&key),
                    expected: want.name(),
                    found: s.dtype,
                });
            }
        }
        let cast = CastFloat::new(float_dtype, linear_dtype);
        // Scan and cast first, so a non-finite value's index is the stored (row-major) one.
        let adapter = cast.clone().chain(TorchLayout {
            bf16_linear: linear_dtype == DType::BF16,
        });
        // The disk reads what the module takes, in the order it takes it, while the load works
        // on what it has read.
        let mut ahead: Vec<(usize, Extent)> = snapshots
            .iter()
            .filter_map(|s| {
                let extent = self.extents.get(&s.tensor_id?)?.clone();
                Some((kinds.rank(&s.full_path()), extent))
            })
            .collect();
        ahead.sort_by_key(|(rank, _)| *rank);
        let ahead = Readahead::start(ahead.into_iter().map(|(_, e)| e).collect());
        let result = module.apply(snapshots, None, Some(Box::new(adapter)), false);
        drop(ahead);
        if let Some(bad) = cast.take_found() {
            return Err(StoreError::NonFinite {
                path: source,
                key: names.checkpoint_key(&bad.key),
                index: bad.index,
                value: bad.value,
                overflow: bad.overflow,
            });
        }
        if let Some(err) = result.errors.first() {
            return Err(match err {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => StoreError::Shape {
                    path: source,
                    key: names.checkpoint_key(path),
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                },
                ApplyError::DTypeMismatch { path, .. }
                | ApplyError::AdapterError { path, .. }
                | ApplyError::LoadError { path, .. } => StoreError::Tensor {
                    path: source,
                    key: names.checkpoint_key(path),
                    message: err.to_string(),
                },
            });
        }
        if !result.missing.is_empty() {
            let keys: Vec<String> = result
                .missing
                .iter()
                .map(|(k, _)| names.checkpoint_key(k))
                .collect();
            let unused: Vec<String> = result
                .unused
                .iter()
                .map(|k| names.checkpoint_key(k))
                .collect();
            let suggestions = suggest(&keys, &unused);
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
            .filter(|k| !burn_alias(k).is_some_and(|a| applied.contains(a.as_str())))
            .map(|k| names.checkpoint_key(&k))
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

/// The checkpoint's spelling of the keys a load works with.
struct Names<'a> {
    /// `(checkpoint, module)` segment renames.
    renames: &'a [(&'a str, &'a str)],
    /// Every key after renaming and remapping → the key as the checkpoint stores it.
    original: BTreeMap<String, String>,
}

impl<'a> Names<'a> {
    fn new(renames: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            renames,
            original: BTreeMap::new(),
        }
    }

    /// `key` with every segment equal to a rename's checkpoint side replaced by its module side.
    fn rename(&self, key: &str) -> String {
        self.map_segments(key, |(from, to)| (from, to))
    }

    fn map_segments(
        &self,
        key: &str,
        side: impl Fn((&'a str, &'a str)) -> (&'a str, &'a str),
    ) -> String {
        if self.renames.is_empty() {
            return key.to_string();
        }
        key.split('.')
            .map(|seg| {
                self.renames
                    .iter()
                    .map(|&pair| side(pair))
                    .find(|(from, _)| *from == seg)
                    .map_or(seg, |(_, to)| to)
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The checkpoint's spelling of a module path or a renamed key: the stored key where the
    /// checkpoint holds it (burn's norm `gamma`/`beta` read as `weight`/`bias`), else the path
    /// with the renames undone (a key the checkpoint lacks).
    fn checkpoint_key(&self, path: &str) -> String {
        let torch = checkpoint_name(path);
        self.original
            .get(path)
            .or_else(|| self.original.get(&torch))
            .cloned()
            .unwrap_or_else(|| self.map_segments(&torch, |(from, to)| (to, from)))
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

#[cfg(test)]
mod tests {
    use super::Names;

    const RENAMES: &[(&str, &str)] = &[("self", "self_attn"), ("LayerNorm", "layer_norm")];

    #[test]
    fn renames_whole_segments_and_reports_the_checkpoint_spelling() {
        let mut names = Names::new(RENAMES);
        let stored = "bert.encoder.layer.3.attention.self.query.weight";
        let renamed = names.rename(stored);
        assert_eq!(
            renamed,
            "bert.encoder.layer.3.attention.self_attn.query.weight"
        );
        // Only whole segments: `self_x` and `LayerNorms` stay.
        assert_eq!(names.rename("a.self_x.LayerNorms"), "a.self_x.LayerNorms");
        // A key the checkpoint holds is reported as stored (here after a remap dropped
        // `bert.`); norms' burn names `gamma`/`beta` are the stored `weight`/`bias`.
        names.original.insert(
            "encoder.layer.3.attention.self_attn.query.weight".into(),
            stored.into(),
        );
        names.original.insert(
            "embeddings.layer_norm.weight".into(),
            "bert.embeddings.LayerNorm.weight".into(),
        );
        assert_eq!(
            names.checkpoint_key("encoder.layer.3.attention.self_attn.query.weight"),
            stored
        );
        assert_eq!(
            names.checkpoint_key("embeddings.layer_norm.gamma"),
            "bert.embeddings.LayerNorm.weight"
        );
        // A key the checkpoint lacks: the renames undone.
        assert_eq!(
            names.checkpoint_key("encoder.layer.0.output.layer_norm.beta"),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(
            names.checkpoint_key("pooler.dense.bias"),
            "pooler.dense.bias"
        );
    }
}
