//! The float adapter of strict loading: casts float tensors to the model's dtype while they are
//! read and refuses non-finite values (NaN, ±inf, or finite values the cast overflows).

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use burn::tensor::{DType, TensorData};
use burn_store::{ModuleAdapter, TensorSnapshot, TensorSnapshotError};
use half::{bf16, f16};
use rayon::prelude::*;

/// A non-finite value found while reading a tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NonFinite {
    /// The tensor's path (burn layout).
    pub key: String,
    /// Flat index of the first offending element (row-major, as stored).
    pub index: usize,
    /// The value as stored (finite if the cast overflowed).
    pub value: f64,
    /// The dtype it overflowed in, when the stored value was finite.
    pub overflow: Option<DType>,
}

/// First non-finite element of float `data`, with its value widened to f64.
pub(crate) fn first_non_finite(data: &TensorData) -> Option<(usize, f64)> {
    fn scan<T: Copy>(v: &[T], f: impl Fn(T) -> f64) -> Option<(usize, f64)> {
        v.iter()
            .map(|&x| f(x))
            .enumerate()
            .find(|(_, x)| !x.is_finite())
    }
    match data.dtype {
        // The common case, in f32 itself (a loop the compiler vectorises), chunks on rayon: a
        // load scans every weight once.
        DType::F32 | DType::Flex32 => {
            let v = data.as_slice::<f32>().ok()?;
            let i = first_where(v, |x| !x.is_finite())?;
            Some((i, f64::from(v[i])))
        }
        DType::F64 => scan(data.as_slice::<f64>().ok()?, |x| x),
        DType::F16 => scan(data.as_slice::<f16>().ok()?, f64::from),
        // Loaded for the CPU's bf16 kernels: every linear weight, so in chunks on rayon and on
        // the exponent bits (all ones: ±∞ or NaN), a loop the compiler vectorises.
        DType::BF16 => {
            let v = data.as_slice::<bf16>().ok()?;
            let i = first_where(v, |x| x.to_bits() & 0x7f80 == 0x7f80)?;
            Some((i, f64::from(v[i])))
        }
        _ => None,
    }
}

/// The first f32 value (finite) that rounds to ±∞ in bf16: |x| ≥ 0x7F7F8000 as bits (half
/// way between bf16's largest finite value and 2¹²⁸; ties go to the even, infinite, side).
fn first_beyond_bf16(data: &TensorData) -> Option<(usize, f64)> {
    let v = data.as_slice::<f32>().ok()?;
    let i = first_where(v, |x| x.to_bits() & 0x7fff_ffff >= 0x7f7f_8000)?;
    Some((i, f64::from(v[i])))
}

/// The index of the first element for which `bad` holds: chunks on rayon, each scanned without
/// an early exit (a loop the compiler vectorises), then the first chunk that has one searched.
/// A load scans every weight this way.
fn first_where<T: Sync>(v: &[T], bad: impl Fn(&T) -> bool + Sync) -> Option<usize> {
    const CHUNK: usize = 1 << 16;
    let chunk = v
        .par_chunks(CHUNK)
        .position_first(|c| c.iter().fold(false, |any, x| any | bad(x)))?;
    Some(chunk * CHUNK + v[chunk * CHUNK..].iter().position(&bad)?)
}

/// An f32 tensor rounded to bf16 (to nearest even, as `half` and PyTorch round), in chunks on
/// rayon: burn's `convert_dtype` converts one element at a time on the calling thread, and the
/// CPU's bf16 path casts every linear weight of both towers while loading.
fn to_bf16(data: &TensorData) -> TensorData {
    let Ok(v) = data.as_slice::<f32>() else {
        return data.clone().convert_dtype(DType::BF16);
    };
    let mut out = vec![bf16::ZERO; v.len()];
    out.par_chunks_mut(1 << 16)
        .zip(v.par_chunks(1 << 16))
        .for_each(|(dst, src)| {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = bf16::from_f32(*s);
            }
        });
    TensorData::new(out, data.shape.clone())
}

/// Casts floating-point tensors to one dtype (the weights of linear layers to another, when
/// asked) while they are read, and checks them.
#[derive(Debug, Clone)]
pub(crate) struct CastFloat {
    /// Target dtype.
    pub target: DType,
    /// Target dtype of `Linear` / `Dense` weights.
    pub linear: DType,
    /// The first non-finite tensor met (the reader's error only carries a string).
    pub found: Arc<Mutex<Option<NonFinite>>>,
}

impl CastFloat {
    pub(crate) fn new(target: DType, linear: DType) -> Self {
        Self {
            target,
            linear,
            found: Arc::default(),
        }
    }

    /// The first non-finite tensor seen, if any.
    pub(crate) fn take_found(&self) -> Option<NonFinite> {
        self.found.lock().ok().and_then(|mut g| g.take())
    }
}

impl ModuleAdapter for CastFloat {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let linear = crate::layout::is_linear_weight(snapshot);
        let target = if linear { self.linear } else { self.target };
        if !snapshot.dtype.is_float() {
            return snapshot.clone();
        }
        // f32 linear weights for bf16: left f32 here, rounded in the transpose that follows.
        let fused = linear && target == DType::BF16 && snapshot.dtype == DType::F32;
        let read = snapshot.clone_data_fn();
        let found = Arc::clone(&self.found);
        let key = snapshot.full_path();
        let cast = move || -> Result<TensorData, TensorSnapshotError> {
            let data = read()?;
            let report = |index: usize, value: f64, overflow: Option<DType>| {
                if let Ok(mut g) = found.lock()
                    && g.is_none()
                {
                    *g = Some(NonFinite {
                        key: key.clone(),
                        index,
                        value,
                        overflow,
                    });
                }
                TensorSnapshotError::DataError(format!("non-finite value at index {index}"))
            };
            if let Some((i, v)) = first_non_finite(&data) {
                return Err(report(i, v, None));
            }
            if fused {
                // Rounded to bf16 by the transpose (`TorchLayout`): only the overflow to check.
                if let Some((i, v)) = first_beyond_bf16(&data) {
                    return Err(report(i, v, Some(DType::BF16)));
                }
                return Ok(data);
            }
            if data.dtype == target {
                return Ok(data);
            }
            // Only a narrowing cast (to f16/bf16) can overflow: keep the source for the report.
            let narrowing = target.size() < data.dtype.size() || target == DType::F16;
            let source = narrowing.then(|| data.clone());
            let cast = match (data.dtype, target) {
                (DType::F32, DType::BF16) => to_bf16(&data),
                _ => data.convert_dtype(target),
            };
            if let Some((i, _)) = first_non_finite(&cast) {
                let stored = source
                    .map(|d| d.convert_dtype(DType::F64))
                    .and_then(|d| d.as_slice::<f64>().ok().and_then(|v| v.get(i).copied()))
                    .unwrap_or(f64::NAN);
                return Err(report(i, stored, Some(target)));
            }
            Ok(cast)
        };
        TensorSnapshot::from_closure(
            Rc::new(cast),
            if fused { DType::F32 } else { target },
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}
