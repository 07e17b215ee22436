//! A `Linear` layer on f32 rows: one gemm into a buffer this call owns, bias added on rayon.

use burn_flex::FlexTensor;

use super::elementwise::{add_bias_rows, from_vec};
use super::gemm::{Mat, matmul_rows_into};

/// `x · weight (+ bias)`; `None` when a layout cannot be read as strided rows.
///
/// # Shapes
/// `x`: `[rows, in]`, `weight`: `[in, out]` (burn's layout), `bias`: `[out]` → `[rows, out]`.
pub(crate) fn linear(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> Option<FlexTensor> {
    let (x, w) = (Mat::of(x)?, Mat::of(weight)?);
    let (rows, out) = (x.rows, w.cols);
    // Zero-filled by the allocator: its pages are first touched by the gemm threads.
    let mut y = vec![0.0f32; rows.checked_mul(out)?];
    matmul_rows_into(&mut y, x, w)?;
    if let Some(bias) = bias {
        let bias = bias.to_contiguous();
        add_bias_rows(&mut y, bias.storage::<f32>().get(..out)?);
    }
    Some(from_vec(y, vec![rows, out]))
}
