//! Parallel f32 kernels for the `Flex` CPU backend (feature `flex`).
//!
//! burn-flex runs element-wise work (GELU, bias adds, copies to contiguous) and its fused
//! attention on the calling thread while rayon's gemm threads wait; on the 2-core box that was
//! ~40% of a forward's wall time (ARCHITECTURE.md "CPU: where the time goes"). These kernels do
//! the same arithmetic on rayon, in place where the buffer is unique, and read the heads of
//! attention straight out of the projection rows (no split/merge copies). The generic code in
//! the parent modules calls them only when the backend *is* `Flex` and the data is f32: the
//! tensors are moved over by identity functions that `Any` proves to be identities (no `unsafe`,
//! no data conversion); anything else takes the generic burn path. The one `unsafe` call, the
//! gemm itself, sits behind the bounds checks of `gemm.rs`.

mod attention;
pub(crate) mod bf16;
mod elementwise;
mod gelu;
mod gemm;
mod linear;

use std::any::Any;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};

use crate::bf16::{CpuKernel, KernelError, PackedBf16};

/// [`crate::attend`] on Flex f32 token rows; `None` (inputs untouched) for any other backend,
/// dtype or layout.
pub(crate) fn attend_rows<B: Backend>(
    q: &Tensor<B, 3>,
    k: &Tensor<B, 3>,
    v: &Tensor<B, 3>,
    heads: usize,
    bias: Option<&Tensor<B, 4>>,
) -> Option<Tensor<B, 3>> {
    let rows = AsFlex::<B, 3>::new()?;
    if ![q, k, v].into_iter().all(is_f32) || bias.is_some_and(|b| !is_f32(b)) {
        return None;
    }
    let bias = match bias {
        Some(b) => Some(AsFlex::<B, 4>::new()?.to_flex(b.clone())),
        None => None,
    };
    let [q, k, v] = [q, k, v].map(|x| rows.to_flex(x.clone()));
    attention::attend(&q, &k, &v, heads, bias).map(|out| rows.to_tensor(out))
}

/// [`crate::attend_packed`] on Flex f32 token rows; `None` (inputs untouched) for any other
/// backend, dtype or layout.
pub(crate) fn attend_packed_rows<B: Backend>(
    q: &Tensor<B, 3>,
    k: &Tensor<B, 3>,
    v: &Tensor<B, 3>,
    heads: usize,
    offsets: &[usize],
) -> Option<Tensor<B, 3>> {
    let rows = AsFlex::<B, 3>::new()?;
    if ![q, k, v].into_iter().all(is_f32) {
        return None;
    }
    let [q, k, v] = [q, k, v].map(|x| rows.to_flex(x.clone()));
    attention::attend_packed(&q, &k, &v, heads, offsets).map(|out| rows.to_tensor(out))
}

/// Whether `B` has taiyi-nn's own packed attention kernel (burn's `Flex`); elsewhere
/// [`crate::attend_packed`] runs one generic attention per sequence.
pub(crate) fn is_flex<B: Backend>() -> bool {
    AsFlex::<B, 3>::new().is_some()
}

/// Exact GELU on Flex f32 data, `Err(x)` untouched otherwise.
pub(crate) fn gelu<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    match AsFlex::<B, D>::new() {
        Some(flex) if is_f32(&x) => Ok(flex.to_tensor(elementwise::gelu(flex.to_flex(x)))),
        _ => Err(x),
    }
}

/// A [`crate::Dense`] layer on `[rows, in]` Flex data, then exact GELU when `gelu`: the bf16
/// kernel when `packed` (f32 rows, cast first when they are not; GELU applied as each output
/// tile is stored), else one f32 gemm with the bias added on rayon; `Err(x)` untouched for any
/// other backend, or for an f32 layer given other dtypes.
pub(crate) fn dense<B: Backend>(
    packed: Option<&PackedBf16>,
    weight: &Param<Tensor<B, 2>>,
    bias: &Option<Param<Tensor<B, 1>>>,
    x: Tensor<B, 2>,
    gelu: bool,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let (Some(mat), Some(vec)) = (AsFlex::<B, 2>::new(), AsFlex::<B, 1>::new()) else {
        return Err(x);
    };
    let bias = bias.as_ref().map(|b| b.val());
    let y = match packed {
        Some(packed) => {
            let bias = bias.map(|b| vec.to_flex(b.cast(DType::F32)));
            let rows = mat.to_flex(x.clone().cast(DType::F32));
            bf16::linear(&rows, packed, bias.as_ref(), gelu)
        }
        None => {
            let weight = weight.val();
            if !is_f32(&x) || !is_f32(&weight) || bias.as_ref().is_some_and(|b| !is_f32(b)) {
                return Err(x);
            }
            let bias = bias.map(|b| vec.to_flex(b));
            linear::linear(&mat.to_flex(x.clone()), &mat.to_flex(weight), bias.as_ref())
                .map(|y| if gelu { elementwise::gelu(y) } else { y })
        }
    };
    y.map(|y| mat.to_tensor(y)).ok_or(x)
}

/// `weight` (`[in, out]`, f32 or bf16, on Flex) in the bf16 kernels' layout, after checking that
/// the process's kernel ([`CpuKernel::selected`]) can run.
pub(crate) fn pack_weight<B: Backend>(weight: &Tensor<B, 2>) -> Result<PackedBf16, KernelError> {
    let mat = AsFlex::<B, 2>::new().ok_or(KernelError::NotFlex)?;
    CpuKernel::selected()?;
    let [k, n] = weight.dims();
    let w = mat.to_flex(weight.clone()).to_contiguous();
    let packed = match w.dtype() {
        DType::F32 => PackedBf16::from_f32(w.storage::<f32>().get(..k * n).unwrap_or(&[]), k, n),
        DType::BF16 => {
            PackedBf16::from_bf16(w.storage::<half::bf16>().get(..k * n).unwrap_or(&[]), k, n)
        }
        other => {
            return Err(KernelError::BadWeight {
                what: format!("dtype {other:?} (f32 or bf16 expected)"),
            });
        }
    };
    packed.ok_or_else(|| KernelError::BadWeight {
        what: format!("storage shorter than its shape [{k}, {n}]"),
    })
}

/// `value` as a `U` when `T` and `U` are the same type.
fn cast<T: 'static, U: 'static>(value: T) -> Option<U> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// The identity moves between `Tensor<B, D>` and `Flex`'s storage, present when `B` is `Flex`.
pub(crate) struct AsFlex<B: Backend, const D: usize> {
    into: fn(Tensor<B, D>) -> Tensor<Flex, D>,
    back: fn(Tensor<Flex, D>) -> Tensor<B, D>,
}

impl<B: Backend, const D: usize> AsFlex<B, D> {
    /// `Some` when `B` is `Flex`.
    pub(crate) fn new() -> Option<Self> {
        fn same<T>(t: T) -> T {
            t
        }
        Some(Self {
            into: cast(same::<Tensor<Flex, D>> as fn(Tensor<Flex, D>) -> Tensor<Flex, D>)?,
            back: cast(same::<Tensor<Flex, D>> as fn(Tensor<Flex, D>) -> Tensor<Flex, D>)?,
        })
    }

    /// The tensor's Flex storage (no copy).
    pub(crate) fn to_flex(&self, x: Tensor<B, D>) -> FlexTensor {
        (self.into)(x).into_primitive().tensor()
    }

    /// A Flex tensor of rank `D` back as `Tensor<B, D>` (no copy).
    pub(crate) fn to_tensor(&self, x: FlexTensor) -> Tensor<B, D> {
        (self.back)(Tensor::from_primitive(TensorPrimitive::Float(x)))
    }
}

/// Whether a tensor can take the f32 kernels: f32 and not quantized.
pub(crate) fn is_f32<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    x.dtype() == DType::F32
}

#[cfg(test)]
mod tests;
