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
//!
//! [`ImageTransform::from_hf_processor`] builds instead the transform of transformers'
//! `ChineseCLIPImageProcessor` (the OFA-Sys Chinese-CLIP models) from its
//! `preprocessor_config.json` ([`HfImageProcessorConfig`]): `convert("RGB")` first, a resize to
//! exactly the configured height and width (no aspect kept), an optional floor-offset center
//! crop, then rescale + normalize as numpy computes them; bit-exact on its `pixel_values`.

mod apply;
mod budget;
mod decode;
mod error;
mod hf;
mod indexed;
mod input;
mod jpeg;
mod pil;
mod resample;
mod steps;

use std::path::Path;
use std::sync::Arc;

use image::DynamicImage;

pub use budget::{DECODE_MEMORY_ENV, DEFAULT_DECODE_MEMORY, DecodeBudget, DecodePermit};
pub use error::{ImageError, LibjpegError, PngError};
pub use hf::{HfChannels, HfImageProcessorConfig, HfSize};
pub use input::{ImageInput, ImageSource};
pub use jpeg::JpegDecoder;
pub use pil::{PilImage, PilMode};

/// `OPENAI_DATASET_MEAN` of open_clip (the ViT-H-14 / laion2b preprocessing).
pub const OPENAI_DATASET_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// `OPENAI_DATASET_STD` of open_clip.
pub const OPENAI_DATASET_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// Pillow's `Image.MAX_IMAGE_PIXELS` (it warns above this and errors above twice this).
pub const PIL_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Headers and metadata (EXIF, ICC profiles, text chunks) allowed in an image file on top of
/// its pixels; see [`ImageTransform::max_file_bytes`].
pub const IMAGE_FILE_SLACK_BYTES: u64 = 64 << 20;

/// The open_clip evaluation transform (Resize shortest side, CenterCrop, RGB, ToTensor,
/// Normalize), or that of transformers' `ChineseCLIPImageProcessor`
/// ([`ImageTransform::from_hf_processor`]). `Send + Sync`; cheap to clone.
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
    /// open_clip's steps, or a `ChineseCLIPImageProcessor`'s.
    pipeline: hf::Pipeline,
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

impl ImageTransform {
    /// The transform of open_clip's `ViT-H-14` (224 px, OpenAI mean/std), i.e. what
    /// `open_clip.create_model_and_transforms('ViT-H-14')` returns for evaluation.
    pub fn open_clip_vit_h_14() -> Self {
        Self {
            image_size: 224,
            mean: OPENAI_DATASET_MEAN.map(|v| v as f32),
            std: OPENAI_DATASET_STD.map(|v| v as f32),
            pipeline: hf::Pipeline::OpenClip,
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
            pipeline: hf::Pipeline::OpenClip,
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

    /// The budget the `apply_*` methods reserve decodes from: the transform's own, else the
    /// process-wide one. Batch callers check it once, before any image, so that a bad
    /// configuration is reported as such and not as an error of every image.
    ///
    /// # Errors
    /// [`ImageError::DecodeMemoryEnv`] if the process-wide budget is used and
    /// [`DECODE_MEMORY_ENV`] is set but not a size.
    pub fn budget_in_use(&self) -> Result<&DecodeBudget, ImageError> {
        match &self.budget.0 {
            Some(b) => Ok(b),
            None => DecodeBudget::global(),
        }
    }

    /// The bytes decoding `bytes` is expected to hold at its peak (from the header alone),
    /// which the `apply_*` methods reserve from the decode budget.
    pub fn decode_estimate(&self, bytes: &[u8]) -> u64 {
        decode::estimate(bytes, "<bytes>", self.max_pixels)
    }

    /// Output side length (224 for ViT-H-14; the crop or resize side of an HF processor).
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Normalisation mean per channel (f32; 0 for an HF processor without `do_normalize`).
    pub fn mean(&self) -> [f32; 3] {
        self.mean
    }

    /// Normalisation std per channel (f32; 1 for an HF processor without `do_normalize`).
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

    /// The most bytes an image file may hold to be read (by [`ImageTransform::decode_path`],
    /// [`ImageTransform::apply_path`] and the batch paths): 8 bytes per pixel at the pixel
    /// limit (16-bit RGBA stored uncompressed, the most any decodable format spends on a
    /// pixel) plus [`IMAGE_FILE_SLACK_BYTES`]; 1.4 GiB at the default limit. A larger file
    /// cannot hold a decodable image, and is refused before it is read into memory. It follows
    /// [`ImageTransform::with_max_pixels`]. The bytes read are held during the decode and
    /// counted in its reservation from the decode budget (`TAIYI_DECODE_MEMORY`, default
    /// 4 GiB), so the cap also keeps one file from claiming most of that budget by itself.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_pixels
            .saturating_mul(8)
            .saturating_add(IMAGE_FILE_SLACK_BYTES)
    }

    /// The bytes of the image file `path`, through [`taiyi_store::input`]: a regular file of
    /// at most [`ImageTransform::max_file_bytes`].
    pub(crate) fn read_file(&self, path: &Path) -> Result<Vec<u8>, ImageError> {
        let kind = taiyi_store::input::InputKind::new("image", self.max_file_bytes());
        taiyi_store::input::read_input(path, kind).map_err(|source| ImageError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Decodes a file into a [`PilImage`] in the mode Pillow would open it in.
    ///
    /// # Errors
    /// [`ImageError::Io`] if it cannot be read (missing, not a regular file, larger than
    /// [`ImageTransform::max_file_bytes`]), and the errors of [`ImageTransform::decode_bytes`].
    pub fn decode_path(&self, path: impl AsRef<Path>) -> Result<PilImage, ImageError> {
        let path = path.as_ref();
        let bytes = self.read_file(path)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_sync() {
        fn is<T: Send + Sync>() {}
        is::<ImageTransform>();
        is::<PilImage>();
    }
}
