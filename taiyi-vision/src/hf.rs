//! The Hugging Face CLIP-layout vision tower (transformers' `CLIPVisionModel` and
//! `ChineseCLIPVisionModel` keys, as in OFA-Sys Chinese-CLIP's `ChineseCLIPModel` checkpoints).
//!
//! The architecture is open_clip's plain pre-LN ViT: only the keys differ (separate
//! `q_proj` / `k_proj` / `v_proj` instead of the fused `in_proj`, `fc1` / `fc2`,
//! `visual_projection` a bias-free `Linear`). The checkpoint is read into [`HfClipVision`],
//! whose field names follow its keys, and then moved into a [`VisionTransformer`]
//! ([`HfClipVision::into_open_clip`]: the three projections become one fused `in_proj`), so
//! both layouts run the same code: the CPU kernels, the bf16 path and the GPU backends.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Element, Tensor};
use serde::Deserialize;
use taiyi_nn::{Activation, Dense, DenseConfig, DenseFormat};
use taiyi_store::{Checkpoint, LoadSpec};

use crate::load::take_logit_scale;
use crate::model::{Attention, Mlp, ResidualAttentionBlock, Transformer};
use crate::{LoadedVision, VisionConfig, VisionError, VisionTransformer};

/// `vision_config` of a transformers `CLIPConfig` / `ChineseCLIPConfig` (`config.json`):
/// the fields that define the tower; defaults as `ChineseCLIPVisionConfig.__init__`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HfClipVisionConfig {
    /// Width of the residual stream.
    #[serde(default = "default_hidden")]
    pub hidden_size: usize,
    /// MLP hidden width.
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    /// Blocks.
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "default_layers")]
    pub num_attention_heads: usize,
    /// Input channels (3).
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    /// Input side in pixels.
    #[serde(default = "default_image")]
    pub image_size: usize,
    /// Patch side in pixels.
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    /// `quick_gelu` (the default) or `gelu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_hidden() -> usize {
    768
}
fn default_intermediate() -> usize {
    3072
}
fn default_layers() -> usize {
    12
}
fn default_channels() -> usize {
    3
}
fn default_image() -> usize {
    224
}
fn default_patch() -> usize {
    32
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}

impl HfClipVisionConfig {
    /// The [`VisionConfig`] of this tower with `projection_dim` outputs (the model's
    /// `visual_projection`).
    ///
    /// # Errors
    /// [`VisionError::Config`] for an activation other than `quick_gelu` / `gelu`, other than 3
    /// channels, an MLP width that is not a whole ratio of the width, or a config that
    /// [`VisionConfig::validate`] refuses.
    pub fn to_vision_config(&self, projection_dim: usize) -> Result<VisionConfig, VisionError> {
        let bad = |message: String| Err(VisionError::Config { message });
        let activation = match self.hidden_act.as_str() {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            other => {
                return bad(format!(
                    "hidden_act \"{other}\" is not supported (only \"quick_gelu\" and \"gelu\")"
                ));
            }
        };
        if self.num_channels != 3 {
            return bad(format!(
                "num_channels {} is not supported (RGB images: 3)",
                self.num_channels
            ));
        }
        let config = VisionConfig::new(
            self.image_size,
            self.patch_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            projection_dim,
        )
        .with_mlp_ratio(self.intermediate_size as f64 / self.hidden_size.max(1) as f64)
        .with_layer_norm_eps(self.layer_norm_eps)
        .with_activation(activation);
        config.validate()?;
        if config.mlp_width() != self.intermediate_size {
            return bad(format!(
                "intermediate_size {} is not representable as a ratio of hidden_size {}",
                self.intermediate_size, self.hidden_size
            ));
        }
        Ok(config)
    }
}

/// A transformers CLIP-layout image tower with its projection, field names as the checkpoint's
/// keys (`vision_model.*`, `visual_projection.weight`). A loading shell: run it as a
/// [`VisionTransformer`] ([`HfClipVision::into_open_clip`]).
#[derive(Module, Debug)]
pub struct HfClipVision<B: Backend> {
    /// `vision_model`.
    pub vision_model: HfVisionModel<B>,
    /// `visual_projection`: `width -> output_dim`, no bias.
    pub visual_projection: Dense<B>,
}

/// `vision_model`: embeddings, `pre_layrnorm` (sic), encoder, `post_layernorm`.
#[derive(Module, Debug)]
pub struct HfVisionModel<B: Backend> {
    /// `embeddings`.
    pub embeddings: HfVisionEmbeddings<B>,
    /// `pre_layrnorm` (transformers' spelling).
    pub pre_layrnorm: LayerNorm<B>,
    /// `encoder`.
    pub encoder: HfEncoder<B>,
    /// `post_layernorm`.
    pub post_layernorm: LayerNorm<B>,
}

/// `embeddings`: class token, patch convolution, learned positions.
#[derive(Module, Debug)]
pub struct HfVisionEmbeddings<B: Backend> {
    /// `[width]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// `3 -> width`, kernel = stride = patch, no bias.
    pub patch_embedding: Conv2d<B>,
    /// `[tokens, width]` (an `nn.Embedding`).
    pub position_embedding: Embedding<B>,
}

/// `encoder`.
#[derive(Module, Debug)]
pub struct HfEncoder<B: Backend> {
    /// `layers.N`.
    pub layers: Vec<HfEncoderLayer<B>>,
}

/// `encoder.layers.N`: pre-LN block.
#[derive(Module, Debug)]
pub struct HfEncoderLayer<B: Backend> {
    /// `self_attn`.
    pub self_attn: HfAttention<B>,
    /// `layer_norm1` (before attention).
    pub layer_norm1: LayerNorm<B>,
    /// `mlp`.
    pub mlp: HfMlp<B>,
    /// `layer_norm2` (before the MLP).
    pub layer_norm2: LayerNorm<B>,
}

/// `self_attn`: separate projections.
#[derive(Module, Debug)]
pub struct HfAttention<B: Backend> {
    /// `q_proj`.
    pub q_proj: Dense<B>,
    /// `k_proj`.
    pub k_proj: Dense<B>,
    /// `v_proj`.
    pub v_proj: Dense<B>,
    /// `out_proj`.
    pub out_proj: Dense<B>,
}

/// `mlp`: `fc1`, activation, `fc2`.
#[derive(Module, Debug)]
pub struct HfMlp<B: Backend> {
    /// `fc1`.
    pub fc1: Dense<B>,
    /// `fc2`.
    pub fc2: Dense<B>,
}

/// Tensors of a `ChineseCLIPModel` / `CLIPModel` checkpoint that the image tower leaves: the
/// text tower and its projection, `logit_scale` (read separately) and the legacy
/// `position_ids` buffer.
pub const HF_CLIP_IGNORE: &[&str] = &[
    r"^text_model\.",
    r"^text_projection\.weight$",
    r"^vision_model\.embeddings\.position_ids$",
];

impl VisionConfig {
    /// A random (lazily initialised) [`HfClipVision`] of this architecture.
    pub fn init_hf<B: Backend>(&self, device: &B::Device) -> Result<HfClipVision<B>, VisionError> {
        self.validate()?;
        let w = self.width;
        let ln = || {
            LayerNormConfig::new(w)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let dense = |i: usize, o: usize| DenseConfig::new(i, o).init(device);
        let layers = (0..self.layers)
            .map(|_| HfEncoderLayer {
                self_attn: HfAttention {
                    q_proj: dense(w, w),
                    k_proj: dense(w, w),
                    v_proj: dense(w, w),
                    out_proj: dense(w, w),
                },
                layer_norm1: ln(),
                mlp: HfMlp {
                    fc1: dense(w, self.mlp_width()),
                    fc2: dense(self.mlp_width(), w),
                },
                layer_norm2: ln(),
            })
            .collect();
        Ok(HfClipVision {
            vision_model: HfVisionModel {
                embeddings: HfVisionEmbeddings {
                    class_embedding: burn::module::Initializer::Zeros.init([w], device),
                    patch_embedding: Conv2dConfig::new([3, w], [self.patch_size, self.patch_size])
                        .with_stride([self.patch_size, self.patch_size])
                        .with_bias(false)
                        .init(device),
                    position_embedding: EmbeddingConfig::new(self.num_tokens(), w).init(device),
                },
                pre_layrnorm: ln(),
                encoder: HfEncoder { layers },
                post_layernorm: ln(),
            },
            visual_projection: DenseConfig::new(w, self.output_dim)
                .with_bias(false)
                .init(device),
        })
    }
}

impl<B: Backend> HfClipVision<B> {
    /// The same weights as a [`VisionTransformer`] of `config` (the one this shell was made
    /// for): `q_proj`, `k_proj`, `v_proj` fused into `in_proj` (output columns q, k, v, as
    /// open_clip stores them), the other tensors moved.
    ///
    /// # Errors
    /// [`VisionError::Bf16`] if the projections cannot be concatenated (prepacked layers).
    pub fn into_open_clip(
        self,
        config: &VisionConfig,
    ) -> Result<VisionTransformer<B>, VisionError> {
        let vm = self.vision_model;
        let resblocks = vm
            .encoder
            .layers
            .into_iter()
            .map(|layer| {
                let a = layer.self_attn;
                Ok(ResidualAttentionBlock {
                    ln_1: layer.layer_norm1,
                    attn: Attention::new(
                        Dense::concat_outputs(vec![a.q_proj, a.k_proj, a.v_proj])?,
                        a.out_proj,
                        config.heads,
                        config.attention_kernel,
                    ),
                    ln_2: layer.layer_norm2,
                    mlp: Mlp::new(layer.mlp.fc1, layer.mlp.fc2, config.activation),
                })
            })
            .collect::<Result<Vec<_>, VisionError>>()?;
        let emb = vm.embeddings;
        // `visual_projection` is `[width, output_dim]` once loaded (burn's Linear layout), which
        // is open_clip's `proj` as used: `pooled @ proj`; in the tower's float type (a bf16 load
        // reads every linear weight as bf16, and `proj` is not a prepacked layer).
        let float = emb.class_embedding.val().dtype();
        let proj = Param::from_tensor(self.visual_projection.weight.val().cast(float));
        Ok(VisionTransformer {
            conv1: emb.patch_embedding,
            class_embedding: emb.class_embedding,
            positional_embedding: emb.position_embedding.weight,
            ln_pre: vm.pre_layrnorm,
            transformer: Transformer { resblocks },
            ln_post: vm.post_layernorm,
            proj,
            image_size: config.image_size,
            output_dim: config.output_dim,
        })
    }
}

impl<B: Backend> VisionTransformer<B> {
    /// Load the image tower of a transformers `ChineseCLIPModel` (or `CLIPModel`) checkpoint:
    /// `vision_model.*` and `visual_projection.weight` for `config`, strictly (every
    /// `vision_model.*` key used, none missing or mis-shaped; [`HF_CLIP_IGNORE`] lists what is
    /// left), plus `logit_scale` when present. Run as open_clip's layout
    /// ([`HfClipVision::into_open_clip`]).
    pub fn load_hf_clip_as(
        mut ckpt: Checkpoint,
        config: &VisionConfig,
        device: &B::Device,
        format: DenseFormat,
    ) -> Result<LoadedVision<B>, VisionError> {
        config.validate()?;
        if format == DenseFormat::PackedBf16 {
            // A kernel this process cannot run is refused before seconds of reading.
            taiyi_nn::CpuKernel::selected()?;
        }
        let logit_scale = take_logit_scale(&mut ckpt)?;
        let float = <B::FloatElem as Element>::dtype();
        let shell = ckpt.load_into_with_dtypes::<B, _>(
            config.init_hf::<B>(device)?,
            &LoadSpec {
                ignore: HF_CLIP_IGNORE,
                ..LoadSpec::default()
            },
            float,
            format.load_dtype(float),
        )?;
        let mut model = shell.into_open_clip(config)?;
        if format == DenseFormat::PackedBf16 {
            model.prepack_bf16()?;
        }
        Ok(LoadedVision { model, logit_scale })
    }
}
