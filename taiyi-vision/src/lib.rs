//! The image tower of Taiyi-CLIP: open_clip Vision Transformers (ViT-H-14 and the other plain
//! CLIP ViTs) in burn, loaded from open_clip checkpoints.
//!
//! [`VisionTransformer::forward`] reproduces open_clip's `encode_image` (unnormalised
//! features); [`VisionTransformer::load_open_clip`] reads the published weight files
//! (`open_clip_pytorch_model.bin`, `open_clip_model.safetensors`), visual-only state dicts and
//! training checkpoints, strictly: a missing, unused or mis-shaped tensor is an error naming it.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use taiyi_vision::{VisionConfig, VisionTransformer};
//!
//! # fn main() -> Result<(), taiyi_vision::VisionError> {
//! let device = Default::default();
//! let loaded = VisionTransformer::<Flex>::load_open_clip(
//!     "open_clip_model.safetensors",
//!     &VisionConfig::vit_h_14(),
//!     &device,
//! )?;
//! let pixels = Tensor::<Flex, 4>::zeros([1, 3, 224, 224], &device);
//! let features = loaded.model.try_forward(pixels)?; // [1, 1024]
//! println!("{:?}, logit_scale = {:?}", features.dims(), loaded.logit_scale);
//! # Ok(()) }
//! ```

mod config;
mod hf;
mod load;
mod model;

pub use config::VisionConfig;
pub use hf::{
    HF_CLIP_IGNORE, HfAttention, HfClipVision, HfClipVisionConfig, HfEncoder, HfEncoderLayer,
    HfMlp, HfVisionEmbeddings, HfVisionModel,
};
pub use load::{LoadedVision, MAX_ABS_LOGIT_SCALE, OPEN_CLIP_WEIGHT_FILES, open_clip_weights_in};
pub use model::{Attention, Mlp, ResidualAttentionBlock, Transformer, VisionTransformer};
/// The shared tower pieces, re-exported: the MLP activation and the attention kernel choice.
pub use taiyi_nn::{Activation, AttentionKernel, DenseFormat};

use std::path::PathBuf;

/// Errors of the image tower.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// Reading or applying the checkpoint failed (I/O, parse, missing / unused / mis-shaped
    /// tensor; the inner error names the file and keys).
    #[error(transparent)]
    Store(#[from] taiyi_store::StoreError),
    /// The linear weights could not be prepacked for the bf16 CPU kernels.
    #[error("cannot hold the image tower in bf16")]
    Bf16(#[from] taiyi_nn::KernelError),
    /// The checkpoint holds no open_clip image tower.
    #[error("{path} holds no open_clip image tower (no `visual.*` keys and no `conv1.weight`){hint}; first keys: {}", sample.join(", "))]
    NoVisualTower {
        /// The file.
        path: PathBuf,
        /// A few of the keys it does hold.
        sample: Vec<String>,
        /// What the file looks like instead, if recognised.
        hint: String,
    },
    /// `logit_scale` is present but is not a single finite number whose `exp()` is a sane
    /// temperature (see [`MAX_ABS_LOGIT_SCALE`]).
    #[error("logit_scale in {path} is not a single finite number with a sane exp(): {message}")]
    LogitScale {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The configuration cannot describe a model.
    #[error("invalid vision config: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The input tensor does not have the shape the model takes.
    #[error("image tower input has shape {found:?}, expected {expected}")]
    InputShape {
        /// The expected shape, in words.
        expected: String,
        /// The shape given.
        found: Vec<usize>,
    },
}
