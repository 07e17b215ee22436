//! Loading open_clip checkpoints into [`VisionTransformer`].

use std::path::{Path, PathBuf};

use burn::tensor::Element;
use burn::tensor::backend::Backend;
use taiyi_store::{Checkpoint, LoadSpec, StoreError, find_in_dir};

use crate::{DenseFormat, VisionConfig, VisionError, VisionTransformer};

/// open_clip's weight file names, in the order open_clip tries them.
pub const OPEN_CLIP_WEIGHT_FILES: &[&str] =
    &["open_clip_model.safetensors", "open_clip_pytorch_model.bin"];

/// The open_clip weights file in a model directory (safetensors first, as open_clip does).
pub fn open_clip_weights_in(dir: impl AsRef<Path>) -> Result<PathBuf, VisionError> {
    Ok(find_in_dir(dir.as_ref(), OPEN_CLIP_WEIGHT_FILES)?)
}

/// Largest `|logit_scale|` accepted: `exp()` within [1e-4, 1e4]. open_clip clamps it to
/// ln(100) ≈ 4.6 in training; beyond ln(1e4) the logits are absurd (and past ~88.7 `exp()`
/// overflows f32 to inf, which made every probability NaN).
pub const MAX_ABS_LOGIT_SCALE: f32 = 9.210_34;

/// A loaded image tower and the checkpoint's CLIP temperature.
#[derive(Debug)]
pub struct LoadedVision<B: Backend> {
    /// The image tower.
    pub model: VisionTransformer<B>,
    /// `logit_scale` as stored in the checkpoint (before `exp()`), if it has one.
    pub logit_scale: Option<f32>,
}

/// The fused attention projection is a plain tensor pair in PyTorch; here it is a `Linear`
/// (so the layout adapter transposes the weight). LayerNorm `weight`/`bias` are matched to
/// burn's `gamma`/`beta` by the store's layout adapter.
const REMAP: &[(&str, &str)] = &[
    (
        r"^(transformer\.resblocks\.\d+\.attn)\.in_proj_weight$",
        "${1}.in_proj.weight",
    ),
    (
        r"^(transformer\.resblocks\.\d+\.attn)\.in_proj_bias$",
        "${1}.in_proj.bias",
    ),
];

/// Top-level keys of a full open_clip checkpoint that belong to the (English) text tower and
/// are dropped: exact names, then prefixes.
const TEXT_TOWER_KEYS: &[&str] = &[
    "positional_embedding",
    "text_projection",
    "attn_mask",
    "logit_bias",
];
const TEXT_TOWER_PREFIXES: &[&str] = &["token_embedding.", "transformer.", "ln_final."];

fn is_text_tower(key: &str) -> bool {
    TEXT_TOWER_KEYS.contains(&key) || TEXT_TOWER_PREFIXES.iter().any(|p| key.starts_with(p))
}

impl<B: Backend> VisionTransformer<B> {
    /// Load the image tower from an open_clip checkpoint file.
    ///
    /// Accepts a full open_clip CLIP state dict (`.bin` torch pickle or `.safetensors`, as
    /// published: `visual.*` is loaded, `logit_scale` read, the text tower's
    /// `token_embedding`, `positional_embedding`, `transformer.*`, `ln_final`,
    /// `text_projection`, `attn_mask` and `logit_bias` ignored), a visual-only state dict (keys
    /// without `visual.`), or a training checkpoint (`state_dict` / `module.` wrappers).
    /// fp16/bf16 tensors are widened to the backend's float type.
    ///
    /// Errors name the file and the key: a tensor missing, one left unused, one of the wrong
    /// shape for `config`, an unreadable file, or a checkpoint without an image tower.
    pub fn load_open_clip(
        path: impl AsRef<Path>,
        config: &VisionConfig,
        device: &B::Device,
    ) -> Result<LoadedVision<B>, VisionError> {
        Self::load_open_clip_as(path, config, device, DenseFormat::Float)
    }

    /// [`VisionTransformer::load_open_clip`] with the blocks' linear weights held as `format`
    /// says ([`DenseFormat::PackedBf16`]: read as bf16 and prepacked for the CPU kernels).
    pub fn load_open_clip_as(
        path: impl AsRef<Path>,
        config: &VisionConfig,
        device: &B::Device,
        format: DenseFormat,
    ) -> Result<LoadedVision<B>, VisionError> {
        config.validate()?;
        let ckpt = Checkpoint::open(path)?;
        Self::load_from_checkpoint_as(ckpt, config, device, format)
    }

    /// [`VisionTransformer::load_open_clip`] from an already opened [`Checkpoint`].
    pub fn load_from_checkpoint(
        ckpt: Checkpoint,
        config: &VisionConfig,
        device: &B::Device,
    ) -> Result<LoadedVision<B>, VisionError> {
        Self::load_from_checkpoint_as(ckpt, config, device, DenseFormat::Float)
    }

    /// [`VisionTransformer::load_from_checkpoint`] with the blocks' linear weights held as
    /// `format` says ([`DenseFormat::PackedBf16`]: read as bf16 and prepacked for the CPU
    /// kernels).
    pub fn load_from_checkpoint_as(
        mut ckpt: Checkpoint,
        config: &VisionConfig,
        device: &B::Device,
        format: DenseFormat,
    ) -> Result<LoadedVision<B>, VisionError> {
        if format == DenseFormat::PackedBf16 {
            // A kernel this process cannot run is refused before seconds of reading.
            taiyi_nn::CpuKernel::selected()?;
        }
        let path = ckpt.source().to_path_buf();
        let logit_scale = take_logit_scale(&mut ckpt)?;
        let visual = if ckpt.keys().any(|k| k.starts_with("visual.")) {
            let visual = ckpt.split_prefix("visual.");
            let unexpected: Vec<String> = ckpt
                .keys()
                .filter(|k| !is_text_tower(k))
                .map(str::to_string)
                .collect();
            if !unexpected.is_empty() {
                return Err(StoreError::Unused {
                    path,
                    keys: unexpected,
                }
                .into());
            }
            visual
        } else if ckpt.contains("conv1.weight") || ckpt.contains("class_embedding") {
            ckpt
        } else {
            let hint = if ckpt.keys().any(|k| k.starts_with("vision_model.")) {
                " (it is a Hugging Face transformers CLIPModel checkpoint: use the open_clip \
                 files open_clip_model.safetensors / open_clip_pytorch_model.bin)"
            } else if ckpt
                .keys()
                .any(|k| k.contains("encoder.layer.") || k.contains("word_embeddings"))
            {
                " (it looks like a BERT text tower checkpoint)"
            } else {
                ""
            };
            return Err(VisionError::NoVisualTower {
                path,
                sample: ckpt.keys().take(5).map(str::to_string).collect(),
                hint: hint.to_string(),
            });
        };
        let model = config.init::<B>(device)?;
        let float = <B::FloatElem as Element>::dtype();
        let mut model = visual.load_into_with_dtypes::<B, _>(
            model,
            &LoadSpec {
                remap: REMAP,
                ..LoadSpec::default()
            },
            float,
            format.load_dtype(float),
        )?;
        if format == DenseFormat::PackedBf16 {
            model.prepack_bf16()?;
        }
        Ok(LoadedVision { model, logit_scale })
    }
}

/// `logit_scale` taken out of `ckpt` when present: one finite value within
/// [`MAX_ABS_LOGIT_SCALE`], else [`VisionError::LogitScale`].
pub(crate) fn take_logit_scale(ckpt: &mut Checkpoint) -> Result<Option<f32>, VisionError> {
    let path = ckpt.source().to_path_buf();
    if ckpt.contains("logit_scale") {
        let values = ckpt.take_f32("logit_scale")?;
        match values.as_slice() {
            [v] if v.is_finite() && v.abs() <= MAX_ABS_LOGIT_SCALE => Ok(Some(*v)),
            [v] if v.is_finite() => Err(VisionError::LogitScale {
                path,
                message: format!(
                    "{v} gives a temperature exp({v}) = {:e}, outside [1e-4, 1e4]",
                    v.exp()
                ),
            }),
            _ => Err(VisionError::LogitScale {
                path,
                message: format!("{} value(s): {values:?}", values.len()),
            }),
        }
    } else {
        Ok(None)
    }
}
