//! The open_clip `VisionTransformer` as a burn module.

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use taiyi_nn::{
    Activation, AttentionKernel, Dense, DenseConfig, KernelError, attend, linear_rows,
    linear_rows_then, split_qkv,
};

use crate::VisionError;
use crate::config::VisionConfig;

/// Fused `q, k, v` projection, output projection and the head split of open_clip's
/// `nn.MultiheadAttention` (no mask, no dropout).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Fused input projection `width -> 3 * width`; the checkpoint's `in_proj_weight` /
    /// `in_proj_bias` (rows q, k, v in that order) are loaded here.
    pub in_proj: Dense<B>,
    /// Output projection `width -> width`.
    pub out_proj: Dense<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    kernel: AttentionKernel,
}

impl<B: Backend> Attention<B> {
    /// Assemble from the fused input projection (`width -> 3 * width`, columns q, k, v) and
    /// the output projection.
    pub(crate) fn new(
        in_proj: Dense<B>,
        out_proj: Dense<B>,
        heads: usize,
        kernel: AttentionKernel,
    ) -> Self {
        Self {
            in_proj,
            out_proj,
            heads,
            kernel,
        }
    }

    /// Self-attention over every image's tokens.
    ///
    /// # Shapes
    /// `x`: `[batch, tokens, width]` → `[batch, tokens, width]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (q, k, v) = split_qkv(linear_rows(&self.in_proj, x));
        let ctx = attend(q, k, v, self.heads, None, self.kernel);
        linear_rows(&self.out_proj, ctx)
    }
}

/// The block MLP: `c_fc`, activation, `c_proj`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `width -> mlp_width`.
    pub c_fc: Dense<B>,
    /// `mlp_width -> width`.
    pub c_proj: Dense<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// Assemble from its two layers.
    pub(crate) fn new(c_fc: Dense<B>, c_proj: Dense<B>, activation: Activation) -> Self {
        Self {
            c_fc,
            c_proj,
            activation,
        }
    }

    /// `c_proj(activation(c_fc(x)))`.
    ///
    /// # Shapes
    /// `x`: `[batch, tokens, width]` → `[batch, tokens, width]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = linear_rows_then(&self.c_fc, x, self.activation);
        linear_rows(&self.c_proj, h)
    }
}

/// open_clip `ResidualAttentionBlock` (pre-LN, no layer scale):
/// `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct ResidualAttentionBlock<B: Backend> {
    /// Norm before attention.
    pub ln_1: LayerNorm<B>,
    /// Multi-head self-attention.
    pub attn: Attention<B>,
    /// Norm before the MLP.
    pub ln_2: LayerNorm<B>,
    /// Feed-forward network.
    pub mlp: Mlp<B>,
}

impl<B: Backend> ResidualAttentionBlock<B> {
    /// One pre-LN block.
    ///
    /// # Shapes
    /// `x`: `[batch, tokens, width]` → `[batch, tokens, width]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x));
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }
}

/// The stack of blocks (`transformer.resblocks.N` in the checkpoint).
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    /// The blocks, in order.
    pub resblocks: Vec<ResidualAttentionBlock<B>>,
}

/// open_clip `VisionTransformer` (ViT-H-14 and the other plain CLIP ViTs). Field names follow
/// the checkpoint's `visual.*` keys.
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch embedding: `3 -> width`, kernel = stride = `patch_size`, no bias.
    pub conv1: Conv2d<B>,
    /// Class token `[width]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// Learnable positional embedding `[tokens, width]`.
    pub positional_embedding: Param<Tensor<B, 2>>,
    /// Norm applied to the embedded tokens.
    pub ln_pre: LayerNorm<B>,
    /// The residual attention blocks.
    pub transformer: Transformer<B>,
    /// Final norm (applied to the class token).
    pub ln_post: LayerNorm<B>,
    /// Output projection `[width, output_dim]`, used as `pooled @ proj` (stored layout, no
    /// transpose).
    pub proj: Param<Tensor<B, 2>>,
    #[module(skip)]
    pub(crate) image_size: usize,
    #[module(skip)]
    pub(crate) output_dim: usize,
}

impl VisionConfig {
    /// Build a [`VisionTransformer`] with lazily initialised random weights (the initialiser of
    /// a parameter that is then loaded from a checkpoint never runs).
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<VisionTransformer<B>, VisionError> {
        self.validate()?;
        let w = self.width;
        let std = (w as f64).powf(-0.5);
        let normal = Initializer::Normal { mean: 0.0, std };
        let ln = || {
            LayerNormConfig::new(w)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let resblocks = (0..self.layers)
            .map(|_| ResidualAttentionBlock {
                ln_1: ln(),
                attn: Attention {
                    in_proj: DenseConfig::new(w, 3 * w).init(device),
                    out_proj: DenseConfig::new(w, w).init(device),
                    heads: self.heads,
                    kernel: self.attention_kernel,
                },
                ln_2: ln(),
                mlp: Mlp {
                    c_fc: DenseConfig::new(w, self.mlp_width()).init(device),
                    c_proj: DenseConfig::new(self.mlp_width(), w).init(device),
                    activation: self.activation,
                },
            })
            .collect();
        Ok(VisionTransformer {
            conv1: Conv2dConfig::new([3, w], [self.patch_size, self.patch_size])
                .with_stride([self.patch_size, self.patch_size])
                .with_bias(false)
                .init(device),
            class_embedding: normal.init([w], device),
            positional_embedding: normal.init([self.num_tokens(), w], device),
            ln_pre: ln(),
            transformer: Transformer { resblocks },
            ln_post: ln(),
            proj: normal.init([w, self.output_dim], device),
            image_size: self.image_size,
            output_dim: self.output_dim,
        })
    }
}

impl<B: Backend> VisionTransformer<B> {
    /// Input image side in pixels.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Output embedding size.
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Hold every block's linear weights (`in_proj`, `out_proj`, `c_fc`, `c_proj`) prepacked in
    /// bf16 for the CPU kernels ([`Dense::prepack_bf16`]), one layer at a time so that the
    /// extra memory is one layer's. The patch embedding, norms, embeddings and `proj` stay as
    /// they are, and so does the residual stream (f32).
    ///
    /// # Errors
    /// On any backend but burn's `Flex`, or when the process's bf16 kernel cannot run.
    pub fn prepack_bf16(&mut self) -> Result<(), KernelError> {
        for block in &mut self.transformer.resblocks {
            for dense in [
                &mut block.attn.in_proj,
                &mut block.attn.out_proj,
                &mut block.mlp.c_fc,
                &mut block.mlp.c_proj,
            ] {
                dense.prepack_bf16()?;
            }
        }
        Ok(())
    }

    /// Weights held prepacked in bf16 (elements; 0 unless [`Self::prepack_bf16`] ran).
    pub fn packed_params(&self) -> usize {
        self.transformer
            .resblocks
            .iter()
            .flat_map(|b| {
                [
                    &b.attn.in_proj,
                    &b.attn.out_proj,
                    &b.mlp.c_fc,
                    &b.mlp.c_proj,
                ]
            })
            .filter_map(|d| d.packed().map(|p| p.k() * p.n()))
            .sum()
    }

    /// Choose how attention scores are computed (see [`AttentionKernel`]; the default is the
    /// config's `attention_kernel`).
    pub fn with_attention_kernel(mut self, kernel: AttentionKernel) -> Self {
        for block in &mut self.transformer.resblocks {
            block.attn.kernel = kernel;
        }
        self
    }

    /// Image embeddings, as open_clip `encode_image` (not normalised).
    ///
    /// `pixels: [batch, 3, image_size, image_size]` (normalised CHW, as produced by the
    /// open_clip transform) → `[batch, output_dim]`.
    ///
    /// # Panics
    /// On an input of another shape; use [`VisionTransformer::try_forward`] for an error instead.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 2> {
        let [batch, _, _, _] = pixels.dims();
        // Pixels come from host data; compute in the weights' dtype (f16/bf16 models).
        let pixels = pixels.cast(self.conv1.weight.val().dtype());
        let patches = self.conv1.forward(pixels); // [B, W, g, g]
        let [_, width, gh, gw] = patches.dims();
        let patches = patches.reshape([batch, width, gh * gw]).swap_dims(1, 2);
        let class = self
            .class_embedding
            .val()
            .reshape([1, 1, width])
            .expand([batch, 1, width]);
        let x = Tensor::cat(vec![class, patches], 1);
        let x = x + self.positional_embedding.val().unsqueeze_dim::<3>(0);
        let mut x = self.ln_pre.forward(x);
        for block in &self.transformer.resblocks {
            x = block.forward(x);
        }
        // ln_post is per token, so normalising only the class tokens equals open_clip's
        // `ln_post(x)[:, 0]`.
        let cls = x.narrow(1, 0, 1).reshape([batch, width]);
        self.ln_post.forward(cls).matmul(self.proj.val())
    }

    /// [`VisionTransformer::forward`] that checks the input shape first:
    /// `pixels` must be `[batch >= 1, 3, image_size, image_size]`.
    pub fn try_forward(&self, pixels: Tensor<B, 4>) -> Result<Tensor<B, 2>, VisionError> {
        let dims = pixels.dims();
        let s = self.image_size;
        if dims[0] == 0 || dims[1] != 3 || dims[2] != s || dims[3] != s {
            return Err(VisionError::InputShape {
                expected: format!("[batch >= 1, 3, {s}, {s}]"),
                found: dims.to_vec(),
            });
        }
        Ok(self.forward(pixels))
    }
}
