//! Strict loading of a checkpoint into a burn module.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Element, Int, Tensor};
use burn_store::{ApplyError, ModuleAdapter, ModuleSnapshot};

use crate::cast::CastFloat;
use crate::layout::TorchLayout;
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

/// Records each parameter's path and kind without reading (or initialising) it.
#[derive(Default)]
struct Kinds {
    path: Vec<String>,
    kinds: BTreeMap<String, Kind>,
}

impl Kinds {
    fn add(&mut self, kind: Kind) {
        self.kinds.insert(self.path.join("."), kind);
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
                    key,
                    expected: want.name(),
                    found: s.dtype,
                });
            }
        }
        let cast = CastFloat::new(float_dtype);
        let adapter = TorchLayout.chain(cast.clone());
        let result = module.apply(snapshots, None, Some(Box::new(adapter)), false);
        if let Some(bad) = cast.take_found() {
            return Err(StoreError::NonFinite {
                path: source,
                key: checkpoint_name(&bad.key),
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
            .filter(|k| !burn_alias(k).is_some_and(|a| applied.contains(a.as_str())))
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
pub(crate) fn checkpoint_name(path: &str) -> String {
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
