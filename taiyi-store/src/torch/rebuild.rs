//! From pickle values to tensor views: `_rebuild_tensor_v2` and friends, storage references,
//! bounds checks, and gathering a strided view into contiguous bytes.

use std::rc::Rc;

use burn::tensor::{BoolStore, DType};

use super::TorchError;
use super::pickle::{Key, Value};

/// Most nodes visited while collecting tensors (a shared-subtree pickle cannot explode).
const MAX_VISITS: usize = 10_000_000;

/// A storage as referenced by a persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The record name (`data/<key>` in zips, the legacy key otherwise).
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Elements of the whole record as declared.
    pub numel: u64,
    /// Legacy storage views: first element of the view within the record.
    pub base: u64,
    /// Legacy storage views: elements visible through the view (= `numel` otherwise).
    pub len: u64,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone)]
pub struct TensorRef {
    /// The storage.
    pub storage: Rc<StorageRef>,
    /// First element, relative to the storage (view).
    pub offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

impl TensorRef {
    /// Number of elements of the tensor, checked.
    pub fn numel(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
    }

    /// Elements of the storage the view spans from `offset` (0 for an empty tensor), checked.
    pub fn extent(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.stride)
            .try_fold(1u64, |acc, (&d, &s)| {
                (d as u64 - 1).checked_mul(s)?.checked_add(acc)
            })
    }

    /// Whether the view is the row-major layout of its shape.
    pub fn is_contiguous(&self) -> bool {
        let mut want = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != want {
                return false;
            }
            want = want.saturating_mul(d as u64);
        }
        true
    }

    /// Check the view against its storage, as `torch.load` (`Tensor.set_`) does.
    pub fn check(&self, key: &str) -> Result<(), TorchError> {
        let bad = |message: String| TorchError::Malformed {
            key: key.to_string(),
            message,
        };
        if self.shape.len() != self.stride.len() {
            return Err(bad(format!(
                "shape {:?} and stride {:?} differ in rank",
                self.shape, self.stride
            )));
        }
        let numel = self
            .numel()
            .ok_or_else(|| bad("element count overflows".into()))?;
        let bytes = numel.checked_mul(self.storage.dtype.size() as u64);
        if bytes.is_none_or(|b| b > isize::MAX as u64) {
            return Err(bad(format!("shape {:?} is too large", self.shape)));
        }
        let needed = self
            .extent()
            .and_then(|e| e.checked_add(if e == 0 { 0 } else { self.offset }))
            .ok_or_else(|| bad("view extent overflows".into()))?;
        if needed > self.storage.len {
            return Err(TorchError::OutOfBounds {
                key: key.to_string(),
                needed,
                available: self.storage.len,
            });
        }
        Ok(())
    }
}

/// Copy the strided view out of `src` (the storage from the view's `offset`, `extent`
/// elements of `es` bytes) into row-major bytes; `None` if `src` is too short for the view.
pub fn gather(src: &[u8], es: usize, shape: &[usize], stride: &[u64]) -> Option<Vec<u8>> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * es);
    if numel == 0 {
        return Some(out);
    }
    let mut idx = vec![0usize; shape.len()];
    let mut pos = 0u64;
    for _ in 0..numel {
        let at = pos as usize * es;
        out.extend_from_slice(src.get(at..at + es)?);
        // Odometer increment, last dimension fastest.
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            pos += stride[d];
            if idx[d] < shape[d] {
                break;
            }
            pos -= stride[d] * shape[d] as u64;
            idx[d] = 0;
        }
    }
    Some(out)
}

fn dtype_of(storage_type: &str) -> Option<DType> {
    Some(match storage_type {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool(BoolStore::Native),
        _ => return None,
    })
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn ints(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Tuple(t, _) | Value::List(t, _) => t.iter().map(int).collect(),
        _ => None,
    }
}

fn storage(pid: &Value, key: &str) -> Result<StorageRef, TorchError> {
    let bad = |message: &str| TorchError::Malformed {
        key: key.to_string(),
        message: message.to_string(),
    };
    let Value::Tuple(t, _) = pid else {
        return Err(bad("storage id is not a tuple"));
    };
    let (ty, rkey, numel) = match t.as_slice() {
        [Value::Str(tag), ty, rkey, _location, numel, rest @ ..]
            if &**tag == "storage" && rest.len() <= 1 =>
        {
            (ty, rkey, numel)
        }
        _ => {
            return Err(bad(
                "storage id is not ('storage', type, key, location, size)",
            ));
        }
    };
    let ty = match ty {
        Value::Global(m, n) if &**m == "torch" => n.to_string(),
        Value::Str(s) => s.to_string(),
        _ => return Err(bad("storage type is not a torch class")),
    };
    let dtype = dtype_of(&ty).ok_or_else(|| TorchError::Unsupported {
        key: key.to_string(),
        what: format!("storage type torch.{ty}"),
    })?;
    let Value::Str(rkey) = rkey else {
        return Err(bad("storage key is not a str"));
    };
    let numel = int(numel).ok_or_else(|| bad("storage size is not a non-negative int"))?;
    let mut s = StorageRef {
        key: rkey.to_string(),
        dtype,
        numel,
        base: 0,
        len: numel,
    };
    // Legacy (PyTorch < 0.4) storage views: (view_key, offset, size) into the root storage.
    if let Some(view) = t.get(5).filter(|v| !matches!(v, Value::None)) {
        let Value::Tuple(v, _) = view else {
            return Err(bad("storage view is not a tuple"));
        };
        let (Some(off), Some(len)) = (v.get(1).and_then(int), v.get(2).and_then(int)) else {
            return Err(bad("storage view is not (key, offset, size)"));
        };
        if off.checked_add(len).is_none_or(|end| end > numel) {
            return Err(TorchError::OutOfBounds {
                key: key.to_string(),
                needed: off.saturating_add(len),
                available: numel,
            });
        }
        s.base = off;
        s.len = len;
    }
    Ok(s)
}

fn global(v: &Value) -> Option<(&str, &str)> {
    match v {
        Value::Global(m, n) => Some((m, n)),
        _ => None,
    }
}

/// Callables whose result holds no weights and that `torch.load(weights_only=True)` accepts.
const INERT: &[(&str, &str)] = &[
    ("torch", "device"),
    ("torch", "Size"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),
];

/// Interpret `v` as a tensor if it is one; `Ok(None)` for inert values; an error for calls a
/// weights file never makes.
fn tensor(v: &Value, key: &str) -> Result<Option<TensorRef>, TorchError> {
    let Value::Call(call, _) = v else {
        return Ok(None);
    };
    let (callable, args) = (&call.0, &call.1);
    let (module, name) = global(callable).ok_or_else(|| TorchError::Malformed {
        key: key.to_string(),
        message: "a call of something that is not a global".to_string(),
    })?;
    let args: &[Value] = match args {
        Value::Tuple(a, _) => a,
        _ => &[],
    };
    let bad = |message: &str| TorchError::Malformed {
        key: key.to_string(),
        message: format!("{module}.{name}: {message}"),
    };
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let [Value::Persistent(pid, _), offset, size, stride, ..] = args else {
                return Err(bad("expected (storage, offset, size, stride, ...)"));
            };
            let t = TensorRef {
                storage: Rc::new(storage(pid, key)?),
                offset: int(offset).ok_or_else(|| bad("offset is not a non-negative int"))?,
                shape: ints(size)
                    .ok_or_else(|| bad("size is not a tuple of non-negative ints"))?
                    .into_iter()
                    .map(|d| usize::try_from(d).map_err(|_| bad("size too large")))
                    .collect::<Result<_, _>>()?,
                stride: ints(stride)
                    .ok_or_else(|| bad("stride is not a tuple of non-negative ints"))?,
            };
            t.check(key)?;
            Ok(Some(t))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            let data = args.first().ok_or_else(|| bad("no data argument"))?;
            tensor(data, key)?
                .map(Some)
                .ok_or_else(|| bad("data is not a tensor"))
        }
        ("torch._tensor", "_rebuild_from_type_v2") => {
            let [func, _ty, Value::Tuple(inner, d), ..] = args else {
                return Err(bad("expected (func, type, args, state)"));
            };
            let call = Value::Call(Rc::new((func.clone(), Value::Tuple(inner.clone(), *d))), 1);
            tensor(&call, key)
        }
        _ if INERT.contains(&(module, name)) => Ok(None),
        _ => Err(TorchError::Global {
            key: key.to_string(),
            global: format!("{module}.{name}"),
        }),
    }
}

/// Every tensor reachable through (nested) dicts, keyed by the dotted path of dict keys; other
/// containers are searched for forbidden calls only.
pub fn collect(root: &Value) -> Result<Vec<(String, TensorRef)>, TorchError> {
    let mut out = Vec::new();
    let mut visits = 0usize;
    walk(root, &mut String::new(), true, &mut out, &mut visits)?;
    Ok(out)
}

fn walk(
    v: &Value,
    path: &mut String,
    keyed: bool,
    out: &mut Vec<(String, TensorRef)>,
    visits: &mut usize,
) -> Result<(), TorchError> {
    *visits += 1;
    if *visits > MAX_VISITS {
        return Err(TorchError::Malformed {
            key: path.clone(),
            message: format!("more than {MAX_VISITS} objects"),
        });
    }
    match v {
        Value::Dict(d, _) => {
            for (k, child) in d.iter() {
                let len = path.len();
                let name = match k {
                    Key::Str(s) => Some(s.clone()),
                    Key::Int(i) => Some(i.to_string()),
                    Key::Other(_) => None,
                };
                let child_keyed = keyed && name.is_some();
                if let Some(name) = name {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&name);
                }
                walk(child, path, child_keyed, out, visits)?;
                path.truncate(len);
            }
        }
        Value::Tuple(items, _) | Value::List(items, _) => {
            for child in items.iter() {
                walk(child, path, false, out, visits)?;
            }
        }
        Value::Call(..) => {
            if let Some(t) = tensor(v, path)?
                && keyed
            {
                out.push((path.clone(), t));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u64, shape: &[usize], stride: &[u64], len: u64) -> TensorRef {
        TensorRef {
            storage: Rc::new(StorageRef {
                key: "0".into(),
                dtype: DType::F32,
                numel: len,
                base: 0,
                len,
            }),
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn views_outside_their_storage_are_refused() {
        assert!(view(0, &[3, 4], &[4, 1], 12).check("k").is_ok());
        assert!(view(1, &[3, 4], &[4, 1], 12).check("k").is_err());
        assert!(view(0, &[4, 3], &[1, 4], 12).check("k").is_ok());
        assert!(view(0, &[4, 3], &[1, 5], 12).check("k").is_err());
        assert!(view(100, &[0, 3], &[3, 1], 12).check("k").is_ok());
        assert!(view(0, &[usize::MAX, 2], &[1, 1], 12).check("k").is_err());
        assert!(view(0, &[2], &[u64::MAX], 12).check("k").is_err());
        assert!(view(0, &[2, 2], &[1], 12).check("k").is_err());
    }

    #[test]
    fn gather_follows_strides() {
        let src: Vec<u8> = (0u8..6).collect();
        // [2,3] stored transposed ([3,2] row-major): element (i,j) at j*2 + i.
        assert_eq!(
            gather(&src, 1, &[2, 3], &[1, 2]),
            Some(vec![0, 2, 4, 1, 3, 5])
        );
        // expand: stride 0
        let expanded = vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];
        assert_eq!(gather(&src, 2, &[3, 2], &[0, 1]), Some(expanded));
        assert_eq!(gather(&src, 2, &[4], &[1]), None);
        assert!(!view(0, &[2, 3], &[1, 2], 6).is_contiguous());
        assert!(view(0, &[1, 3], &[7, 1], 6).is_contiguous());
    }

    #[test]
    fn calls_outside_a_state_dict_vocabulary_are_refused() {
        // {'k': os.system('ls')}: never executed, refused by name.
        let mut p = b"}(X\x01\x00\x00\x00kcos\nsystem\nX\x02\x00\x00\x00ls\x85Ru.".to_vec();
        let root = super::super::pickle::read(&mut &p[..]).unwrap_or(Value::None);
        match collect(&root) {
            Err(TorchError::Global { key, global }) => {
                assert_eq!((key.as_str(), global.as_str()), ("k", "os.system"));
            }
            other => unreachable!("{other:?}"),
        }
        // The same call of torch.device is inert: no tensors, no error.
        p = b"}(X\x01\x00\x00\x00kctorch\ndevice\nX\x03\x00\x00\x00cpu\x85Ru.".to_vec();
        let root = super::super::pickle::read(&mut &p[..]).unwrap_or(Value::None);
        assert!(matches!(collect(&root).as_deref(), Ok([])));
    }
}
