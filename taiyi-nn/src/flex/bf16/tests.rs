//! Every bf16 kernel this CPU runs, on awkward shapes, against exact products and the f32 gemm.
//!
//! Tolerances, per output element with `s = Σ_k |a_k · w_k|` (f64):
//! - against the exact (f64) sum of the bf16-rounded products: `(k + 2) · 2⁻²⁴ · s`, the f32
//!   accumulation bound of any summation order (each of ≤ k + 1 additions, the bias one,
//!   rounds by ≤ 2⁻²⁴ of a partial sum ≤ s); the products themselves are exact in f32 (8-bit
//!   significands);
//! - against the f32 gemm of the unrounded inputs: bf16 keeps 8 significant bits, so rounding
//!   to nearest moves each input by ≤ 2⁻⁸ relative and each product by ≤ 2⁻⁷ + 2⁻¹⁶
//!   relative: `(2⁻⁷ + 2⁻¹⁶) · s`, plus both sides' f32 accumulation, `2 · (k + 2) · 2⁻²⁴ · s`.

#![allow(clippy::expect_used, clippy::panic)]

use super::matmul;
use crate::bf16::{CpuKernel, PackedBf16, bf16_bits, bf16_value};
use crate::flex::gemm::{Mat, matmul_into};

/// The kernels this CPU runs (the f32 fallback always).
fn kernels() -> Vec<CpuKernel> {
    [CpuKernel::Avx512Bf16, CpuKernel::F32]
        .into_iter()
        .filter(|k| k.supported())
        .collect()
}

/// Deterministic values in [-1, 1) with a spread of magnitudes (xorshift).
pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            let scale = [1.0, 0.01, 30.0][i % 3];
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

fn round(x: f32) -> f64 {
    f64::from(bf16_value(bf16_bits(x)))
}

/// `a` read from a strided buffer: `[m, k]` stored transposed (column-major) after an offset
/// of 3, or row-major with rows padded by 5, by `layout`.
struct Strided {
    data: Vec<f32>,
    offset: usize,
    rs: usize,
    cs: usize,
}

impl Strided {
    fn new(a: &[f32], m: usize, k: usize, layout: usize) -> Self {
        match layout {
            0 => Self {
                data: a.to_vec(),
                offset: 0,
                rs: k,
                cs: 1,
            },
            1 => {
                let mut data = vec![f32::NAN; 3 + m * k];
                for r in 0..m {
                    for c in 0..k {
                        data[3 + c * m + r] = a[r * k + c];
                    }
                }
                Self {
                    data,
                    offset: 3,
                    rs: 1,
                    cs: m,
                }
            }
            _ => {
                let mut data = vec![f32::NAN; m * (k + 5)];
                for r in 0..m {
                    data[r * (k + 5)..r * (k + 5) + k].copy_from_slice(&a[r * k..(r + 1) * k]);
                }
                Self {
                    data,
                    offset: 0,
                    rs: k + 5,
                    cs: 1,
                }
            }
        }
    }

    fn mat(&self, m: usize, k: usize) -> Mat<'_> {
        Mat {
            data: &self.data,
            offset: self.offset,
            rows: m,
            cols: k,
            row_stride: self.rs,
            col_stride: self.cs,
        }
    }
}

/// Run every kernel on `m × k · k × n` and check both bounds; the f64 reference on every
/// output element when `exact`, else on a sample of rows.
fn check(m: usize, k: usize, n: usize, layout: usize, with_bias: bool) {
    let a = values(m * k, (m * 31 + k * 7 + n) as u64);
    let w = values(k * n, (k * 13 + n * 5 + 1) as u64);
    let bias = with_bias.then(|| values(n, n as u64 + 99));
    let packed = PackedBf16::from_f32(&w, k, n).expect("length");
    let strided = Strided::new(&a, m, k, layout);
    let mut f32_out = vec![0.0f32; m * n];
    let wmat = Mat {
        data: &w,
        offset: 0,
        rows: k,
        cols: n,
        row_stride: n,
        col_stride: 1,
    };
    matmul_into(&mut f32_out, strided.mat(m, k), wmat).expect("f32 gemm");
    let rows: Vec<usize> = if m * n * k <= 1 << 24 {
        (0..m).collect()
    } else {
        vec![0, m / 2, m - 1]
    };
    for kernel in kernels() {
        let mut out = vec![f32::NAN; m * n];
        matmul(
            kernel,
            strided.mat(m, k),
            &packed,
            bias.as_deref(),
            false,
            &mut out,
        )
        .unwrap_or_else(|| panic!("{kernel} refused {m}x{k}x{n}"));
        let acc = (k as f64 + 2.0) * 2f64.powi(-24);
        let rounding = 2f64.powi(-7) + 2f64.powi(-16);
        for &r in &rows {
            for c in 0..n {
                let (mut exact, mut s) = (0.0f64, 0.0f64);
                for i in 0..k {
                    let (x, y) = (a[r * k + i], w[i * n + c]);
                    exact += round(x) * round(y);
                    s += f64::from(x).abs() * f64::from(y).abs();
                }
                let b = bias.as_ref().map_or(0.0, |b| f64::from(b[c]));
                let got = f64::from(out[r * n + c]);
                let tol = acc * (s + b.abs()) + f64::from(f32::MIN_POSITIVE);
                assert!(
                    (got - (exact + b)).abs() <= tol,
                    "{kernel} {m}x{k}x{n} layout {layout} ({r}, {c}): {got} vs exact {} (tol {tol})",
                    exact + b
                );
                let want = f64::from(f32_out[r * n + c]) + b;
                let tol = (rounding + 2.0 * acc) * (s + b.abs()) + f64::from(f32::MIN_POSITIVE);
                assert!(
                    (got - want).abs() <= tol,
                    "{kernel} {m}x{k}x{n} ({r}, {c}): {got} vs f32 {want} (tol {tol})"
                );
            }
        }
    }
}

#[test]
fn awkward_shapes_every_kernel() {
    let dims = [1, 15, 17, 80];
    for &m in &dims {
        for &k in &dims {
            for &n in &dims {
                check(m, k, n, (m + k + n) % 3, (m + n) % 2 == 0);
            }
        }
    }
}

#[test]
fn tower_sized_shapes_every_kernel() {
    // Rows of a ViT-H batch (257 tokens) and a BERT batch; k and n of both towers' layers.
    for (m, k, n) in [
        (257, 1280, 17),
        (257, 15, 1280),
        (17, 5120, 80),
        (80, 1280, 5120),
        (257, 1280, 3840),
        (16, 1024, 4096),
    ] {
        check(m, k, n, m % 3, true);
    }
}

#[test]
fn refuses_mismatched_shapes() {
    let packed = PackedBf16::from_f32(&[1.0; 6], 2, 3).expect("length");
    let a = [1.0f32; 4];
    let mat = |rows, cols| Mat {
        data: &a,
        offset: 0,
        rows,
        cols,
        row_stride: cols,
        col_stride: 1,
    };
    for kernel in kernels() {
        let mut out = [0.0f32; 6];
        // k = 4 against a k = 2 weight; a wrong output length; a short bias; a matrix past
        // its slice.
        assert!(matmul(kernel, mat(1, 4), &packed, None, false, &mut out[..3]).is_none());
        assert!(matmul(kernel, mat(2, 2), &packed, None, false, &mut out[..5]).is_none());
        assert!(matmul(kernel, mat(2, 2), &packed, Some(&[0.0; 2]), false, &mut out).is_none());
        assert!(matmul(kernel, mat(3, 2), &packed, None, false, &mut [0.0; 9]).is_none());
        // Zero rows: nothing to do.
        assert!(matmul(kernel, mat(0, 2), &packed, None, false, &mut []).is_some());
        // Known values: [1, 1] · ones(2, 3) + [1, 2, 3].
        matmul(
            kernel,
            mat(2, 2),
            &packed,
            Some(&[1.0, 2.0, 3.0]),
            false,
            &mut out,
        )
        .expect("fits");
        assert_eq!(out, [3.0, 4.0, 5.0, 3.0, 4.0, 5.0], "{kernel}");
    }
}

#[test]
fn special_values_propagate() {
    // NaN and infinities in the inputs reach the outputs they touch, like an f32 gemm.
    let packed = PackedBf16::from_f32(&[1.0, 0.0, 0.0, 1.0], 2, 2).expect("length");
    let a = [f32::NAN, 1.0, f32::INFINITY, 2.0];
    let mat = Mat {
        data: &a,
        offset: 0,
        rows: 2,
        cols: 2,
        row_stride: 2,
        col_stride: 1,
    };
    for kernel in kernels() {
        let mut out = [0.0f32; 4];
        matmul(kernel, mat, &packed, None, false, &mut out).expect("fits");
        assert!(out[0].is_nan() && out[1].is_nan(), "{kernel}: {out:?}");
        assert!(
            out[2] == f32::INFINITY && out[3].is_nan(),
            "{kernel}: {out:?}"
        );
    }
}

#[test]
fn bf16_kernels_on_this_cpu() {
    let names: Vec<&str> = kernels().into_iter().map(CpuKernel::name).collect();
    // Read by scripts/test.sh, which prints the kernels its run exercised.
    eprintln!(
        "bf16 kernels exercised on this CPU: {} (detected: {})",
        names.join(", "),
        CpuKernel::detect()
    );
    assert!(names.contains(&"f32"));
}

#[test]
fn row_conversion_is_halfs_rounding() {
    // The vectorised conversion of the input rows gives `half`'s bits: ties to even, NaN
    // quietened, overflow to ±∞, subnormals kept.
    let mut src: Vec<f32> = values(4096, 7);
    src.extend([
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE / 3.0,
        -0.0,
        f32::from_bits(0x7f80_0001),
    ]);
    let mut dst = vec![0u16; src.len()];
    super::to_bf16_bits(&src, &mut dst);
    for (x, b) in src.iter().zip(&dst) {
        let want = bf16_bits(*x);
        if x.is_nan() {
            assert!(bf16_value(*b).is_nan(), "{x}");
        } else {
            assert_eq!(*b, want, "{x}");
        }
    }
}

#[test]
fn fused_gelu_is_gelu_of_the_product() {
    // The kernels' GELU epilogue gives bit for bit what the f32 GELU gives on their output.
    let (m, k, n) = (29, 40, 50);
    let a = values(m * k, 3);
    let w = values(k * n, 4);
    let bias = values(n, 5);
    let packed = PackedBf16::from_f32(&w, k, n).expect("length");
    let mat = Mat {
        data: &a,
        offset: 0,
        rows: m,
        cols: k,
        row_stride: k,
        col_stride: 1,
    };
    for kernel in kernels() {
        let mut plain = vec![0.0f32; m * n];
        matmul(kernel, mat, &packed, Some(&bias), false, &mut plain).expect("fits");
        let mut fused = vec![0.0f32; m * n];
        matmul(kernel, mat, &packed, Some(&bias), true, &mut fused).expect("fits");
        for (f, p) in fused.iter().zip(&plain) {
            assert_eq!(
                f.to_bits(),
                crate::flex::gelu::gelu(*p).to_bits(),
                "{kernel}"
            );
        }
    }
}
