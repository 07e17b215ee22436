//! Element-wise f32 work on rayon, in place when the buffer is unique.

use burn::tensor::TensorData;
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling costs nothing next to the arithmetic.
const CHUNK: usize = 1 << 14;

/// The tensor's values in a buffer this call owns: the tensor itself when it is unique,
/// contiguous and starts at its storage's first element, else a contiguous copy.
fn owned(x: FlexTensor) -> FlexTensor {
    let layout = x.layout();
    if x.is_unique() && layout.is_contiguous() && layout.start_offset() == 0 {
        x
    } else {
        x.to_contiguous()
    }
}

/// `0.5 · x · (1 + erf(x / √2))`, PyTorch's exact GELU ([`super::gelu`]), in chunks on rayon.
pub(crate) fn gelu(x: FlexTensor) -> FlexTensor {
    let mut x = owned(x);
    let n = x.layout().num_elements();
    x.storage_mut::<f32>()[..n]
        .par_chunks_mut(CHUNK)
        .for_each(super::gelu::apply);
    x
}

/// `row += bias` for every row of a row-major buffer whose rows are `bias.len()` long, rows
/// on rayon.
pub(crate) fn add_bias_rows(values: &mut [f32], bias: &[f32]) {
    let out = bias.len();
    if out == 0 {
        return;
    }
    let rows_per_task = (CHUNK / out).max(1);
    values.par_chunks_mut(rows_per_task * out).for_each(|rows| {
        for row in rows.chunks_exact_mut(out) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    });
}

/// A new contiguous f32 tensor of `shape` holding `values`.
pub(crate) fn from_vec(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
