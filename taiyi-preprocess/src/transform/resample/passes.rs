//! Pillow's bicubic coefficients (`precompute_coeffs`, 22-bit fixed point) and the horizontal
//! and vertical passes of `ImagingResampleInner` for u8 (fixed point) and u16 (f64) samples.

use std::ops::Range;

use crate::transform::pil::clip8;

/// Pillow's `PRECISION_BITS` for 8-bit images: 32 - 8 - 2.
const PRECISION_BITS: u32 = 22;

/// Pillow's bicubic kernel (`a = -0.5`, support 2).
#[inline]
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Resampling coefficients for the outputs `range` of one axis (`precompute_coeffs`).
pub(super) struct Coeffs {
    /// Per output: first input index and number of taps.
    pub(super) bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output (normalised to sum 1, in f64).
    k: Vec<f64>,
    pub(super) ksize: usize,
}

impl Coeffs {
    /// `precompute_coeffs(inSize, 0, inSize, outSize, BICUBIC)` for the outputs in `range`.
    pub(super) fn new(in_size: usize, out_size: usize, range: Range<usize>) -> Self {
        // box = (0, 0, in_w, in_h) is a float[4] in Pillow: `(double)(in1 - in0) / outSize`.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = 2.0 * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(range.len());
        let mut k = vec![0.0f64; range.len() * ksize];
        for (i, xx) in range.enumerate() {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // C `(int)` truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let count = (xmax - xmin).max(0) as usize;
            let xmin = xmin as usize;
            let kr = &mut k[i * ksize..i * ksize + count.min(ksize)];
            let mut ww = 0.0f64;
            for (x, w) in kr.iter_mut().enumerate() {
                *w = bicubic_filter(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                ww += *w;
            }
            if ww != 0.0 {
                for w in kr.iter_mut() {
                    *w /= ww;
                }
            }
            bounds.push((xmin, count.min(ksize)));
        }
        Self { bounds, k, ksize }
    }

    /// `normalize_coeffs_8bpc`: weights in 22-bit fixed point, rounded half away from zero.
    pub(super) fn fixed(&self) -> Vec<i32> {
        let one = f64::from(1u32 << PRECISION_BITS);
        self.k
            .iter()
            .map(|&w| {
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect()
    }
}

/// Pillow's `clip8(ss)`: `ss >> PRECISION_BITS` clamped to 0..=255.
#[inline]
fn clip_fixed(ss: i32) -> u8 {
    clip8(ss >> PRECISION_BITS)
}

/// Pillow's `ROUND_UP` then `CLIP16` for the 16-bit path.
#[inline]
fn round_clip16(ss: f64) -> u16 {
    let r = if ss >= 0.0 {
        (ss + 0.5) as i64
    } else {
        (ss - 0.5) as i64
    };
    r.clamp(0, 65535) as u16
}

/// One sample type of the bicubic resampler: u8 (fixed point) or u16 (double).
pub(super) trait Sample: Copy + Default + Send + Sync {
    /// Horizontal pass: rows `rows` of `src` (`src_w` pixels of `c` samples each), one output
    /// column per entry of `co`.
    fn hpass(src: &[Self], src_w: usize, c: usize, rows: Range<usize>, co: &Coeffs) -> Vec<Self>;
    /// Vertical pass: one output row per entry of `co` (bounds are relative to source row
    /// `row_offset`), keeping source columns `cols`.
    fn vpass(
        src: &[Self],
        src_w: usize,
        c: usize,
        cols: Range<usize>,
        row_offset: usize,
        co: &Coeffs,
    ) -> Vec<Self>;
}

impl Sample for u8 {
    fn hpass(src: &[u8], src_w: usize, c: usize, rows: Range<usize>, co: &Coeffs) -> Vec<u8> {
        let kk = co.fixed();
        let out_w = co.bounds.len();
        let mut out = vec![0u8; rows.len() * out_w * c];
        let half = 1i32 << (PRECISION_BITS - 1);
        for (oy, y) in rows.enumerate() {
            let line = &src[y * src_w * c..(y + 1) * src_w * c];
            let oline = &mut out[oy * out_w * c..(oy + 1) * out_w * c];
            for (xx, &(xmin, count)) in co.bounds.iter().enumerate() {
                let k = &kk[xx * co.ksize..xx * co.ksize + count];
                let taps = &line[xmin * c..(xmin + count) * c];
                for ch in 0..c {
                    let mut ss = half;
                    for (x, &w) in k.iter().enumerate() {
                        ss = ss.wrapping_add(i32::from(taps[x * c + ch]).wrapping_mul(w));
                    }
                    oline[xx * c + ch] = clip_fixed(ss);
                }
            }
        }
        out
    }

    fn vpass(
        src: &[u8],
        src_w: usize,
        c: usize,
        cols: Range<usize>,
        row_offset: usize,
        co: &Coeffs,
    ) -> Vec<u8> {
        let kk = co.fixed();
        let row_len = src_w * c;
        let (c0, c1) = (cols.start * c, cols.end * c);
        let out_len = c1 - c0;
        let mut out = vec![0u8; co.bounds.len() * out_len];
        let mut acc = vec![0i32; out_len];
        let half = 1i32 << (PRECISION_BITS - 1);
        for (yy, &(ymin, count)) in co.bounds.iter().enumerate() {
            acc.fill(half);
            let k = &kk[yy * co.ksize..yy * co.ksize + count];
            for (y, &w) in k.iter().enumerate() {
                let r = ymin + y - row_offset;
                let line = &src[r * row_len + c0..r * row_len + c1];
                for (a, &v) in acc.iter_mut().zip(line) {
                    *a = a.wrapping_add(i32::from(v).wrapping_mul(w));
                }
            }
            for (o, &a) in out[yy * out_len..(yy + 1) * out_len].iter_mut().zip(&acc) {
                *o = clip_fixed(a);
            }
        }
        out
    }
}

impl Sample for u16 {
    fn hpass(src: &[u16], src_w: usize, c: usize, rows: Range<usize>, co: &Coeffs) -> Vec<u16> {
        let out_w = co.bounds.len();
        let mut out = vec![0u16; rows.len() * out_w * c];
        for (oy, y) in rows.enumerate() {
            let line = &src[y * src_w * c..(y + 1) * src_w * c];
            let oline = &mut out[oy * out_w * c..(oy + 1) * out_w * c];
            for (xx, &(xmin, count)) in co.bounds.iter().enumerate() {
                let k = &co.k[xx * co.ksize..xx * co.ksize + count];
                let taps = &line[xmin * c..(xmin + count) * c];
                for ch in 0..c {
                    let mut ss = 0.0f64;
                    for (x, &w) in k.iter().enumerate() {
                        ss += f64::from(taps[x * c + ch]) * w;
                    }
                    oline[xx * c + ch] = round_clip16(ss);
                }
            }
        }
        out
    }

    fn vpass(
        src: &[u16],
        src_w: usize,
        c: usize,
        cols: Range<usize>,
        row_offset: usize,
        co: &Coeffs,
    ) -> Vec<u16> {
        let row_len = src_w * c;
        let (c0, c1) = (cols.start * c, cols.end * c);
        let out_len = c1 - c0;
        let mut out = vec![0u16; co.bounds.len() * out_len];
        let mut acc = vec![0f64; out_len];
        for (yy, &(ymin, count)) in co.bounds.iter().enumerate() {
            acc.fill(0.0);
            let k = &co.k[yy * co.ksize..yy * co.ksize + count];
            for (y, &w) in k.iter().enumerate() {
                let r = ymin + y - row_offset;
                let line = &src[r * row_len + c0..r * row_len + c1];
                for (a, &v) in acc.iter_mut().zip(line) {
                    *a += f64::from(v) * w;
                }
            }
            for (o, &a) in out[yy * out_len..(yy + 1) * out_len].iter_mut().zip(&acc) {
                *o = round_clip16(a);
            }
        }
        out
    }
}
