//! Model families and where a model comes from: [`Family`], [`ModelSource`], [`ModelDir`].
//!
//! Two families run here: **Taiyi-CLIP** (a HF BERT text directory + an open_clip image
//! checkpoint: two paths, [`ModelPaths`]) and **OFA-Sys Chinese-CLIP** (one transformers
//! `ChineseCLIPModel` directory: `config.json` with `text_config` / `vision_config` /
//! `projection_dim`, `pytorch_model.bin` or `model.safetensors`, `vocab.txt`,
//! `preprocessor_config.json`). A directory's family is read from its `config.json`'s
//! `model_type` ([`ModelDir::open`]). A third family plugs in as a [`Family`] variant, a
//! `model_type` in [`Family::from_model_type`], and its two tower loaders.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use taiyi_preprocess::transform::{HfImageProcessorConfig, ImageTransform};
use taiyi_text::TextMode;
use taiyi_vision::{HfClipVisionConfig, VisionConfig};

use crate::ClipError;
use crate::hub::{HubOptions, ModelPaths};

/// A family of Chinese CLIP models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IDEA-CCNL Taiyi-CLIP: HF `BertModel` pooler output + open_clip ViT.
    Taiyi,
    /// OFA-Sys Chinese-CLIP: transformers `ChineseCLIPModel` (`[CLS]` + `text_projection`,
    /// CLIP-layout ViT + `visual_projection`).
    ChineseClip,
}

impl Family {
    /// The name `/info`, `--help` and errors use: `taiyi`, `chinese-clip`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Taiyi => "taiyi",
            Family::ChineseClip => "chinese-clip",
        }
    }

    /// The family of a model directory's `config.json` `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "chinese_clip" => Some(Family::ChineseClip),
            _ => None,
        }
    }

    /// The text mode of the family's model card: Taiyi's card pads to the longest text with
    /// no attention mask ([`TextMode::ModelCard`]); Chinese-CLIP's passes the tokenizer's
    /// attention mask ([`TextMode::Masked`]).
    pub fn default_text_mode(self) -> TextMode {
        match self {
            Family::Taiyi => TextMode::ModelCard,
            Family::ChineseClip => TextMode::Masked,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The top of a `ChineseCLIPConfig` `config.json` (the text part is read by
/// `taiyi_text::read_config`).
#[derive(Debug, Deserialize)]
struct HfClipConfig {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    projection_dim: Option<usize>,
    #[serde(default)]
    vision_config: Option<HfClipVisionConfig>,
    #[serde(default)]
    vision_config_dict: Option<HfClipVisionConfig>,
}

/// A one-directory model (today: Chinese-CLIP), its family and image-tower architecture read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its family, from `config.json`'s `model_type`.
    pub family: Family,
    /// The image tower's architecture (`vision_config`, output `projection_dim`).
    pub vision: VisionConfig,
}

/// Weight files of a one-directory model, in order of preference.
pub const MODEL_DIR_WEIGHTS: &[&str] = taiyi_text::WEIGHT_FILES;

impl ModelDir {
    /// Read `dir/config.json` and tell its family.
    ///
    /// # Errors
    /// [`ClipError::ModelDir`] when `dir` is not a directory, has no readable `config.json`,
    /// or its `model_type` names no family that runs from one directory (a Taiyi text
    /// directory is `bert`: give it with its open_clip checkpoint instead); the image tower's
    /// config errors as [`ClipError::Vision`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ClipError> {
        let dir = dir.as_ref();
        let bad = |message: String| ClipError::ModelDir {
            dir: dir.to_path_buf(),
            message,
        };
        if !dir.is_dir() {
            return Err(bad("not a directory".into()));
        }
        let path = dir.join("config.json");
        let text = taiyi_store::input::read_input_to_string(
            &path,
            taiyi_store::input::InputKind::JSON_CONFIG,
        )
        .map_err(|source| ClipError::Read {
            what: "model config",
            path: path.clone(),
            source,
        })?;
        let config: HfClipConfig =
            serde_json::from_str(&text).map_err(|source| ClipError::ModelConfig {
                path: path.clone(),
                source,
            })?;
        let model_type = config.model_type.unwrap_or_default();
        let family = Family::from_model_type(&model_type).ok_or_else(|| {
            bad(format!(
                "config.json has model_type {model_type:?}, not a one-directory CLIP model \
                 (\"chinese_clip\"); a Taiyi model is a text directory plus an open_clip \
                 checkpoint: --text-model DIR --vision-model FILE"
            ))
        })?;
        let Some(vision) = config.vision_config_dict.or(config.vision_config) else {
            return Err(bad("config.json has no vision_config".into()));
        };
        let vision = vision.to_vision_config(config.projection_dim.unwrap_or(512))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            family,
            vision,
        })
    }

    /// The model `spec` names (a directory, a published name or a hub id:
    /// [`crate::hub::resolve_model_dir`]), opened.
    pub fn resolve(spec: &Path, hub: &HubOptions) -> Result<Self, ClipError> {
        Self::open(crate::hub::resolve_model_dir(spec, hub)?)
    }

    /// The checkpoint file holding both towers (the first of [`MODEL_DIR_WEIGHTS`] present).
    pub fn weights(&self) -> Result<PathBuf, ClipError> {
        Ok(taiyi_store::find_in_dir(&self.dir, MODEL_DIR_WEIGHTS)?)
    }

    /// The image tower (and `logit_scale`) of the directory's checkpoint, strictly loaded
    /// ([`taiyi_vision::VisionTransformer::load_hf_clip_as`]), linear weights held as `format`
    /// says.
    pub fn load_vision<B: burn::tensor::backend::Backend>(
        &self,
        device: &B::Device,
        format: taiyi_nn::DenseFormat,
    ) -> Result<taiyi_vision::LoadedVision<B>, ClipError> {
        let ckpt = taiyi_store::Checkpoint::open(self.weights()?)?;
        Ok(taiyi_vision::VisionTransformer::load_hf_clip_as(
            ckpt,
            &self.vision,
            device,
            format,
        )?)
    }

    /// The image transform of `preprocessor_config.json` (transformers'
    /// `ChineseCLIPImageProcessor`), checked against the tower's input size.
    pub fn image_transform(&self) -> Result<ImageTransform, ClipError> {
        let config = HfImageProcessorConfig::read(&self.dir.join("preprocessor_config.json"))?;
        let transform = ImageTransform::from_hf_processor(&config)?;
        if transform.image_size() != self.vision.image_size {
            return Err(ClipError::ModelDir {
                dir: self.dir.clone(),
                message: format!(
                    "preprocessor_config.json makes {0}x{0} images but the image tower takes {1}x{1}",
                    transform.image_size(),
                    self.vision.image_size
                ),
            });
        }
        Ok(transform)
    }
}

/// Where a model's weights are: the Taiyi pair of paths, or one model directory.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// Taiyi-CLIP: the HF text directory and the open_clip checkpoint.
    Taiyi(ModelPaths),
    /// A one-directory model (Chinese-CLIP).
    Dir(ModelDir),
}

impl ModelSource {
    /// The model directory, for a one-directory model.
    pub fn dir(&self) -> Option<&ModelDir> {
        match self {
            Self::Dir(dir) => Some(dir),
            Self::Taiyi(_) => None,
        }
    }

    /// `model` (a directory, or a hub repository id such as
    /// `OFA-Sys/chinese-clip-vit-base-patch16`, fetched into the hub cache as the Taiyi
    /// files are) when given; else the Taiyi pair from `text_dir` / `vision_file`, the
    /// environment and the hub ([`ModelPaths::resolve`]).
    pub fn resolve(
        model: Option<&Path>,
        text_dir: Option<&Path>,
        vision_file: Option<&Path>,
        hub: &HubOptions,
    ) -> Result<Self, ClipError> {
        match model {
            Some(spec) => Ok(ModelSource::Dir(ModelDir::resolve(spec, hub)?)),
            None => Ok(ModelSource::Taiyi(ModelPaths::resolve(
                text_dir,
                vision_file,
                hub,
            )?)),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        match self {
            ModelSource::Taiyi(_) => Family::Taiyi,
            ModelSource::Dir(d) => d.family,
        }
    }

    /// The text tower's directory (`config.json`, `vocab.txt`, weights).
    pub fn text_dir(&self) -> &Path {
        match self {
            ModelSource::Taiyi(p) => &p.text_dir,
            ModelSource::Dir(d) => &d.dir,
        }
    }

    /// Where the image tower is read from: the open_clip file, or the model directory.
    pub fn vision_path(&self) -> &Path {
        match self {
            ModelSource::Taiyi(p) => &p.vision_file,
            ModelSource::Dir(d) => &d.dir,
        }
    }
}

/// A published OFA-Sys Chinese-CLIP size: its hub repository and the towers' architectures (as
/// its `config.json` gives them), for `--model NAME` (the hub id of a short name),
/// `taiyi bench --vision-arch NAME` and random-weight checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChineseClipPreset {
    /// The short name (the repository's name): `chinese-clip-vit-base-patch16`, ….
    pub name: &'static str,
    /// The hub repository id.
    pub repo: &'static str,
    /// Text tower: RoBERTa-wwm-ext-base (`false`) or -large (`true`).
    pub large_text: bool,
    /// Image tower: width, layers, heads, patch, image side.
    pub vision: (usize, usize, usize, usize, usize),
    /// `projection_dim`: the width of both features.
    pub projection_dim: usize,
}

/// The four published sizes (transformers' `ChineseCLIPModel` conversions).
pub const CHINESE_CLIP_PRESETS: &[ChineseClipPreset] = &[
    ChineseClipPreset {
        name: "chinese-clip-vit-base-patch16",
        repo: "OFA-Sys/chinese-clip-vit-base-patch16",
        large_text: false,
        vision: (768, 12, 12, 16, 224),
        projection_dim: 512,
    },
    ChineseClipPreset {
        name: "chinese-clip-vit-large-patch14",
        repo: "OFA-Sys/chinese-clip-vit-large-patch14",
        large_text: false,
        vision: (1024, 24, 16, 14, 224),
        projection_dim: 768,
    },
    ChineseClipPreset {
        name: "chinese-clip-vit-large-patch14-336px",
        repo: "OFA-Sys/chinese-clip-vit-large-patch14-336px",
        large_text: false,
        vision: (1024, 24, 16, 14, 336),
        projection_dim: 768,
    },
    ChineseClipPreset {
        name: "chinese-clip-vit-huge-patch14",
        repo: "OFA-Sys/chinese-clip-vit-huge-patch14",
        large_text: true,
        vision: (1280, 32, 16, 14, 224),
        projection_dim: 1024,
    },
];

impl ChineseClipPreset {
    /// The preset of a short name or hub id (ASCII case-insensitive).
    pub fn find(name: &str) -> Option<&'static ChineseClipPreset> {
        CHINESE_CLIP_PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name) || p.repo.eq_ignore_ascii_case(name))
    }

    /// The image tower: a CLIP ViT with QuickGELU, MLP ratio 4, `projection_dim` outputs.
    pub fn vision_config(&self) -> VisionConfig {
        let (width, layers, heads, patch, side) = self.vision;
        VisionConfig::new(side, patch, width, layers, heads, self.projection_dim).quick_gelu()
    }

    /// The text tower: RoBERTa-wwm-ext base or large (21,128 tokens, 512 positions) with the
    /// `[CLS]` + `text_projection` head.
    pub fn text_config(&self) -> taiyi_text::BertConfig {
        let head = taiyi_text::TextHead::ClsProjection {
            dim: self.projection_dim,
        };
        let large = taiyi_text::BertConfig::taiyi_roberta_large();
        let config = if self.large_text {
            large
        } else {
            large
                .with_hidden_size(768)
                .with_num_hidden_layers(12)
                .with_num_attention_heads(12)
                .with_intermediate_size(3072)
        };
        config.with_head(head)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_the_published_sizes() {
        let b16 = ChineseClipPreset::find("OFA-Sys/chinese-clip-vit-base-patch16").expect("b16");
        assert_eq!(
            b16.vision_config(),
            crate::arch::vision_config("chinese-clip-vit-base-patch16").expect("name")
        );
        let v = b16.vision_config();
        assert_eq!(
            (
                v.width,
                v.layers,
                v.heads,
                v.patch_size,
                v.image_size,
                v.output_dim
            ),
            (768, 12, 12, 16, 224, 512)
        );
        assert_eq!(v.activation, taiyi_vision::Activation::QuickGelu);
        assert_eq!(v.mlp_width(), 3072);
        let t = b16.text_config();
        assert_eq!(
            (t.hidden_size, t.num_hidden_layers, t.vocab_size),
            (768, 12, 21128)
        );
        assert_eq!(t.head, taiyi_text::TextHead::ClsProjection { dim: 512 });
        let h14 = ChineseClipPreset::find("chinese-clip-vit-huge-patch14").expect("h14");
        assert_eq!(h14.text_config().hidden_size, 1024);
        assert_eq!(h14.vision_config().mlp_width(), 5120);
        assert_eq!(
            ChineseClipPreset::find("chinese-clip-vit-large-patch14-336px")
                .expect("336")
                .vision_config()
                .image_size,
            336
        );
        assert!(ChineseClipPreset::find("chinese-clip-vit-tiny").is_none());
        for p in CHINESE_CLIP_PRESETS {
            p.vision_config().validate().expect("valid");
            p.text_config().validate().expect("valid");
        }
    }

    #[test]
    fn a_preprocessor_of_another_size_is_refused() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/chinese_clip/tiny");
        let dir = tempfile::tempdir().expect("tmp");
        for f in ["config.json", "vocab.txt", "tokenizer_config.json"] {
            std::fs::copy(root.join(f), dir.path().join(f)).expect("copy");
        }
        let pre = std::fs::read_to_string(root.join("preprocessor_config.json")).expect("read");
        std::fs::write(
            dir.path().join("preprocessor_config.json"),
            pre.replace("224", "336"),
        )
        .expect("write");
        let model = ModelDir::open(dir.path()).expect("config reads");
        let err = model
            .image_transform()
            .expect_err("336 px for a 224 px tower");
        assert!(
            err.to_string().contains("336x336") && err.to_string().contains("224x224"),
            "{err}"
        );
        // No weights file: the error names what was looked for.
        assert!(model.weights().is_err());
        // A config without vision_config.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "chinese_clip"}"#,
        )
        .expect("w");
        let err = ModelDir::open(dir.path()).expect_err("no vision_config");
        assert!(err.to_string().contains("vision_config"), "{err}");
    }
}
