//! The open_clip `VisionTransformer` as a burn module.

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::VisionError;
use crate::config::{Activation, VisionConfig};

/// How the attention scores `softmax(q kᵀ / √d) v` are computed.
///
/// The default is [`AttentionKernel::Fused`]: on a shared 2-core CPU, full-size ViT-H-14 at
/// batch 1 took 4.36 s (fused) vs 4.92 s (matmul) on flex; on ndarray the matmul path was
/// faster (10.6 s vs 12.2 s), so pick [`AttentionKernel::Matmul`] there
/// (`benches/vision_tower.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// `burn::tensor::module::attention`, the backend's fused scaled-dot-product attention
    /// (flash attention on CubeCL backends with autotune).
    #[default]
    Fused,
    /// Two batched matmuls around an explicit softmax.
    Matmul,
}

/// Fused `q, k, v` projection, output projection and the head split of open_clip's
/// `nn.MultiheadAttention` (no mask, no dropout).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Fused input projection `width -> 3 * width`; the checkpoint's `in_proj_weight` /
    /// `in_proj_bias` (rows q, k, v in that order) are loaded here.
    pub in_proj: Linear<B>,
    /// Output projection `width -> width`.
    pub out_proj: Linear<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    kernel: AttentionKernel,
}

impl<B: Backend> Attention<B> {
    /// Self-attention over `x: [batch * tokens, width]` laid out batch-major;
    /// returns `[batch * tokens, width]`.
    pub fn forward(&self, x: Tensor<B, 2>, batch: usize) -> Tensor<B, 2> {
        let [rows, width] = x.dims();
        let tokens = rows / batch;
        let heads = self.heads;
        let head_dim = width / heads;
        // [B*T, 3W] -> [B, T, 3, H, D] -> [3, B, H, T, D]
        let qkv = self
            .in_proj
            .forward(x)
            .reshape([batch, tokens, 3, heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| -> Tensor<B, 4> {
            qkv.clone()
                .narrow(0, i, 1)
                .reshape([batch, heads, tokens, head_dim])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = (head_dim as f64).powf(-0.5);
        let ctx = match self.kernel {
            AttentionKernel::Fused => attention(
                q,
                k,
                v,
                None,
                None,
                AttentionModuleOptions {
                    scale: Some(scale),
                    softcap: None,
                    is_causal: false,
                },
            ),
            AttentionKernel::Matmul => {
                let scores = q.mul_scalar(scale).matmul(k.swap_dims(2, 3));
                softmax(scores, 3).matmul(v)
            }
        };
        // [B, H, T, D] -> [B, T, H, D] -> [B*T, W]
        let ctx = ctx.swap_dims(1, 2).reshape([rows, width]);
        self.out_proj.forward(ctx)
    }
}

/// The block MLP: `c_fc`, activation, `c_proj`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `width -> mlp_width`.
    pub c_fc: Linear<B>,
    /// `mlp_width -> width`.
    pub c_proj: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// `x: [rows, width] -> [rows, width]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.c_fc.forward(x);
        let h = match self.activation {
            Activation::Gelu => gelu(h),
            Activation::QuickGelu => h.clone() * sigmoid(h.mul_scalar(1.702)),
        };
        self.c_proj.forward(h)
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
    /// `x: [batch * tokens, width] -> [batch * tokens, width]`.
    pub fn forward(&self, x: Tensor<B, 2>, batch: usize) -> Tensor<B, 2> {
        let x = x.clone() + self.attn.forward(self.ln_1.forward(x), batch);
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
    image_size: usize,
    #[module(skip)]
    output_dim: usize,
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
                    in_proj: LinearConfig::new(w, 3 * w).init(device),
                    out_proj: LinearConfig::new(w, w).init(device),
                    heads: self.heads,
                    kernel: AttentionKernel::default(),
                },
                ln_2: ln(),
                mlp: Mlp {
                    c_fc: LinearConfig::new(w, self.mlp_width()).init(device),
                    c_proj: LinearConfig::new(self.mlp_width(), w).init(device),
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

    /// Choose how attention scores are computed (see [`AttentionKernel`]).
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
        let tokens = gh * gw + 1;
        let x = x + self.positional_embedding.val().unsqueeze_dim::<3>(0);
        let mut x = self.ln_pre.forward(x.reshape([batch * tokens, width]));
        for block in &self.transformer.resblocks {
            x = block.forward(x, batch);
        }
        // ln_post is per token, so normalising only the class tokens equals open_clip's
        // `ln_post(x)[:, 0]`.
        let cls = x
            .reshape([batch, tokens, width])
            .narrow(1, 0, 1)
            .reshape([batch, width]);
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
