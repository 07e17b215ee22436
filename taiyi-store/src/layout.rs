//! The PyTorch → burn layout adapter of strict loading: `Linear` weights transposed
//! (`[out, in]` → `[in, out]`), norm `weight`/`bias` read as `gamma`/`beta`.
//!
//! burn-store's `PyTorchToBurnAdapter` does the same, but transposes byte by byte with a copy
//! call per element and a column-strided write: on the 632M-parameter ViT-H-14 that was 8 s of
//! a load, more than reading the file. Here the transpose goes tile by tile on typed elements.
//! The norm renames stay burn-store's.

use std::rc::Rc;

use burn::tensor::{DType, Element, Shape, TensorData};
use burn_store::{ModuleAdapter, PyTorchToBurnAdapter, TensorSnapshot, TensorSnapshotError};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::buffer::ElemBuf;

/// The container types burn's `Module` derive gives `burn::nn::Linear` and `taiyi_nn::Dense`
/// (the same parameters and layout).
const LINEAR: [&str; 2] = ["Struct:Linear", "Struct:Dense"];

/// Whether `snapshot` is the 2-D `weight` of a `Linear` / `Dense` layer.
pub(crate) fn is_linear_weight(snapshot: &TensorSnapshot) -> bool {
    snapshot
        .module_type()
        .is_some_and(|t| LINEAR.contains(&t.as_str()))
        && snapshot
            .path_stack
            .as_ref()
            .and_then(|p| p.last())
            .is_some_and(|n| n == "weight")
        && snapshot.shape.len() == 2
}

/// Side of the square tiles of the transpose (elements): a 64 × 64 tile of f32 is 16 KiB, so
/// the tile, its source rows and its destination rows stay in L1/L2.
const TILE: usize = 64;

/// PyTorch → burn layout, with a fast `Linear` transpose.
#[derive(Debug, Clone, Default)]
pub(crate) struct TorchLayout {
    /// Round f32 `Linear` / `Dense` weights to bf16 in the transpose (one pass, one buffer);
    /// `CastFloat` has checked them and left them f32 (`CastFloat::fused_bf16`).
    pub bf16_linear: bool,
}

impl ModuleAdapter for TorchLayout {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !is_linear_weight(snapshot) {
            return PyTorchToBurnAdapter.adapt(snapshot);
        }
        let read = snapshot.clone_data_fn();
        let to_bf16 = self.bf16_linear && snapshot.dtype == DType::F32;
        let transposed = move || -> Result<TensorData, TensorSnapshotError> {
            let data = read()?;
            let out = if to_bf16 {
                transpose_to_bf16(&data)
            } else {
                transpose(data)
            };
            out.map_err(|e| TensorSnapshotError::DataError(format!("{e:?}")))
        };
        TensorSnapshot::from_closure(
            Rc::new(transposed),
            if to_bf16 { DType::BF16 } else { snapshot.dtype },
            Shape::from(vec![snapshot.shape[1], snapshot.shape[0]]),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// The transpose of a 2-D tensor, any dtype.
fn transpose(data: TensorData) -> Result<TensorData, burn::tensor::DataError> {
    let [rows, cols] = match data.shape.as_slice() {
        &[r, c] => [r, c],
        _ => return Ok(data),
    };
    Ok(match data.dtype {
        DType::F32 | DType::Flex32 => typed::<f32>(&data, rows, cols)?,
        DType::F64 => typed::<f64>(&data, rows, cols)?,
        DType::F16 => typed::<f16>(&data, rows, cols)?,
        DType::BF16 => typed::<bf16>(&data, rows, cols)?,
        DType::I64 => typed::<i64>(&data, rows, cols)?,
        DType::I32 => typed::<i32>(&data, rows, cols)?,
        _ => {
            let es = data.dtype.size();
            let bytes = data.as_bytes();
            let mut buf = ElemBuf::zeroed(bytes.len(), es);
            let out = buf.bytes_mut();
            for (i, row) in bytes.chunks_exact(cols * es).enumerate() {
                for (j, e) in row.chunks_exact(es).enumerate() {
                    out[(j * rows + i) * es..][..es].copy_from_slice(e);
                }
            }
            buf.into_data([cols, rows], data.dtype)
        }
    })
}

fn typed<T: Element + Copy + Default + Send + Sync>(
    data: &TensorData,
    rows: usize,
    cols: usize,
) -> Result<TensorData, burn::tensor::DataError> {
    let src = data.as_slice::<T>()?;
    // Zero bits for f32/f64/ints: `calloc`'d, so pages are first touched by the transpose.
    let mut dst = vec![T::default(); src.len()];
    transpose_into(src, &mut dst, rows, cols, |x| x);
    Ok(TensorData::new(dst, [cols, rows]))
}

/// The transpose of a 2-D f32 tensor, each value rounded to bf16 (to nearest even) as it is
/// written: the cast and the transpose in one pass into one half-size buffer.
fn transpose_to_bf16(data: &TensorData) -> Result<TensorData, burn::tensor::DataError> {
    let [rows, cols] = match data.shape.as_slice() {
        &[r, c] => [r, c],
        _ => return Ok(data.clone().convert_dtype(DType::BF16)),
    };
    let src = data.as_slice::<f32>()?;
    let mut dst = vec![bf16::ZERO; src.len()];
    transpose_into(src, &mut dst, rows, cols, bf16::from_f32);
    Ok(TensorData::new(dst, [cols, rows]))
}

/// `dst[j * rows + i] = src[i * cols + j]`, bands of `TILE` destination rows on rayon (a load
/// has nothing else to do with the other cores meanwhile). Each `TILE × TILE` block is copied
/// row by row into a stack tile and written out row by row from it: both sides move whole
/// rows (vectorised copies) and the strided reads stay inside the tile. Element by element
/// straight from `src` to `dst` ran at ~0.9 GB/s on the `[5120, 1280]` MLP weights of
/// ViT-H-14; this runs at 7–18 GB/s on the same core.
fn transpose_into<T: Copy + Default + Send + Sync, U: Copy + Send>(
    src: &[T],
    dst: &mut [U],
    rows: usize,
    cols: usize,
    convert: impl Fn(T) -> U + Sync,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    dst.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(band, out)| {
            let j0 = band * TILE;
            let w = (cols - j0).min(TILE);
            let mut tile = [[T::default(); TILE]; TILE];
            for i0 in (0..rows).step_by(TILE) {
                let h = (rows - i0).min(TILE);
                for (ii, t) in tile.iter_mut().enumerate().take(h) {
                    t[..w].copy_from_slice(&src[(i0 + ii) * cols + j0..][..w]);
                }
                for jj in 0..w {
                    let o = &mut out[jj * rows + i0..][..h];
                    for (ii, v) in o.iter_mut().enumerate() {
                        *v = convert(tile[ii][jj]);
                    }
                }
            }
        });
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn transposes_every_dtype_and_ragged_tiles() {
        // Neither side a multiple of the tile; one band and one block short of it, then
        // several of each with ragged ends.
        for (r, c) in [(37, 70), (200, 131)] {
            let v: Vec<f32> = (0..r * c).map(|x| x as f32).collect();
            let t = transpose(TensorData::new(v.clone(), [r, c])).expect("f32");
            assert_eq!(t.shape.as_slice(), &[c, r]);
            let out = t.as_slice::<f32>().expect("f32 out");
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(out[j * r + i], v[i * c + j]);
                }
            }
        }
        let (r, c) = (37, 70);
        let v: Vec<f32> = (0..r * c).map(|x| x as f32).collect();
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        let th = transpose(TensorData::new(h.clone(), [r, c])).expect("f16");
        let oh = th.as_slice::<f16>().expect("f16 out");
        for i in 0..r {
            for j in 0..c {
                assert_eq!(oh[j * r + i], h[i * c + j]);
            }
        }
        // The byte path (u8) agrees too.
        let b: Vec<u8> = (0..r * c).map(|x| (x % 251) as u8).collect();
        let tb = transpose(TensorData::new(b.clone(), [r, c])).expect("u8");
        let ob = tb.as_slice::<u8>().expect("u8 out");
        assert_eq!(ob[5 * r + 3], b[3 * c + 5]);
        assert_eq!(tb.shape.as_slice(), &[c, r]);
    }

    #[test]
    fn transpose_to_bf16_is_transpose_then_rounding() {
        let (r, c) = (70, 131);
        let v: Vec<f32> = (0..r * c).map(|x| (x as f32).sqrt() * 1.001).collect();
        let got = transpose_to_bf16(&TensorData::new(v.clone(), [r, c])).expect("f32");
        assert_eq!(got.dtype, DType::BF16);
        assert_eq!(got.shape.as_slice(), &[c, r]);
        let out = got.as_slice::<bf16>().expect("bf16 out");
        for i in 0..r {
            for j in 0..c {
                assert_eq!(out[j * r + i], bf16::from_f32(v[i * c + j]));
            }
        }
    }
}
