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

    /// The checkpoint file holding both towers (the first of [`MODEL_DIR_WEIGHTS`] present).
    pub fn weights(&self) -> Result<PathBuf, ClipError> {
        Ok(taiyi_store::find_in_dir(&self.dir, MODEL_DIR_WEIGHTS)?)
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
            Some(spec) => Ok(ModelSource::Dir(ModelDir::open(
                crate::hub::resolve_model_dir(spec, hub)?,
            )?)),
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
