//! Architecture of an open_clip Vision Transformer.

use burn::config::Config;

use taiyi_nn::{Activation, AttentionKernel};

use crate::VisionError;

/// Hyper-parameters of an open_clip `VisionTransformer` with the plain setup that ViT-H-14
/// uses: learnable positional embedding, `ln_pre`, pre-LN blocks without layer scale, class
/// token pooling (`pool_type='tok'`), `ln_post` before pooling, and a bias-free projection.
///
/// open_clip options outside that setup (attentional pooler, `ls_init_value`, `no_ln_pre`,
/// `final_ln_after_pool`, average pooling, custom blocks) are not offered: a checkpoint using
/// them fails to load with an error naming the tensors it has that this model lacks.
#[derive(Config, Debug, PartialEq)]
pub struct VisionConfig {
    /// Input image side in pixels (square images), open_clip `image_size`.
    pub image_size: usize,
    /// Patch side in pixels (`conv1` kernel and stride).
    pub patch_size: usize,
    /// Transformer width (token dimension).
    pub width: usize,
    /// Number of residual attention blocks.
    pub layers: usize,
    /// Number of attention heads (`width / head_width` in open_clip configs).
    pub heads: usize,
    /// MLP hidden size as a multiple of `width` (hidden = `int(width * mlp_ratio)`).
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Output embedding size (`embed_dim`, columns of `proj`).
    pub output_dim: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// MLP activation.
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
    /// How the blocks compute attention (not part of the checkpoint). Fused by default: on
    /// flex, full-size ViT-H-14 at batch 1 took 4.36 s fused vs 4.92 s matmul; on ndarray the
    /// matmul kernel was faster (10.6 s vs 12.2 s) (`benches/vision_tower.rs`). On flex f32 with
    /// taiyi-nn's `flex` feature (taiyi-core's default) the blocks use taiyi-nn's parallel kernel
    /// whichever is named.
    #[config(default = "AttentionKernel::Fused")]
    pub attention_kernel: AttentionKernel,
}

impl VisionConfig {
    /// open_clip `ViT-H-14` (the image tower of Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese):
    /// 224 px, patch 14, width 1280, 32 layers, 16 heads of 80, MLP 5120, output 1024, GELU.
    pub fn vit_h_14() -> Self {
        Self::new(224, 14, 1280, 32, 16, 1024)
    }

    /// open_clip `ViT-L-14`: 224 px, patch 14, width 1024, 24 layers, 16 heads, output 768.
    pub fn vit_l_14() -> Self {
        Self::new(224, 14, 1024, 24, 16, 768)
    }

    /// open_clip `ViT-B-16`: 224 px, patch 16, width 768, 12 layers, 12 heads, output 512.
    pub fn vit_b_16() -> Self {
        Self::new(224, 16, 768, 12, 12, 512)
    }

    /// open_clip `ViT-B-32`: 224 px, patch 32, width 768, 12 layers, 12 heads, output 512.
    pub fn vit_b_32() -> Self {
        Self::new(224, 32, 768, 12, 12, 512)
    }

    /// The tiny random-weight model of the test fixtures (`scripts/fixtures/vision.py`):
    /// 224 px, patch 14 (257 tokens like ViT-H-14), width 24, 2 layers, 3 heads, output 16.
    pub fn tiny() -> Self {
        Self::new(224, 14, 24, 2, 3, 16)
    }

    /// The same architecture with QuickGELU (open_clip's `*-quickgelu` variants, OpenAI weights).
    pub fn quick_gelu(self) -> Self {
        self.with_activation(Activation::QuickGelu)
    }

    /// Side of the patch grid (`image_size / patch_size`).
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Number of tokens: patches plus the class token.
    pub fn num_tokens(&self) -> usize {
        self.grid_size() * self.grid_size() + 1
    }

    /// MLP hidden size, `int(width * mlp_ratio)` as in open_clip.
    pub fn mlp_width(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }

    /// Width of one attention head.
    pub fn head_width(&self) -> usize {
        self.width / self.heads.max(1)
    }

    /// Check that the numbers describe a buildable model.
    pub fn validate(&self) -> Result<(), VisionError> {
        let bad = |message: String| Err(VisionError::Config { message });
        if self.patch_size == 0 || self.image_size < self.patch_size {
            return bad(format!(
                "patch_size {} must be between 1 and image_size {}",
                self.patch_size, self.image_size
            ));
        }
        if self.width == 0 || self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(format!(
                "width {} must be a positive multiple of heads {}",
                self.width, self.heads
            ));
        }
        if self.layers == 0 || self.output_dim == 0 || self.mlp_width() == 0 {
            return bad(format!(
                "layers ({}), output_dim ({}) and the MLP width ({}) must be positive",
                self.layers,
                self.output_dim,
                self.mlp_width()
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!(
                "layer_norm_eps {} must be positive",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }
}
