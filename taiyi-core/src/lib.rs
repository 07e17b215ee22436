//! # taiyi-core
//!
//! [Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese](https://huggingface.co/IDEA-CCNL/Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese)
//! in Rust on [burn](https://burn.dev): embed Chinese texts and images in one space, score images
//! against captions, classify images by Chinese labels, search an image collection, on CPU or GPU,
//! without Python. The numbers match the model card's Python code (transformers `BertModel` +
//! open_clip `ViT-H-14`): the tokenizer is id-exact, the image transform pixel-exact, the towers
//! agree to float rounding.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use taiyi_core::{ClipModel, ImageSource, ZeroShotClassifier};
//!
//! # fn main() -> Result<(), taiyi_core::ClipError> {
//! let device = Default::default();
//! let model = ClipModel::<Flex>::from_paths(
//!     "Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese",           // HF text directory
//!     "CLIP-ViT-H-14-laion2B-s32B-b79K/open_clip_model.safetensors",
//!     &device,
//! )?;
//! let labels = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];
//! let classifier = ZeroShotClassifier::new(&model, &labels, &[] as &[&str])?;
//! let images = model.encode_images(&[ImageSource::from("cats.jpg")])?;
//! for pred in classifier.classify(images)?[0].ranked() {
//!     println!("{}\t{:.3}", pred.label, pred.probability);
//! }
//! # Ok(()) }
//! ```
//!
//! Backends are Cargo features: `flex` (default CPU backend), `ndarray`, `wgpu`, `cuda`;
//! [`DeviceSpec`] picks one at run time. The `hub` feature (default) downloads the published
//! weights with the standard Hugging Face cache.

#[cfg(feature = "ann")]
pub mod ann;
pub mod arch;
mod commit;
mod device;
mod encoders;
mod error;
pub mod family;
pub mod hub;
mod index;
mod model;
pub mod npy;
mod options;
pub mod outfile;
pub mod retrieval;
mod shapes;
pub mod shard;
mod text_cache;
pub mod walk;
mod zeroshot;

#[cfg(any(feature = "flex", feature = "ndarray"))]
pub use device::CpuBackend;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub use device::probe;
pub use device::{BackendTask, DeviceSpec, Precision, cache_dir};
pub use encoders::{
    DEFAULT_IMAGE_BATCH, DEFAULT_TEXT_BATCH, EncodeOptions, GPU_IMAGE_BATCH, GPU_TEXT_BATCH,
    ImageEncoder, ImageSource, PartialFeatures, PipelineStats, TextEncoder, TokenBatch,
    l2_normalize,
};
pub use error::{ClipError, error_chain, error_report};
pub use family::{CHINESE_CLIP_PRESETS, ChineseClipPreset, Family, ModelDir, ModelSource};
pub use hub::{HubOptions, ModelPaths};
pub use model::{ClipLogits, ClipModel, WarmUpReport, logits_from_features};
pub use options::{ClipOptions, OptionChoices, vision_config_for};
pub use shapes::ShapeBuckets;
pub use text_cache::{CacheStats, Lookup, TextCache, TextKey};
pub use zeroshot::{
    CHINESE_TEMPLATES, Classification, DEFAULT_TEMPLATE, Prediction, TEMPLATE_SETS,
    ZeroShotClassifier, expand_templates, prompts,
};

pub use taiyi_nn::{CpuKernel, DenseFormat};
pub use taiyi_preprocess::tokenizer::BertTokenizer;
pub use taiyi_preprocess::transform::ImageTransform;
/// The one way to open an input file: regular files only, size caps per kind
/// (`taiyi_store::input`).
pub use taiyi_store::input;
pub use taiyi_text::TextMode;
pub use taiyi_vision::VisionConfig;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::Array2;

/// Wait until `t` is computed: GPU backends queue work lazily and run it asynchronously, so
/// timing or warming up needs this (a no-op wait on the CPU backends).
pub fn sync<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<(), ClipError> {
    let device = t.device();
    B::sync(&device).map_err(|e| ClipError::Readback {
        message: format!("the device failed to run the queued work: {e:?}"),
    })?;
    drop(t);
    Ok(())
}

/// Copy a `[rows, cols]` tensor to the host as an `ndarray::Array2<f32>` (any float dtype).
pub fn to_array2<B: Backend>(t: Tensor<B, 2>) -> Result<Array2<f32>, ClipError> {
    let [r, c] = t.dims();
    let values = to_vec(t)?;
    Array2::from_shape_vec((r, c), values).map_err(|e| ClipError::Readback {
        message: e.to_string(),
    })
}

/// Copy a tensor to the host as row-major `f32` values (any float dtype).
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, ClipError> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| ClipError::Readback {
            message: format!("{e:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[cfg(any(feature = "flex", feature = "ndarray"))]
    #[test]
    fn clip_model_is_send_and_sync() {
        assert_send_sync::<ClipModel<CpuBackend>>();
        assert_send_sync::<ZeroShotClassifier<CpuBackend>>();
    }
}
