//! [`ClipOptions`]: how a [`crate::ClipModel`] is loaded, and the one place where a caller's
//! choices (CLI flags, `taiyi serve`, the Python keyword arguments) meet the device's and the
//! model family's defaults.

use taiyi_text::{DenseFormat, TextMode};
use taiyi_vision::VisionConfig;

use crate::{ClipError, DeviceSpec, Family, ModelDir, Precision, ShapeBuckets};

/// Options for loading a [`crate::ClipModel`].
#[derive(Debug, Clone)]
pub struct ClipOptions {
    /// Architecture of the image tower (default: open_clip ViT-H-14).
    pub vision: VisionConfig,
    /// How texts are padded / masked (default: the model card's).
    pub text_mode: TextMode,
    /// Texts per forward pass.
    pub text_batch_size: usize,
    /// Images per forward pass.
    pub image_batch_size: usize,
    /// Shape buckets for both towers (see [`ShapeBuckets`]).
    pub buckets: ShapeBuckets,
    /// How the towers hold their linear weights ([`DeviceSpec::dense_format`]: prepacked bf16
    /// for `--precision bf16` on the CPU).
    pub weights: DenseFormat,
}

impl Default for ClipOptions {
    /// CPU defaults: 32 texts / 8 images per pass, no shape buckets.
    fn default() -> Self {
        Self {
            vision: VisionConfig::vit_h_14(),
            text_mode: TextMode::default(),
            text_batch_size: crate::encoders::DEFAULT_TEXT_BATCH,
            image_batch_size: crate::encoders::DEFAULT_IMAGE_BATCH,
            buckets: ShapeBuckets::NONE,
            weights: DenseFormat::Float,
        }
    }
}

impl ClipOptions {
    /// [`ClipOptions::for_device`] with the weights `precision` asks for on `device`
    /// ([`DeviceSpec::dense_format`]).
    pub fn for_run(device: DeviceSpec, precision: Precision) -> Self {
        Self {
            weights: device.dense_format(precision),
            ..Self::for_device(device)
        }
    }

    /// Defaults sized for `device`: on GPUs 128 texts / 64 images per pass and
    /// [`ShapeBuckets::GPU`]; on the CPU [`ClipOptions::default`].
    pub fn for_device(device: DeviceSpec) -> Self {
        match device {
            DeviceSpec::Cpu => Self::default(),
            DeviceSpec::Wgpu(_) | DeviceSpec::Cuda(_) => Self {
                text_batch_size: crate::encoders::GPU_TEXT_BATCH,
                image_batch_size: crate::encoders::GPU_IMAGE_BATCH,
                buckets: ShapeBuckets::GPU,
                ..Self::default()
            },
        }
    }
}

/// What a caller may choose over [`ClipOptions::choose`]'s defaults; `None` / `false` keeps the
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionChoices {
    /// Text mode (default: the family's, [`Family::default_text_mode`]).
    pub text_mode: Option<TextMode>,
    /// Texts per forward pass (default: the device's).
    pub text_batch_size: Option<usize>,
    /// Images per forward pass (default: the device's).
    pub image_batch_size: Option<usize>,
    /// Turn the device's shape buckets off.
    pub no_buckets: bool,
}

impl ClipOptions {
    /// The options for a model of `family` on `device` in `precision`:
    /// [`ClipOptions::for_run`]'s batch sizes, buckets and weight format, the family's text
    /// mode, then the caller's `choices` over them. The image tower stays the default
    /// ViT-H-14 until [`ClipOptions::with_vision`] names the model's own.
    pub fn choose(
        family: Family,
        device: DeviceSpec,
        precision: Precision,
        choices: &OptionChoices,
    ) -> Self {
        let defaults = Self::for_run(device, precision);
        Self {
            text_mode: choices
                .text_mode
                .unwrap_or_else(|| family.default_text_mode()),
            text_batch_size: choices.text_batch_size.unwrap_or(defaults.text_batch_size),
            image_batch_size: choices
                .image_batch_size
                .unwrap_or(defaults.image_batch_size),
            buckets: if choices.no_buckets {
                ShapeBuckets::NONE
            } else {
                defaults.buckets
            },
            ..defaults
        }
    }

    /// The same options with the image tower `vision` (see [`vision_config_for`]).
    pub fn with_vision(self, vision: VisionConfig) -> Self {
        Self { vision, ..self }
    }
}

/// The image tower of a model: a model directory's own (its `config.json`), else, for the
/// Taiyi pair, the open_clip architecture `taiyi_arch` names ([`crate::arch::vision_config`]:
/// a preset name or an open_clip model-config JSON file).
pub fn vision_config_for(
    model: Option<&ModelDir>,
    taiyi_arch: &str,
) -> Result<VisionConfig, ClipError> {
    match model {
        Some(dir) => Ok(dir.vision.clone()),
        None => crate::arch::vision_config(taiyi_arch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_takes_the_family_mode_the_device_sizes_and_the_callers_choices() {
        let none = OptionChoices::default();
        let taiyi = ClipOptions::choose(Family::Taiyi, DeviceSpec::Cpu, Precision::F32, &none);
        assert_eq!(taiyi.text_mode, TextMode::ModelCard);
        assert_eq!(taiyi.text_batch_size, crate::DEFAULT_TEXT_BATCH);
        assert_eq!(taiyi.buckets, ShapeBuckets::NONE);
        assert_eq!(taiyi.weights, DenseFormat::Float);
        let cn = ClipOptions::choose(Family::ChineseClip, DeviceSpec::Cpu, Precision::F32, &none);
        assert_eq!(cn.text_mode, TextMode::Masked);

        let gpu = ClipOptions::choose(Family::Taiyi, DeviceSpec::Cuda(0), Precision::F32, &none);
        assert_eq!(gpu.image_batch_size, crate::GPU_IMAGE_BATCH);
        assert_eq!(gpu.buckets, ShapeBuckets::GPU);

        let chosen = OptionChoices {
            text_mode: Some(TextMode::Fixed77),
            text_batch_size: Some(3),
            image_batch_size: Some(5),
            no_buckets: true,
        };
        let o = ClipOptions::choose(
            Family::ChineseClip,
            DeviceSpec::Cuda(0),
            Precision::F32,
            &chosen,
        );
        assert_eq!(
            (
                o.text_mode,
                o.text_batch_size,
                o.image_batch_size,
                o.buckets
            ),
            (TextMode::Fixed77, 3, 5, ShapeBuckets::NONE)
        );
        let bf16 = ClipOptions::choose(Family::Taiyi, DeviceSpec::Cpu, Precision::Bf16, &none);
        assert_eq!(bf16.weights, DeviceSpec::Cpu.dense_format(Precision::Bf16));
    }

    #[test]
    fn the_image_tower_is_the_directorys_own_else_the_named_architecture() {
        let h14 = vision_config_for(None, "ViT-H-14").map(|c| c.width);
        assert_eq!(h14.ok(), Some(VisionConfig::vit_h_14().width));
        assert!(vision_config_for(None, "ViT-Q-99").is_err());
        let with = ClipOptions::default().with_vision(VisionConfig::vit_h_14().quick_gelu());
        assert_eq!(with.vision, VisionConfig::vit_h_14().quick_gelu());
    }
}
