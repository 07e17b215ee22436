//! open_clip's image transform for ViT-H-14, pixel-exact with Pillow 13.0.0 + torchvision 0.29.
//!
//! `Resize(224, BICUBIC)` (shortest side to 224, long side `int(224 * long / short)`, untouched
//! when already that size) -> `CenterCrop(224)` (offsets `int(round((H - 224) / 2))`, Python's
//! round half to even) -> `convert("RGB")` -> `ToTensor` (`u8 as f32 / 255`) ->
//! `Normalize` (`(x - mean) / std` in f32). The resize runs in the image's own Pillow mode
//! (see [`PilMode`]) with a port of Pillow's fixed-point resampler, so the uint8 image that
//! reaches `ToTensor` is bit-identical to the reference, and so is the float output: for PNG,
//! for JPEG with the default `libjpeg` feature ([`JpegDecoder`]; zune-jpeg without it, up to
//! 5 u8 levels off), for GIF and palette BMP (read in Pillow's `1` / `L` / `P` modes).
//! Concurrent decodes share a memory cap ([`DecodeBudget`]).

mod apply;
mod budget;
mod decode;
mod error;
mod indexed;
mod input;
mod jpeg;
mod pil;
mod resample;

use std::path::Path;
use std::sync::Arc;

use image::DynamicImage;

pub use budget::{DECODE_MEMORY_ENV, DEFAULT_DECODE_MEMORY, DecodeBudget, DecodePermit};
pub use error::{ImageError, LibjpegError};
pub use input::ImageInput;
pub use jpeg::JpegDecoder;
pub use pil::{PilImage, PilMode};
use resample::Window;

/// `OPENAI_DATASET_MEAN` of open_clip (the ViT-H-14 / laion2b preprocessing).
pub const OPENAI_DATASET_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// `OPENAI_DATASET_STD` of open_clip.
pub const OPENAI_DATASET_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// Pillow's `Image.MAX_IMAGE_PIXELS` (it warns above this and errors above twice this).
pub const PIL_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// The open_clip evaluation transform (Resize shortest side, CenterCrop, RGB, ToTensor,
/// Normalize). `Send + Sync`; cheap to clone.
///
/// ```no_run
/// use taiyi_preprocess::transform::ImageTransform;
/// # fn main() -> Result<(), taiyi_preprocess::transform::ImageError> {
/// let t = ImageTransform::open_clip_vit_h_14();
/// let chw: Vec<f32> = t.apply_path("cat.jpg")?; // 3 * 224 * 224 values, CHW
/// assert_eq!(chw.len(), 3 * 224 * 224);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    image_size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    max_pixels: u64,
    jpeg_decoder: JpegDecoder,
    budget: BudgetRef,
}

/// The decode budget of a transform: the process-wide one, or its own (compared by identity).
#[derive(Debug, Clone, Default)]
struct BudgetRef(Option<Arc<DecodeBudget>>);

impl PartialEq for BudgetRef {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Default for ImageTransform {
    /// [`ImageTransform::open_clip_vit_h_14`].
    fn default() -> Self {
        Self::open_clip_vit_h_14()
    }
}

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
    /// The transform of open_clip's `ViT-H-14` (224 px, OpenAI mean/std), i.e. what
    /// `open_clip.create_model_and_transforms('ViT-H-14')` returns for evaluation.
    pub fn open_clip_vit_h_14() -> Self {
        Self {
            image_size: 224,
            mean: OPENAI_DATASET_MEAN.map(|v| v as f32),
            std: OPENAI_DATASET_STD.map(|v| v as f32),
            max_pixels: 2 * PIL_MAX_IMAGE_PIXELS,
            jpeg_decoder: JpegDecoder::default(),
            budget: BudgetRef::default(),
        }
    }

    /// `open_clip.image_transform(image_size, is_train=False, mean=mean, std=std)` for another
    /// model size. Mean and std are given in f64 and rounded to f32 like torch does with
    /// Python floats.
    ///
    /// # Errors
    /// [`ImageError::InvalidConfig`] if `image_size` is 0 or a std is not positive and finite.
    pub fn new(image_size: usize, mean: [f64; 3], std: [f64; 3]) -> Result<Self, ImageError> {
        if image_size == 0 {
            return Err(ImageError::InvalidConfig("image size must be > 0".into()));
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || mean.iter().any(|m| !m.is_finite()) {
            return Err(ImageError::InvalidConfig(format!(
                "mean {mean:?} / std {std:?} must be finite, std > 0"
            )));
        }
        Ok(Self {
            image_size,
            mean: mean.map(|v| v as f32),
            std: std.map(|v| v as f32),
            max_pixels: 2 * PIL_MAX_IMAGE_PIXELS,
            jpeg_decoder: JpegDecoder::default(),
            budget: BudgetRef::default(),
        })
    }

    /// Sets the decompression-bomb limit: decoding an image with more than `max_pixels`
    /// pixels (read from its header) fails with [`ImageError::TooManyPixels`].
    /// Default `2 * 89_478_485`, where Pillow raises `DecompressionBombError`.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Chooses the JPEG decoder (default [`JpegDecoder::Libjpeg`] with the `libjpeg` feature:
    /// pixel-identical to Pillow; [`JpegDecoder::Zune`] otherwise).
    pub fn with_jpeg_decoder(mut self, decoder: JpegDecoder) -> Self {
        self.jpeg_decoder = decoder;
        self
    }

    /// The JPEG decoder in use.
    pub fn jpeg_decoder(&self) -> JpegDecoder {
        self.jpeg_decoder
    }

    /// Makes the `apply_*` methods reserve their decodes' memory from `budget` instead of the
    /// process-wide [`DecodeBudget::global`] (see [`DecodeBudget`]).
    pub fn with_decode_budget(mut self, budget: Arc<DecodeBudget>) -> Self {
        self.budget = BudgetRef(Some(budget));
        self
    }

    /// The transform's own decode budget, `None` when it uses [`DecodeBudget::global`].
    pub fn decode_budget(&self) -> Option<&Arc<DecodeBudget>> {
        self.budget.0.as_ref()
    }

    /// The bytes decoding `bytes` is expected to hold at its peak (from the header alone),
    /// which the `apply_*` methods reserve from the decode budget.
    pub fn decode_estimate(&self, bytes: &[u8]) -> u64 {
        decode::estimate(bytes, "<bytes>", self.max_pixels)
    }

    /// Output side length (224 for ViT-H-14).
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Normalisation mean per channel (f32).
    pub fn mean(&self) -> [f32; 3] {
        self.mean
    }

    /// Normalisation std per channel (f32).
    pub fn std(&self) -> [f32; 3] {
        self.std
    }

    /// The decompression-bomb limit in pixels.
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// Number of f32 values of one output image: `3 * size * size`.
    pub fn output_len(&self) -> usize {
        3 * self.image_size * self.image_size
    }

    /// torchvision's `Resize(size)` output size `(width, height)` for an input of `w x h`:
    /// shortest side to `size`, long side `int(size * long / short)`.
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
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

    /// Decodes a file into a [`PilImage`] in the mode Pillow would open it in.
    ///
    /// # Errors
    /// [`ImageError::Io`] if it cannot be read, and the errors of [`ImageTransform::decode_bytes`].
    pub fn decode_path(&self, path: impl AsRef<Path>) -> Result<PilImage, ImageError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ImageError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        decode::decode_bytes(
            &bytes,
            &path.display().to_string(),
            self.max_pixels,
            self.jpeg_decoder,
        )
    }

    /// Decodes an encoded image (PNG, JPEG, GIF, WebP, BMP, TIFF) into a [`PilImage`].
    ///
    /// # Errors
    /// [`ImageError::Png`] / [`ImageError::Jpeg`] / [`ImageError::Decode`] / [`ImageError::Corrupt`]
    /// for corrupt or truncated data, [`ImageError::ZeroSize`], [`ImageError::Unsupported`],
    /// [`ImageError::TooManyPixels`] above the limit.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<PilImage, ImageError> {
        decode::decode_bytes(bytes, "<bytes>", self.max_pixels, self.jpeg_decoder)
    }

    /// Maps a decoded `image::DynamicImage` to a [`PilImage`] (see the module docs of `decode`:
    /// 8-bit layouts map 1:1, 16-bit colour keeps the high byte, `Luma16` becomes `I;16`).
    ///
    /// # Errors
    /// [`ImageError::ZeroSize`] for an empty image.
    pub fn from_dynamic(&self, img: &DynamicImage) -> Result<PilImage, ImageError> {
        decode::from_dynamic(img, "<image>")
    }

    /// torchvision's `Resize` alone, on the whole image (debugging aid; [`ImageTransform::crop_rgb`]
    /// only computes the part the crop keeps). Same mode as the input; returns a copy when the
    /// size is unchanged, as torchvision returns the image untouched.
    pub fn resize(&self, img: &PilImage) -> PilImage {
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
    /// interleaved RGB, `[size, size, 3]` row-major (HWC).
    ///
    /// # Errors
    /// [`ImageError::ZeroSize`] for an image with no pixels.
    pub fn crop_rgb(&self, img: &PilImage) -> Result<Vec<u8>, ImageError> {
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
            let lut: Vec<f32> = (0..=255u8)
                .map(|v| (f32::from(v) / 255.0 - self.mean[c]) / self.std[c])
                .collect();
            for (o, px) in out[c * n..(c + 1) * n].iter_mut().zip(rgb.chunks_exact(3)) {
                *o = lut[usize::from(px[c])];
            }
        }
        Ok(out)
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

    #[test]
    fn send_sync() {
        fn is<T: Send + Sync>() {}
        is::<ImageTransform>();
        is::<PilImage>();
    }
}
