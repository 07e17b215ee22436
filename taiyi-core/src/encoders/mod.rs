//! The two halves of the model, usable on their own: [`TextEncoder`] (tokenizer + BERT) and
//! [`ImageEncoder`] (open_clip transform + ViT).

mod image;
mod text;

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use taiyi_preprocess::transform::ImageInput;

pub use image::{ImageEncoder, PartialFeatures, PipelineStats};
pub use text::{TextEncoder, TokenBatch};

/// Default number of texts encoded per forward pass on CPU backends.
pub const DEFAULT_TEXT_BATCH: usize = 32;
/// Default number of images encoded per forward pass on CPU backends.
pub const DEFAULT_IMAGE_BATCH: usize = 8;
/// Default number of texts per forward pass on GPU backends.
pub const GPU_TEXT_BATCH: usize = 128;
/// Default number of images per forward pass on GPU backends.
pub const GPU_IMAGE_BATCH: usize = 64;

/// L2-normalise the rows of `x` (`[n, d]`), as the reference does: `x / x.norm(dim=1, keepdim=True)`.
///
/// Computed and returned in f32 whatever the model's precision (an f16 sum of 1024 squares
/// loses digits and can overflow): features of f16/bf16 models come out as f32 tensors.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let x = x.cast(DType::F32);
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
    x / norm
}

/// One image to encode, owned: a file, encoded bytes, or a decoded `::image::DynamicImage`.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An image file (PNG, JPEG, GIF, WebP, BMP, TIFF).
    Path(PathBuf),
    /// An encoded image in memory.
    Bytes(Vec<u8>),
    /// A decoded image.
    Image(::image::DynamicImage),
}

impl ImageSource {
    pub(crate) fn as_input(&self) -> ImageInput<'_> {
        match self {
            ImageSource::Path(p) => ImageInput::Path(p),
            ImageSource::Bytes(b) => ImageInput::Bytes(b),
            ImageSource::Image(i) => ImageInput::Dynamic(i),
        }
    }
}

impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}
impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.to_path_buf())
    }
}
impl From<&str> for ImageSource {
    /// A `&str` is a file path.
    fn from(p: &str) -> Self {
        ImageSource::Path(PathBuf::from(p))
    }
}
impl From<Vec<u8>> for ImageSource {
    fn from(b: Vec<u8>) -> Self {
        ImageSource::Bytes(b)
    }
}
impl From<::image::DynamicImage> for ImageSource {
    fn from(i: ::image::DynamicImage) -> Self {
        ImageSource::Image(i)
    }
}
