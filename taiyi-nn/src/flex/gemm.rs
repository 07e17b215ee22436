//! The workspace's one `unsafe` call: `gemm::gemm` (the kernels burn-flex itself uses) behind a
//! bounds-checked slice API.
//!
//! Why not burn-flex's `matmul`: it allocates its output with `FlexTensor::empty`, which builds
//! a `Vec<u8>` and then copies it into a 16-byte-aligned buffer — a memcpy plus page faults of
//! a second fresh buffer on the calling thread for every product; that was 80% of what the
//! text tower still spent outside the gemm threads (ARCHITECTURE.md "CPU: where the time goes").
//! Here the caller owns the output.

use burn_flex::FlexTensor;
use gemm::Parallelism;

/// Products of at least this many multiply-adds run on rayon (burn-flex's threshold, 192³).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// A read-only f32 matrix inside a slice: element `(r, c)` at
/// `data[offset + r · row_stride + c · col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A rank-2 f32 tensor as a matrix (any non-negative strides).
    pub(crate) fn of(x: &'a FlexTensor) -> Option<Self> {
        let layout = x.layout();
        match (layout.shape().as_slice(), layout.strides()) {
            (&[rows, cols], &[rs, cs]) => Some(Self {
                data: x.storage::<f32>(),
                offset: layout.start_offset(),
                rows,
                cols,
                row_stride: usize::try_from(rs).ok()?,
                col_stride: usize::try_from(cs).ok()?,
            }),
            _ => None,
        }
    }

    /// Whether every element lies inside `data` and the strides fit `isize`.
    pub(crate) fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .zip((self.cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c))
            .and_then(|rc| rc.checked_add(self.offset));
        let strides_fit =
            isize::try_from(self.row_stride).is_ok() && isize::try_from(self.col_stride).is_ok();
        strides_fit && matches!(last, Some(last) if last < self.data.len())
    }
}

/// `dst = lhs · rhs`, `dst` the row-major `[lhs.rows, rhs.cols]` buffer (overwritten, not read).
/// Large products run on rayon. `None` (nothing written) when the shapes disagree or a matrix
/// does not fit its slice.
pub(crate) fn matmul_into(dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>) -> Option<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.len() != m.checked_mul(n)? || !lhs.fits() || !rhs.fits() {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(());
    }
    if k == 0 {
        dst.fill(0.0);
        return Some(());
    }
    let dst_rs = isize::try_from(n).ok()?;
    let stride = |s: usize| s as isize; // checked by `fits`
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    let lhs_start = &lhs.data[lhs.offset..];
    let rhs_start = &rhs.data[rhs.offset..];
    // SAFETY: `gemm` reads lhs element (r, c) at `lhs_start + r·row_stride + c·col_stride` for
    // r < m, c < k, and rhs likewise for r < k, c < n: `fits` proved the largest such index is
    // inside each slice (rows, cols > 0 here). It writes dst (r, c) at `r·n + c` for r < m,
    // c < n: inside `dst`, whose length is m·n. `dst` is a unique borrow, so it overlaps
    // neither input, and `read_dst = false` means its old values are never read (alpha unused).
    // T = f32 is one of gemm's supported types.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs,
            false,
            lhs_start.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs_start.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
    Some(())
}

/// The fewest rows [`matmul_rows_into`] hands the `gemm` crate for `n` output columns.
///
/// `gemm` 0.19 (`gemm-common/src/gemm.rs`) takes other summation paths for small products:
/// `m ≤ 1` a gemv, `m · n ≤ 256` dot products reduced across vector lanes, `m, n ≤ 64` a
/// k-block of `min(k, 512)` instead of the cache-derived one. From this many rows on it always
/// runs its blocked micro-kernels, where the k-blocks depend on `k` (and the cache sizes) only
/// and every output element is one chain of fused multiply-adds in k order: a row's result
/// does not depend on the other rows.
fn min_rows(n: usize) -> usize {
    if n <= 64 { 65 } else { (256 / n + 1).max(2) }
}

/// [`matmul_into`] whose rows are computed the same whatever the number of rows: products of
/// fewer than [`min_rows`] rows are run on a zero-padded copy of `lhs`, so that `gemm` takes
/// the same path for one token as for a thousand. What makes the text tower's packed batches
/// batch-invariant bit for bit (the linear layers see every token of a batch as rows of one
/// matrix). The padding costs nothing measurable: it only applies to products of a handful of
/// rows.
pub(crate) fn matmul_rows_into(dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>) -> Option<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let min = min_rows(n);
    if m == 0 || m >= min || k == 0 {
        return matmul_into(dst, lhs, rhs);
    }
    if rhs.rows != k || dst.len() != m.checked_mul(n)? || !lhs.fits() {
        return None;
    }
    let mut rows = vec![0.0f32; min.checked_mul(k)?];
    for (r, row) in rows.chunks_exact_mut(k).take(m).enumerate() {
        let start = lhs.offset + r * lhs.row_stride;
        for (c, x) in row.iter_mut().enumerate() {
            *x = lhs.data[start + c * lhs.col_stride];
        }
    }
    let mut out = vec![0.0f32; min.checked_mul(n)?];
    let padded = Mat {
        data: &rows,
        offset: 0,
        rows: min,
        cols: k,
        row_stride: k,
        col_stride: 1,
    };
    matmul_into(&mut out, padded, rhs)?;
    dst.copy_from_slice(&out[..m * n]);
    Some(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::{Mat, matmul_into, matmul_rows_into};
    use crate::flex::bf16::tests::values;

    fn mat(data: &[f32], offset: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Mat<'_> {
        Mat {
            data,
            offset,
            rows,
            cols,
            row_stride: rs,
            col_stride: cs,
        }
    }

    #[test]
    fn strided_product_known_values() {
        // lhs = [[1, 2], [3, 4]] read from the odd columns of a 2×4 buffer; rhs = its transpose
        // read with swapped strides: lhs · lhsᵀ = [[5, 11], [11, 25]].
        let data = [0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0];
        let lhs = mat(&data, 1, 2, 2, 4, 2);
        let rhs = mat(&data, 1, 2, 2, 2, 4);
        let mut dst = [f32::NAN; 4];
        matmul_into(&mut dst, lhs, rhs).expect("fits");
        assert_eq!(dst, [5.0, 11.0, 11.0, 25.0]);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let data = [1.0f32; 6];
        let mut dst = [0.0f32; 4];
        let refused =
            |dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>| matmul_into(dst, lhs, rhs).is_none();
        let rhs = mat(&data, 0, 3, 2, 2, 1);
        // Last element of a 2×3 matrix at offset 1 would be index 6.
        assert!(refused(&mut dst, mat(&data, 1, 2, 3, 3, 1), rhs));
        // Inner dimensions differ, and a wrong output length.
        assert!(refused(&mut dst, mat(&data, 0, 2, 2, 2, 1), rhs));
        assert!(refused(&mut dst[..3], mat(&data, 0, 2, 3, 3, 1), rhs));
        // Overflowing strides.
        assert!(refused(&mut dst, mat(&data, 0, 2, 3, usize::MAX, 1), rhs));
        // Empty inner dimension: zeros.
        let mut dst = [7.0f32; 4];
        matmul_into(
            &mut dst,
            mat(&data, 0, 2, 0, 0, 1),
            mat(&data, 0, 0, 2, 2, 1),
        )
        .expect("empty k");
        assert_eq!(dst, [0.0; 4]);
    }
    /// Every row of `matmul_rows_into` is bit-for-bit the same whether it is computed alone,
    /// with a few rows, or inside a large product (on rayon), for widths on both sides of
    /// gemm's small-size paths and k on both sides of its k-blocking.
    #[test]
    fn rows_do_not_depend_on_the_other_rows() {
        for (n, k) in [(8, 7), (32, 64), (100, 600), (1024, 1024), (512, 4096)] {
            let big = 300;
            let a = values(big * k, (n * 31 + k) as u64);
            let b = values(k * n, (n + k * 7) as u64);
            let rhs = mat(&b, 0, k, n, n, 1);
            let mut full = vec![0.0f32; big * n];
            matmul_rows_into(&mut full, mat(&a, 0, big, k, k, 1), rhs).expect("fits");
            for (start, m) in [
                (0, 1),
                (5, 1),
                (3, 2),
                (17, 3),
                (40, 13),
                (100, 64),
                (2, 65),
            ] {
                let mut part = vec![0.0f32; m * n];
                let lhs = mat(&a, start * k, m, k, k, 1);
                matmul_rows_into(&mut part, lhs, rhs).expect("fits");
                assert!(
                    part.iter()
                        .zip(&full[start * n..(start + m) * n])
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "rows {start}..{} of n {n}, k {k} differ from the full product",
                    start + m
                );
            }
        }
    }
}
