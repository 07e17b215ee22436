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

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::{Mat, matmul_into};

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
}
