//! `vdpbf16ps` micro-kernels (AVX512_BF16): every `unsafe` block of the bf16 kernels.
//!
//! One tile is `MR` rows × `NP` panels of 16 columns, its `MR · NP` accumulators in zmm
//! registers (12 × 2 = 24 of 32). For each k-pair `p`, the tile loads one line per panel
//! (16 columns × the pair, 64 bytes) and, per row, broadcasts the row's pair of bf16 inputs
//! (32 bits) and adds the 32 products into the row's accumulators. The whole k range runs in
//! one pass: a tile's weight lines (`k · 32` bytes per panel, ≤ 320 KiB at k = 5120) stay in
//! L2 while every row block of the output passes over them, and each output element is
//! written once, bias added. Column blocks (2 panels) are spread over rayon.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512bh, __m512i, _mm512_add_ps, _mm512_dpbf16_ps, _mm512_load_si512, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_epi32, _mm512_setzero_ps,
};

use rayon::prelude::*;

use crate::bf16::{Line, PANEL, PackedBf16};

/// Rows of a full tile.
const MR: usize = 12;
/// Panels of a full tile.
const NP: usize = 2;
/// Products of at least this many multiply-adds run on rayon.
const PARALLEL_WORK: usize = 1 << 21;

/// `out = a · w (+ bias)`, then exact GELU when `gelu` (applied to each tile as it is stored,
/// while it is in L1): `a` the bf16 bits of `m` rows of `2 · w.pairs()` (zero-padded), `out`
/// row-major `[m, w.n()]`, overwritten. `None` (nothing written) when a length disagrees or
/// this CPU lacks AVX512_BF16.
pub(super) fn gemm(
    a: &[u16],
    m: usize,
    w: &PackedBf16,
    bias: Option<&[f32]>,
    gelu: bool,
    out: &mut [f32],
) -> Option<()> {
    let (n, pairs, panels) = (w.n(), w.pairs(), w.panels());
    let lda = 2 * pairs;
    if !crate::bf16::CpuKernel::Avx512Bf16.supported()
        || a.len() != m.checked_mul(lda)?
        || out.len() != m.checked_mul(n)?
        || bias.is_some_and(|b| b.len() != n)
        || w.lines().len() != pairs.checked_mul(panels)?
    {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(());
    }
    let dst = Dst(out.as_mut_ptr());
    let blocks = panels.div_ceil(NP);
    let block = |blk: usize| {
        let p0 = blk * NP;
        let np = NP.min(panels - p0);
        let c0 = p0 * PANEL;
        let cols = (np * PANEL).min(n - c0);
        let b = &w.lines()[p0 * pairs..(p0 + np) * pairs];
        let mut r0 = 0;
        while r0 < m {
            let rows = MR.min(m - r0);
            let t = Tile {
                a: &a[r0 * lda..(r0 + rows) * lda],
                lda,
                b,
                pairs,
                bias: bias.map(|bias| &bias[c0..c0 + cols]),
                cols,
                gelu,
            };
            // SAFETY: `dst` points at `out`, `m · n` f32 that outlive this call (the parallel
            // loop below finishes before `gemm` returns). This tile writes rows r0..r0+rows
            // (< m) and columns c0..c0+cols (≤ n) at row stride n: inside `out`, and disjoint
            // from every other tile's (column blocks differ between tasks, row blocks within
            // one). The CPU has AVX512F + AVX512_BF16 (checked above). `t`'s slices hold
            // exactly `rows` rows of `lda` = 2 · pairs values and `np` panels of `pairs` lines.
            unsafe { t.run(dst.at(r0 * n + c0), n, rows, np) };
            r0 += rows;
        }
    };
    if m.saturating_mul(n).saturating_mul(lda) >= PARALLEL_WORK {
        (0..blocks).into_par_iter().for_each(block);
    } else {
        (0..blocks).for_each(block);
    }
    Some(())
}

/// The output pointer, shared by the tasks that write disjoint tiles of it.
#[derive(Clone, Copy)]
struct Dst(*mut f32);
impl Dst {
    /// The element `offset` past the start.
    ///
    /// # Safety
    /// `offset` lies inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(offset) }
    }
}

// SAFETY: the tasks of `gemm` write disjoint elements through it, and `gemm` returns only
// after every task has finished.
unsafe impl Send for Dst {}
// SAFETY: as for `Send`: no element is written by two tasks, none is read.
unsafe impl Sync for Dst {}

/// The inputs of one tile.
struct Tile<'a> {
    /// `rows` rows of `lda` bf16 values.
    a: &'a [u16],
    lda: usize,
    /// `np` panels of `pairs` lines.
    b: &'a [Line],
    pairs: usize,
    /// `cols` values, when the layer has a bias.
    bias: Option<&'a [f32]>,
    /// Valid output columns (≤ np · 16; the rest are the last panel's padding).
    cols: usize,
    /// Whether to apply exact GELU to the stored tile.
    gelu: bool,
}

impl Tile<'_> {
    /// Dispatch to the micro-kernel of `rows` × `np`.
    ///
    /// # Safety
    /// `c` is valid for writes of `rows` rows of `self.cols` f32 at row stride `ldc`; the CPU
    /// has AVX512F and AVX512_BF16; `self.a` holds `rows · lda` values, `lda` = 2 · pairs;
    /// `self.b` holds `np · pairs` lines; 1 ≤ rows ≤ MR, 1 ≤ np ≤ NP, cols ≤ np · 16.
    unsafe fn run(&self, c: *mut f32, ldc: usize, rows: usize, np: usize) {
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match (rows, np) {
                    $(
                        ($r, 2) => unsafe { self.kernel::<$r, 2>(c, ldc) },
                        ($r, _) => unsafe { self.kernel::<$r, 1>(c, ldc) },
                    )*
                    _ => {}
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12);
    }

    /// The `R` × `P` micro-kernel.
    ///
    /// # Safety
    /// As [`Tile::run`] with rows = R and np = P.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel<const R: usize, const P: usize>(&self, c: *mut f32, ldc: usize) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let a = self.a.as_ptr();
        let b = self.b.as_ptr();
        for p in 0..self.pairs {
            let mut lines = [as_bh(_mm512_set1_epi32(0)); P];
            for (j, line) in lines.iter_mut().enumerate() {
                // SAFETY: line j · pairs + p < P · pairs = self.b.len(); `Line` is 64-byte
                // aligned, as the aligned load requires.
                *line = unsafe {
                    as_bh(_mm512_load_si512(
                        b.add(j * self.pairs + p).cast::<__m512i>(),
                    ))
                };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: values i · lda + 2p and + 1 < R · lda = self.a.len() (p < pairs,
                // lda = 2 · pairs); an unaligned 32-bit read of the pair.
                let pair = unsafe { a.add(i * self.lda + 2 * p).cast::<i32>().read_unaligned() };
                let pair = as_bh(_mm512_set1_epi32(pair));
                for (acc, line) in row.iter_mut().zip(&lines) {
                    *acc = _mm512_dpbf16_ps(*acc, pair, *line);
                }
            }
        }
        for j in 0..P {
            let valid = self.cols.saturating_sub(j * PANEL).min(PANEL);
            let mask: u16 = if valid == PANEL {
                u16::MAX
            } else {
                (1u16 << valid) - 1
            };
            let bias = match self.bias {
                // SAFETY: the masked load reads columns j · 16 + t for t < valid, all
                // < cols = bias.len(); masked-off lanes are not accessed.
                Some(bias) => unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(j * PANEL)) },
                None => _mm512_setzero_ps(),
            };
            for (i, row) in acc.iter().enumerate() {
                // SAFETY: row i < R, columns j · 16 + t for t < valid (≤ cols): inside the
                // tile the caller made `c` valid for; masked-off lanes are not written.
                unsafe {
                    _mm512_mask_storeu_ps(
                        c.add(i * ldc + j * PANEL),
                        mask,
                        _mm512_add_ps(row[j], bias),
                    );
                }
            }
        }
        if self.gelu {
            for i in 0..R {
                // SAFETY: row i < R of the tile, its `cols` columns: inside the region the
                // caller made `c` valid for, written just above, borrowed by no one else.
                let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), self.cols) };
                // Compiled here with AVX-512 enabled: the loop vectorises.
                for v in row {
                    *v = crate::flex::gelu::gelu(*v);
                }
            }
        }
    }
}

/// The same 512 bits read as 32 bf16.
///
/// # Safety
/// None beyond the call's: both are 512-bit vector types with no invalid bit patterns
/// (`unsafe` only because it takes a vector type, so it must run with AVX512F enabled).
#[inline]
#[target_feature(enable = "avx512f")]
fn as_bh(x: __m512i) -> __m512bh {
    // SAFETY: same size, every bit pattern valid for both.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
}
