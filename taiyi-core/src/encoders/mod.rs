//! The two halves of the model, usable on their own: [`TextEncoder`] (tokenizer + BERT) and
//! [`ImageEncoder`] (open_clip transform + ViT).

mod image;
mod text;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

pub use image::{ImageEncoder, PartialFeatures, PipelineStats};
pub use taiyi_preprocess::tokenizer::TokenBatch;
pub use taiyi_preprocess::transform::ImageSource;
pub use text::TextEncoder;

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

/// How one `encode` call of [`TextEncoder`] or [`ImageEncoder`] runs.
///
/// The default normalises (f32, [`l2_normalize`]) and reports no progress.
///
/// ```no_run
/// # use taiyi_core::{EncodeOptions, TextEncoder, CpuBackend};
/// # fn demo(enc: &TextEncoder<CpuBackend>) -> Result<(), taiyi_core::ClipError> {
/// let normalised = enc.encode(&["一只猫"], &EncodeOptions::default())?;
/// let show = |n: usize| eprintln!("{n} texts done");
/// let raw = enc.encode(&["一只猫"], &EncodeOptions::raw().with_progress(&show))?;
/// # let _ = (normalised, raw); Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// L2-normalise the features (in f32); `false` returns the tower's raw output in the
    /// model's float dtype (open_clip `encode_image(normalize=False)`, the BERT pooler output).
    pub normalize: bool,
    /// Called with the number of inputs done after every forward pass.
    pub progress: Option<&'a dyn Fn(usize)>,
}

impl Default for EncodeOptions<'_> {
    fn default() -> Self {
        Self {
            normalize: true,
            progress: None,
        }
    }
}

impl std::fmt::Debug for EncodeOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeOptions")
            .field("normalize", &self.normalize)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> EncodeOptions<'a> {
    /// Raw (unnormalised) features, no progress.
    pub fn raw() -> Self {
        Self {
            normalize: false,
            progress: None,
        }
    }

    /// Normalise or not (see [`EncodeOptions::normalize`]).
    pub fn normalized(self, normalize: bool) -> Self {
        Self { normalize, ..self }
    }

    /// Report progress to `progress` (the number of inputs done, after every forward pass).
    pub fn with_progress(self, progress: &'a dyn Fn(usize)) -> Self {
        Self {
            progress: Some(progress),
            ..self
        }
    }

    pub(crate) fn report(&self, done: usize) {
        if let Some(progress) = self.progress {
            progress(done);
        }
    }

    pub(crate) fn finish<B: Backend>(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.normalize {
            l2_normalize(features)
        } else {
            features
        }
    }
}
