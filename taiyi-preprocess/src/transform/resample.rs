//! A port of Pillow 13.0.0's resize (`src/libImaging/Resample.c`, `Geometry.c`), restricted to
//! what open_clip's transform uses: BICUBIC (8-bit fixed point and the 16-bit `I;16` path) and
//! the NEAREST scaling Pillow forces on `P` and `1` images.
//!
//! Every output pixel of a Pillow resize depends only on its own coefficients, so only the
//! window that the center crop keeps is computed: the values are identical to resizing the
//! whole image and cropping, at a fraction of the cost (and a 1xN strip does not allocate a
//! 224 x 224N intermediate).

use std::ops::Range;

use super::pil::{PilImage, PilMode, Samples, clip8, muldiv255};

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
struct Coeffs {
    /// Per output: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output (normalised to sum 1, in f64).
    k: Vec<f64>,
    ksize: usize,
}

impl Coeffs {
    /// `precompute_coeffs(inSize, 0, inSize, outSize, BICUBIC)` for the outputs in `range`.
    fn new(in_size: usize, out_size: usize, range: Range<usize>) -> Self {
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
    fn fixed(&self) -> Vec<i32> {
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
trait Sample: Copy + Default + Send + Sync {
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

/// The part of the resized image to compute: output columns `xs`, rows `ys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub xs: Range<usize>,
    pub ys: Range<usize>,
}

/// The window `win` of a `w x h` image of `c` samples per pixel.
fn copy_window<S: Copy>(src: &[S], w: usize, c: usize, win: &Window) -> Vec<S> {
    let mut out = Vec::with_capacity(win.xs.len() * win.ys.len() * c);
    for y in win.ys.clone() {
        out.extend_from_slice(&src[(y * w + win.xs.start) * c..(y * w + win.xs.end) * c]);
    }
    out
}

/// `ImagingResampleInner` with BICUBIC, for the outputs in `win` only.
fn bicubic<S: Sample>(
    src: &[S],
    (in_w, in_h): (usize, usize),
    c: usize,
    (out_w, out_h): (usize, usize),
    win: &Window,
) -> Vec<S> {
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let (iw, ih, ow, oh) = (in_w as i64, in_h as i64, out_w as i64, out_h as i64);
    // Pillow 13: vertical pass first only if the height shrinks more than twice as much as the width.
    let horizontal_first = !((ih - oh) > 0 && (ih - oh) > (iw - ow) * 2);
    if horizontal_first {
        let vco = need_v.then(|| Coeffs::new(in_h, out_h, win.ys.clone()));
        // Source rows the vertical pass needs (`ybox_first .. ybox_last`).
        let rows = match &vco {
            Some(v) => match (v.bounds.first(), v.bounds.last()) {
                (Some(&(f, _)), Some(&(l, n))) => f..l + n,
                _ => 0..0,
            },
            None => win.ys.clone(),
        };
        if !need_h {
            // No horizontal pass: the vertical one reads the source directly.
            return match vco {
                Some(v) => S::vpass(src, in_w, c, win.xs.clone(), 0, &v),
                None => copy_window(src, in_w, c, win),
            };
        }
        let hco = Coeffs::new(in_w, out_w, win.xs.clone());
        let tmp = S::hpass(src, in_w, c, rows.clone(), &hco);
        match vco {
            Some(v) => S::vpass(&tmp, win.xs.len(), c, 0..win.xs.len(), rows.start, &v),
            // No vertical pass: `rows` is the window's rows, `tmp` is the window.
            None => tmp,
        }
    } else {
        // Vertical first (need_v is true here): full source width, window rows.
        let vco = Coeffs::new(in_h, out_h, win.ys.clone());
        if need_h {
            let tmp = S::vpass(src, in_w, c, 0..in_w, 0, &vco);
            let hco = Coeffs::new(in_w, out_w, win.xs.clone());
            S::hpass(&tmp, in_w, c, 0..win.ys.len(), &hco)
        } else {
            S::vpass(src, in_w, c, win.xs.clone(), 0, &vco)
        }
    }
}

/// Positions of Pillow's NEAREST scaling (`ImagingScaleAffine`: a double accumulated per pixel):
/// `Some(source index)` for each output in `range`, `None` where it falls outside the source.
fn nearest_positions(in_size: usize, out_size: usize, range: Range<usize>) -> Vec<Option<usize>> {
    let a = f64::from(in_size as f32) / out_size as f64;
    let mut xo = 0.0 + a * 0.5;
    let mut out = Vec::with_capacity(range.len());
    for x in 0..range.end {
        if x >= range.start {
            // COORD(v): -1 for negative, else (int)v
            let xin = if xo < 0.0 { -1 } else { xo as i64 };
            out.push((xin >= 0 && (xin as usize) < in_size).then_some(xin as usize));
        }
        xo += a;
    }
    out
}

fn nearest(
    src: &[u8],
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
    win: &Window,
) -> Vec<u8> {
    let xs = nearest_positions(in_w, out_w, win.xs.clone());
    let ys = nearest_positions(in_h, out_h, win.ys.clone());
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for y in &ys {
        for x in &xs {
            out.push(match (y, x) {
                (Some(y), Some(x)) => src[y * in_w + x],
                _ => 0, // Pillow's fill
            });
        }
    }
    out
}

/// Pillow's RGBA->RGBa / LA->La: colour channels times alpha (`MULDIV255`).
fn premultiply(v: &mut [u8], c: usize) {
    for px in v.chunks_exact_mut(c) {
        let a = i32::from(px[c - 1]);
        for s in &mut px[..c - 1] {
            *s = muldiv255(i32::from(*s), a) as u8;
        }
    }
}

/// Pillow's RGBa->RGBA / La->LA: `CLIP8(255 * c / a)`, alpha 0 and 255 unchanged.
fn unpremultiply(v: &mut [u8], c: usize) {
    for px in v.chunks_exact_mut(c) {
        let a = u32::from(px[c - 1]);
        if a != 0 && a != 255 {
            for s in &mut px[..c - 1] {
                *s = clip8(((255 * u32::from(*s)) / a) as i32);
            }
        }
    }
}

/// `img.resize((out_w, out_h), BICUBIC)` as Pillow does it for the image's mode, computing only
/// the window `win` (which must lie inside `out_w x out_h`). Returns an image of the window's size.
pub(crate) fn resize_window(img: &PilImage, out_w: usize, out_h: usize, win: &Window) -> PilImage {
    let (in_sz, out_sz) = ((img.width, img.height), (out_w, out_h));
    let c = img.mode.channels();
    let samples = match (&img.samples, img.mode) {
        (Samples::U16(v), _) => Samples::U16(bicubic(v, in_sz, 1, out_sz, win)),
        (Samples::U8(v), PilMode::P | PilMode::Bilevel) => {
            Samples::U8(nearest(v, in_sz, out_sz, win))
        }
        (Samples::U8(v), PilMode::La | PilMode::Rgba) => {
            let mut pre = v.clone();
            premultiply(&mut pre, c);
            let mut out = bicubic(&pre, in_sz, c, out_sz, win);
            unpremultiply(&mut out, c);
            Samples::U8(out)
        }
        (Samples::U8(v), _) => Samples::U8(bicubic(v, in_sz, c, out_sz, win)),
    };
    PilImage {
        mode: img.mode,
        width: win.xs.len(),
        height: win.ys.len(),
        samples,
        palette: img.palette.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [
            (640usize, 298usize),
            (3, 336),
            (3000, 336),
            (225, 224),
            (1, 224),
        ] {
            let co = Coeffs::new(i, o, 0..o);
            let kk = co.fixed();
            for (xx, &(_, n)) in co.bounds.iter().enumerate() {
                let s: i32 = kk[xx * co.ksize..xx * co.ksize + n].iter().sum();
                assert!((s - (1 << 22)).abs() <= n as i32, "{i}->{o} out {xx}: {s}");
            }
        }
    }

    #[test]
    fn window_equals_full_resize_then_crop() {
        // Pseudo-random RGB image, both pass orders, cropping a window out of the full result.
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for (iw, ih, ow, oh) in [
            (50usize, 40usize, 70usize, 56usize),
            (30, 200, 24, 160),
            (200, 30, 160, 24),
            (9, 9, 4, 30),
        ] {
            let src: Vec<u8> = (0..iw * ih * 3).map(|_| next()).collect();
            let full = bicubic(
                &src,
                (iw, ih),
                3,
                (ow, oh),
                &Window {
                    xs: 0..ow,
                    ys: 0..oh,
                },
            );
            let win = Window {
                xs: 1..ow - 2,
                ys: 2..oh - 1,
            };
            let part = bicubic(&src, (iw, ih), 3, (ow, oh), &win);
            let mut want = Vec::new();
            for y in win.ys.clone() {
                want.extend_from_slice(
                    &full[(y * ow + win.xs.start) * 3..(y * ow + win.xs.end) * 3],
                );
            }
            assert_eq!(part, want, "{iw}x{ih} -> {ow}x{oh}");
        }
    }
}
