//! The bf16 weight layout of the kernels: panels of 16 output columns, the input dimension in
//! pairs, each pair of a panel one 64-byte line.

use half::bf16;
use rayon::prelude::*;

/// Output columns per panel: one 512-bit register of f32 results.
pub const PANEL: usize = 16;

/// One k-pair of one panel: `[column][2]` bf16, 64 bytes, cache-line aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Line(pub [u16; 2 * PANEL]);

/// A `[k, n]` weight (burn's `[in, out]` Linear layout) in bf16, packed once for the kernels.
///
/// Element `(k, n)` is `lines[(n / 16) · pairs + k / 2].0[(n % 16) · 2 + k % 2]`, with
/// `pairs = ⌈k / 2⌉`; the padding (an odd `k`'s last slot, the last panel's missing columns) is
/// zero. This is the operand layout of `vdpbf16ps` (a line is one register: 16 columns × a
/// pair of k) and of AMX's `tdpbf16ps` B tiles (16 consecutive lines are one tile).
#[derive(Clone, PartialEq, Eq)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedBf16")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// `x` rounded to bf16 bits, to nearest even (NaN stays NaN), as `half` and PyTorch round.
#[inline]
pub fn bf16_bits(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// The f32 value of bf16 bits (exact).
#[inline]
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

impl PackedBf16 {
    /// Pack `weight`, row-major `[k, n]`, whose element `(r, c)` is `at(r · n + c)` as bf16 bits.
    /// `None` when `weight.len() != k · n`.
    fn pack<T: Copy + Sync>(
        weight: &[T],
        k: usize,
        n: usize,
        bits: impl Fn(T) -> u16 + Sync,
    ) -> Option<Self> {
        if weight.len() != k.checked_mul(n)? {
            return None;
        }
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(PANEL);
        let mut lines = vec![Line::default(); pairs.checked_mul(panels)?];
        if pairs > 0 {
            lines
                .par_chunks_mut(pairs)
                .enumerate()
                .for_each(|(panel, lines)| {
                    let c0 = panel * PANEL;
                    let width = PANEL.min(n - c0);
                    for (p, line) in lines.iter_mut().enumerate() {
                        for j in 0..2 {
                            let r = 2 * p + j;
                            if r >= k {
                                break;
                            }
                            let row = &weight[r * n + c0..r * n + c0 + width];
                            for (c, &w) in row.iter().enumerate() {
                                line.0[2 * c + j] = bits(w);
                            }
                        }
                    }
                });
        }
        Some(Self { k, n, lines })
    }

    /// Pack an f32 `[k, n]` weight, each value rounded to bf16. `None` when the length is not
    /// `k · n`.
    pub fn from_f32(weight: &[f32], k: usize, n: usize) -> Option<Self> {
        Self::pack(weight, k, n, bf16_bits)
    }

    /// Pack a bf16 `[k, n]` weight (exact). `None` when the length is not `k · n`.
    pub fn from_bf16(weight: &[bf16], k: usize, n: usize) -> Option<Self> {
        Self::pack(weight, k, n, bf16::to_bits)
    }

    /// The input dimension (rows of the weight).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The output dimension (columns of the weight).
    pub fn n(&self) -> usize {
        self.n
    }

    /// `⌈k / 2⌉`: lines per panel.
    pub fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    /// `⌈n / 16⌉`.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Every line, panel after panel.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Bytes held.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of_val(self.lines.as_slice())
    }

    /// Element `(r, c)` as f32 (exact). `None` outside `[k, n]`.
    pub fn get(&self, r: usize, c: usize) -> Option<f32> {
        if r >= self.k || c >= self.n {
            return None;
        }
        let line = self.lines[(c / PANEL) * self.pairs() + r / 2];
        Some(bf16_value(line.0[(c % PANEL) * 2 + r % 2]))
    }

    /// The weight back as a row-major f32 `[k, n]` (exact), rows on rayon.
    pub fn to_f32(&self) -> Vec<f32> {
        let (k, n, pairs) = (self.k, self.n, self.pairs());
        let mut out = vec![0.0f32; k * n];
        if n == 0 {
            return out;
        }
        out.par_chunks_mut(n).enumerate().for_each(|(r, row)| {
            for (panel, cols) in row.chunks_mut(PANEL).enumerate() {
                let line = &self.lines[panel * pairs + r / 2].0;
                for (c, v) in cols.iter_mut().enumerate() {
                    *v = bf16_value(line[2 * c + r % 2]);
                }
            }
        });
        out
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::{PackedBf16, bf16_bits, bf16_value};

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between bf16 1.0 and 1 + 2^-7: ties go to the even 1.0.
        assert_eq!(bf16_value(bf16_bits(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_value(bf16_bits(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_value(bf16_bits(-0.0)).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn layout_round_trips_awkward_shapes() {
        for (k, n) in [(1, 1), (3, 17), (2, 16), (5, 33), (0, 4), (4, 0)] {
            let w: Vec<f32> = (0..k * n).map(|i| i as f32 - 7.0).collect();
            let p = PackedBf16::from_f32(&w, k, n).expect("length");
            assert_eq!(p.to_f32(), w, "{k}x{n}");
            assert_eq!(p.lines().len(), k.div_ceil(2) * n.div_ceil(16));
            for r in 0..k {
                for c in 0..n {
                    assert_eq!(p.get(r, c), Some(w[r * n + c]));
                }
            }
            assert_eq!(p.get(k, 0), None);
        }
        // Padding is zero: the odd k's last slot and the missing columns of the last panel.
        let p = PackedBf16::from_f32(&[1.0; 3 * 17], 3, 17).expect("length");
        let last = p.lines()[p.lines().len() - 1].0;
        assert_eq!(last[0], bf16_bits(1.0));
        assert_eq!(last[1], 0, "k = 3 has no 4th row");
        assert!(
            last[2..].iter().all(|&b| b == 0),
            "columns 17.. are padding"
        );
        assert!(PackedBf16::from_f32(&[1.0; 5], 2, 3).is_none());
    }
}
