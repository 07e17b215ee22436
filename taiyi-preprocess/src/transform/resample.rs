//! A port of Pillow 13.0.0's resize (`src/libImaging/Resample.c`, `Geometry.c`), restricted to
//! what open_clip's transform uses: BICUBIC (8-bit fixed point and the 16-bit `I;16` path) and
//! the NEAREST scaling Pillow forces on `P` and `1` images.
//!
//! Every output pixel of a Pillow resize depends only on its own coefficients, so only the
//! window that the center crop keeps is computed: the values are identical to resizing the
//! whole image and cropping, at a fraction of the cost (and a 1xN strip does not allocate a
//! 224 x 224N intermediate).

mod passes;

use std::ops::Range;

use super::pil::{PilImage, PilMode, Samples, clip8, muldiv255};
use passes::{Coeffs, Sample};

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
