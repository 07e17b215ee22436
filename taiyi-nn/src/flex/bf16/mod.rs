//! The bf16 matmul of prepacked [`crate::Dense`] layers: f32 rows × a [`PackedBf16`] weight,
//! inputs rounded to bf16, products accumulated in f32, f32 out.
//!
//! The kernel is the process's [`CpuKernel`]: `vdpbf16ps` micro-kernels (`avx512.rs`, the only
//! `unsafe` here, behind the checks of [`avx512::gemm`]), or the f32 fallback (the weight
//! widened to f32, the rows rounded to bf16 and back, the f32 gemm of `flex/gemm.rs`), which
//! computes the same exact products on any CPU.

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
pub(crate) mod tests;

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::elementwise::{add_bias_rows, from_vec};
use super::gemm::{Mat, matmul_rows_into};
use crate::bf16::{CpuKernel, PackedBf16};

/// `x · w (+ bias)` with the process's kernel, then exact GELU when `gelu`; `None` when the
/// shapes disagree.
///
/// # Shapes
/// `x`: `[rows, k]` f32 (any strides), `w`: `[k, n]`, `bias`: `[n]` f32 → `[rows, n]` f32.
pub(crate) fn linear(
    x: &FlexTensor,
    w: &PackedBf16,
    bias: Option<&FlexTensor>,
    gelu: bool,
) -> Option<FlexTensor> {
    let contiguous;
    let a = match Mat::of(x) {
        Some(a) => a,
        None => {
            contiguous = x.to_contiguous();
            Mat::of(&contiguous)?
        }
    };
    let bias = bias.map(FlexTensor::to_contiguous);
    let bias = match &bias {
        Some(b) => Some(b.storage::<f32>().get(..w.n())?),
        None => None,
    };
    // A forced kernel this CPU lacks was refused when the weight was packed.
    let kernel = CpuKernel::selected().unwrap_or(CpuKernel::F32);
    let mut y = vec![0.0f32; a.rows.checked_mul(w.n())?];
    matmul(kernel, a, w, bias, gelu, &mut y)?;
    Some(from_vec(y, vec![a.rows, w.n()]))
}

/// `out = a · w (+ bias)` by `kernel`, then exact GELU when `gelu` (the same values as GELU
/// applied afterwards); `out` row-major `[a.rows, w.n()]` (overwritten). `None` (nothing
/// written) when the shapes disagree, `a` does not fit its slice, or the CPU lacks the
/// kernel's instructions.
pub(crate) fn matmul(
    kernel: CpuKernel,
    a: Mat<'_>,
    w: &PackedBf16,
    bias: Option<&[f32]>,
    gelu: bool,
    out: &mut [f32],
) -> Option<()> {
    let (m, k, n) = (a.rows, a.cols, w.n());
    if k != w.k() || out.len() != m.checked_mul(n)? || bias.is_some_and(|b| b.len() != n) {
        return None;
    }
    match kernel {
        CpuKernel::F32 => {
            let rounded = rows_rounded(a)?;
            let wide = w.to_f32();
            let a = Mat {
                data: &rounded,
                offset: 0,
                rows: m,
                cols: k,
                row_stride: k,
                col_stride: 1,
            };
            let b = Mat {
                data: &wide,
                offset: 0,
                rows: k,
                cols: n,
                row_stride: n,
                col_stride: 1,
            };
            matmul_rows_into(out, a, b)?;
            if let Some(bias) = bias {
                add_bias_rows(out, bias);
            }
            if gelu {
                out.par_chunks_mut(1 << 14).for_each(super::gelu::apply);
            }
            Some(())
        }
        #[cfg(target_arch = "x86_64")]
        CpuKernel::Avx512Bf16 => {
            let bits = rows_bf16(a, 2 * w.pairs())?;
            avx512::gemm(&bits, m, w, bias, gelu, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuKernel::Avx512Bf16 => None,
    }
}

/// Rows per rayon task of the row conversions.
const ROWS_PER_TASK: usize = 16;

/// `a` as bf16 bits, row-major with rows `stride` ≥ `a.cols` long (the tail zero). `None`
/// when `a` does not fit its slice.
fn rows_bf16(a: Mat<'_>, stride: usize) -> Option<Vec<u16>> {
    a.fits().then_some(())?;
    let mut bits = vec![0u16; a.rows.checked_mul(stride)?];
    if stride == 0 {
        return Some(bits);
    }
    bits.par_chunks_mut(stride * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            for (i, row) in rows.chunks_exact_mut(stride).enumerate() {
                let r = task * ROWS_PER_TASK + i;
                let start = a.offset + r * a.row_stride;
                if a.col_stride == 1 {
                    pulp::Arch::new().dispatch(ToBits {
                        src: &a.data[start..start + a.cols],
                        dst: &mut row[..a.cols],
                    });
                } else {
                    for (c, b) in row[..a.cols].iter_mut().enumerate() {
                        *b = crate::bf16::bf16_bits(a.data[start + c * a.col_stride]);
                    }
                }
            }
        });
    Some(bits)
}

/// `a` rounded to bf16 and back to f32, row-major `[rows, cols]` (the f32 kernel's input).
fn rows_rounded(a: Mat<'_>) -> Option<Vec<f32>> {
    let bits = rows_bf16(a, a.cols)?;
    Some(
        bits.par_iter()
            .map(|&b| crate::bf16::bf16_value(b))
            .collect(),
    )
}

/// [`to_bf16_bits`] as a pulp operation: compiled for the running CPU's widest vectors (the
/// workspace is built for baseline x86-64, whose SSE2 loop was ~10% of a bf16 ViT forward).
struct ToBits<'a> {
    src: &'a [f32],
    dst: &'a mut [u16],
}

impl pulp::WithSimd for ToBits<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        to_bf16_bits(self.src, self.dst);
    }
}

/// `dst[i] = bf16 bits of src[i]` (round to nearest even, NaN quietened), branch-free so the
/// loop vectorises; the same bits as [`crate::bf16::bf16_bits`].
#[inline(always)]
fn to_bf16_bits(src: &[f32], dst: &mut [u16]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        let b = x.to_bits();
        let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
        let nan = ((b >> 16) as u16) | 0x0040;
        *d = if (b & 0x7fff_ffff) > 0x7f80_0000 {
            nan
        } else {
            rounded
        };
    }
}
