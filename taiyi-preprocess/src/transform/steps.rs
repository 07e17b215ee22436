//! The pixel steps of [`ImageTransform`]: torchvision's `Resize` and `CenterCrop` geometry,
//! `convert("RGB")`, and `ToTensor` + `Normalize` (or, for a `ChineseCLIPImageProcessor`, the
//! steps of `super::hf`).

use super::ImageTransform;
use super::error::ImageError;
use super::hf::Pipeline;
use super::pil::{self, PilImage};
use super::resample::{self, Window};

/// Python's `round(x)` for `x = n / 2.0` (half to even), as `int`.
fn round_half_even_div2(n: i64) -> i64 {
    // n / 2 exactly: n even -> n/2; n odd -> (n-1)/2 or (n+1)/2, whichever is even.
    if n % 2 == 0 {
        n / 2
    } else {
        let lo = (n - 1).div_euclid(2);
        if lo % 2 == 0 { lo } else { lo + 1 }
    }
}

impl ImageTransform {
    /// torchvision's `Resize(size)` output size `(width, height)` for an input of `w x h`:
    /// shortest side to `size`, long side `int(size * long / short)`. For an HF processor: the
    /// configured `size` (the input's own without `do_resize`).
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        if let Pipeline::Hf(steps) = &self.pipeline {
            return steps.resized_size(width, height);
        }
        let s = self.image_size;
        let (short, long) = if width <= height {
            (width, height)
        } else {
            (height, width)
        };
        let new_long = if short == 0 {
            0
        } else {
            ((s as f64 * long as f64) / short as f64) as usize
        };
        if width <= height {
            (s, new_long)
        } else {
            (new_long, s)
        }
    }

    /// torchvision's `Resize` alone, on the whole image (debugging aid; [`ImageTransform::crop_rgb`]
    /// only computes the part the crop keeps). Same mode as the input; returns a copy when the
    /// size is unchanged, as torchvision returns the image untouched.
    ///
    /// For an HF processor: `convert("RGB")` then the resize, an RGB image; an empty image, or
    /// one that is not RGB with `do_convert_rgb` false, is returned as it is.
    pub fn resize(&self, img: &PilImage) -> PilImage {
        if let Pipeline::Hf(steps) = &self.pipeline {
            return self.hf_resize(steps, img).unwrap_or_else(|_| img.clone());
        }
        let (rw, rh) = self.resized_size(img.width, img.height);
        if (rw, rh) == (img.width, img.height) || rw == 0 || rh == 0 {
            return img.clone();
        }
        resample::resize_window(
            img,
            rw,
            rh,
            &Window {
                xs: 0..rw,
                ys: 0..rh,
            },
        )
    }

    /// Resize + CenterCrop + `convert("RGB")`: the uint8 image `ToTensor` receives,
    /// interleaved RGB, `[size, size, 3]` row-major (HWC). For an HF processor:
    /// `convert("RGB")` + resize + center crop, the uint8 image rescale + normalize receive.
    ///
    /// # Errors
    /// [`ImageError::ZeroSize`] for an image with no pixels; for an HF processor with
    /// `do_convert_rgb` false, [`ImageError::Unsupported`] for an image that is not RGB.
    pub fn crop_rgb(&self, img: &PilImage) -> Result<Vec<u8>, ImageError> {
        if let Pipeline::Hf(steps) = &self.pipeline {
            return self.hf_crop_rgb(steps, img);
        }
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 {
            return Err(ImageError::ZeroSize {
                origin: "<image>".into(),
                width: w as u64,
                height: h as u64,
            });
        }
        let s = self.image_size;
        let (rw, rh) = self.resized_size(w, h);
        // torchvision center_crop: pad (never needed after a shortest-side resize, kept for
        // completeness), then top/left = int(round((dim - crop) / 2.0)).
        let offset = |dim: usize| -> i64 {
            if s > dim {
                -(((s - dim) / 2) as i64)
            } else {
                round_half_even_div2(dim as i64 - s as i64)
            }
        };
        let (left, top) = (offset(rw), offset(rh));
        let clip = |o: i64, dim: usize| -> std::ops::Range<usize> {
            let a = o.clamp(0, dim as i64) as usize;
            let b = (o + s as i64).clamp(0, dim as i64) as usize;
            a..b
        };
        let win = Window {
            xs: clip(left, rw),
            ys: clip(top, rh),
        };
        let cropped = if (rw, rh) == (w, h) {
            // torchvision returns the image untouched when the size already matches.
            let mut part = img.clone();
            crop_in_place(&mut part, &win);
            part
        } else {
            resample::resize_window(img, rw, rh, &win)
        };
        let rgb = cropped.to_rgb();
        if win.xs.len() == s && win.ys.len() == s {
            return Ok(rgb);
        }
        // Zero padding (Pillow fill 0) around the window.
        let mut out = vec![0u8; s * s * 3];
        let (dx, dy) = (
            (win.xs.start as i64 - left) as usize,
            (win.ys.start as i64 - top) as usize,
        );
        for (r, row) in rgb.chunks_exact(win.xs.len() * 3).enumerate() {
            let o = ((r + dy) * s + dx) * 3;
            out[o..o + row.len()].copy_from_slice(row);
        }
        Ok(out)
    }

    /// ToTensor + Normalize of an interleaved RGB uint8 image of `size x size` pixels:
    /// `((v as f32) / 255 - mean[c]) / std[c]` in f32 (sub then div, as torch), CHW output.
    /// For an HF processor, rescale + normalize as numpy computes them (each step only if
    /// configured): `((v as f64 * rescale_factor) as f32 - mean[c]) / std[c]`.
    ///
    /// # Errors
    /// [`ImageError::InvalidBuffer`] if `rgb.len() != 3 * size * size`.
    pub fn normalize(&self, rgb: &[u8]) -> Result<Vec<f32>, ImageError> {
        let n = self.image_size * self.image_size;
        if rgb.len() != 3 * n {
            return Err(ImageError::InvalidBuffer(format!(
                "expected {} RGB samples, got {}",
                3 * n,
                rgb.len()
            )));
        }
        let mut out = vec![0f32; 3 * n];
        for c in 0..3 {
            let lut: Vec<f32> = (0..=255u8).map(|v| self.float_value(c, v)).collect();
            for (o, px) in out[c * n..(c + 1) * n].iter_mut().zip(rgb.chunks_exact(3)) {
                *o = lut[usize::from(px[c])];
            }
        }
        Ok(out)
    }
}

impl ImageTransform {
    /// The float output of the uint8 value `v` of channel `c`.
    fn float_value(&self, c: usize, v: u8) -> f32 {
        match &self.pipeline {
            Pipeline::OpenClip => (f32::from(v) / 255.0 - self.mean[c]) / self.std[c],
            Pipeline::Hf(steps) => steps.float_value(v, self.mean[c], self.std[c]),
        }
    }
}

/// Crops `img` to `win` (an unresized image).
fn crop_in_place(img: &mut PilImage, win: &Window) {
    let (w, c) = (img.width, img.mode.channels());
    fn cut<S: Copy>(v: &[S], w: usize, c: usize, win: &Window) -> Vec<S> {
        let mut out = Vec::with_capacity(win.xs.len() * win.ys.len() * c);
        for y in win.ys.clone() {
            out.extend_from_slice(&v[(y * w + win.xs.start) * c..(y * w + win.xs.end) * c]);
        }
        out
    }
    img.samples = match &img.samples {
        pil::Samples::U8(v) => pil::Samples::U8(cut(v, w, c, win)),
        pil::Samples::U16(v) => pil::Samples::U16(cut(v, w, c, win)),
    };
    img.width = win.xs.len();
    img.height = win.ys.len();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_half_even() {
        // int(round(d / 2.0)) for d = 0..=9
        let want = [0, 0, 1, 2, 2, 2, 3, 4, 4, 4];
        for (d, w) in want.iter().enumerate() {
            assert_eq!(round_half_even_div2(d as i64), *w, "d={d}");
        }
    }

    #[test]
    fn resized_size_matches_torchvision() {
        let t = ImageTransform::default();
        assert_eq!(t.resized_size(640, 480), (298, 224));
        assert_eq!(t.resized_size(1, 50), (224, 11200));
        assert_eq!(t.resized_size(224, 300), (224, 300));
        assert_eq!(t.resized_size(7, 5), (313, 224));
    }
}
