//! Loading Hugging Face BERT checkpoints into [`BertModel`].

use std::path::{Path, PathBuf};

use burn::tensor::Element;
use burn::tensor::backend::Backend;
use taiyi_store::{Checkpoint, LoadSpec, find_in_dir};

use crate::{BertConfig, BertModel, DenseFormat, HfBertConfig, TextError, TextHead};

/// Weight files tried by [`BertModel::from_pretrained_dir`], in order.
pub const WEIGHT_FILES: &[&str] = &[
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// Checkpoint key segments that Rust cannot or should not spell as field names, renamed
/// literally (`(checkpoint, module)`; errors name keys in the checkpoint's spelling):
/// `attention.self` is the field `self_attn`, `LayerNorm` is `layer_norm` (whose
/// `weight`/`bias` burn calls `gamma`/`beta`, matched by the store's layout adapter).
pub const RENAMES: &[(&str, &str)] = &[("self", "self_attn"), ("LayerNorm", "layer_norm")];

/// Structural key rewrites: `bert.` (the prefix of `BertFor*` checkpoints such as hfl's
/// `BertForMaskedLM`) is dropped.
pub const REMAP: &[(&str, &str)] = &[(r"^bert\.", "")];

/// Checkpoint tensors that are dropped silently: the legacy int64 `position_ids` buffer and
/// the pre-training heads (`cls.predictions.*` MLM head, `cls.seq_relationship.*` NSP head).
/// Anything else the model does not use (e.g. a `classifier.*` of a
/// `BertForSequenceClassification`, whose features are its logits, not the pooler output) is an
/// error.
pub const IGNORE: &[&str] = &[r"^(bert\.)?embeddings\.position_ids$", r"^cls\."];

/// Structural key rewrites of a transformers `ChineseCLIPModel` checkpoint's text tower:
/// `text_model.` is dropped (`text_projection.weight` keeps its name: the model's field).
pub const CHINESE_CLIP_REMAP: &[(&str, &str)] = &[(r"^text_model\.", "")];

/// What the text tower leaves of a `ChineseCLIPModel` checkpoint: the image tower and its
/// projection, `logit_scale` (read by the image side), the legacy `position_ids` /
/// `token_type_ids` buffers, and a pooler (`ChineseCLIPModel` builds its text model without
/// one; a checkpoint converted with one does not use it).
pub const CHINESE_CLIP_IGNORE: &[&str] = &[
    r"^vision_model\.",
    r"^visual_projection\.weight$",
    r"^logit_scale$",
    r"^text_model\.embeddings\.(position_ids|token_type_ids)$",
    r"^text_model\.pooler\.",
];

/// The top level of a `config.json`, to tell a BERT config from a `ChineseCLIPConfig`.
#[derive(serde::Deserialize)]
struct ConfigKind {
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    text_config: Option<serde_json::Value>,
    #[serde(default)]
    text_config_dict: Option<serde_json::Value>,
    #[serde(default)]
    projection_dim: Option<usize>,
}

/// The text tower of a transformers `ChineseCLIPConfig` (`model_type` `chinese_clip`): its
/// `text_config` (or the legacy `text_config_dict`, which transformers prefers) with a
/// [`TextHead::ClsProjection`] of `projection_dim` (default 512, as transformers).
fn chinese_clip_text(kind: ConfigKind, path: &Path) -> Result<BertConfig, TextError> {
    let Some(text) = kind.text_config_dict.or(kind.text_config) else {
        return Err(TextError::UnsupportedConfig {
            message: "a chinese_clip config.json without text_config".to_string(),
        });
    };
    let text: HfBertConfig =
        serde_json::from_value(text).map_err(|source| TextError::ConfigJson {
            path: path.to_path_buf(),
            source,
        })?;
    let config = BertConfig::try_from(text)?.with_head(TextHead::ClsProjection {
        dim: kind.projection_dim.unwrap_or(512),
    });
    config.validate()?;
    Ok(config)
}

/// Read and check a Hugging Face `config.json`: a BERT config (the Taiyi text tower), or a
/// transformers `ChineseCLIPConfig` (`model_type` `chinese_clip`), whose `text_config` and
/// `projection_dim` describe the text tower with a [`TextHead::ClsProjection`] head.
pub fn read_config(path: &Path) -> Result<BertConfig, TextError> {
    let kind = taiyi_store::input::InputKind::JSON_CONFIG;
    let text = taiyi_store::input::read_input_to_string(path, kind).map_err(|source| {
        TextError::ConfigRead {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let json_error = |source| TextError::ConfigJson {
        path: path.to_path_buf(),
        source,
    };
    let kind: ConfigKind = serde_json::from_str(&text).map_err(json_error)?;
    let config = if kind.model_type.as_deref() == Some("chinese_clip") {
        chinese_clip_text(kind, path)
    } else {
        BertConfig::try_from(HfBertConfig::from_json(&text).map_err(json_error)?)
    };
    config.map_err(|e| match e {
        TextError::UnsupportedConfig { message } => TextError::UnsupportedConfig {
            message: format!("{}: {message}", path.display()),
        },
        other => other,
    })
}

impl<B: Backend> BertModel<B> {
    /// Load a Hugging Face model directory: `config.json` plus the first weights file found
    /// among [`WEIGHT_FILES`] (safetensors before pickles, single files before shard indexes).
    ///
    /// Keys may carry a `bert.` prefix; [`IGNORE`] lists the tensors dropped silently; fp16/bf16
    /// weights are converted to the backend's float type. Returns the model and its config.
    ///
    /// ```no_run
    /// use burn::backend::Flex;
    /// use taiyi_text::BertModel;
    /// # fn demo() -> Result<(), taiyi_text::TextError> {
    /// let device = Default::default();
    /// let (model, config) = BertModel::<Flex>::from_pretrained_dir(
    ///     std::path::Path::new("Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese"),
    ///     &device,
    /// )?;
    /// println!("{} layers", config.num_hidden_layers);
    /// # Ok(()) }
    /// ```
    pub fn from_pretrained_dir(
        dir: &Path,
        device: &B::Device,
    ) -> Result<(Self, BertConfig), TextError> {
        Self::from_pretrained_dir_as(dir, device, DenseFormat::Float)
    }

    /// [`BertModel::from_pretrained_dir`] with the linear weights held as `format` says
    /// ([`DenseFormat::PackedBf16`]: read as bf16 and prepacked for the CPU kernels).
    pub fn from_pretrained_dir_as(
        dir: &Path,
        device: &B::Device,
        format: DenseFormat,
    ) -> Result<(Self, BertConfig), TextError> {
        if !dir.is_dir() {
            return Err(TextError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let config = read_config(&dir.join("config.json"))?;
        let weights = find_in_dir(dir, WEIGHT_FILES).map_err(|source| TextError::Store {
            path: dir.to_path_buf(),
            source,
        })?;
        let ckpt = Checkpoint::open(&weights).map_err(|source| TextError::Store {
            path: weights.clone(),
            source,
        })?;
        let model = Self::load_checkpoint_as(ckpt, &config, device, format)?;
        Ok((model, config))
    }

    /// Load one weights file (`.safetensors`, `.bin`/`.pt`/`.pth`, or a shard `*.index.json`)
    /// for `config`. See [`BertModel::from_pretrained_dir`] for the key rules.
    pub fn load_file(
        path: &Path,
        config: &BertConfig,
        device: &B::Device,
    ) -> Result<Self, TextError> {
        let ckpt = Checkpoint::open(path).map_err(|source| TextError::Store {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load_checkpoint(ckpt, config, device)
    }

    /// Load an already opened [`Checkpoint`] for `config` (strict: missing, unused and
    /// mis-shaped tensors are errors naming the checkpoint key).
    pub fn load_checkpoint(
        ckpt: Checkpoint,
        config: &BertConfig,
        device: &B::Device,
    ) -> Result<Self, TextError> {
        Self::load_checkpoint_as(ckpt, config, device, DenseFormat::Float)
    }

    /// [`BertModel::load_checkpoint`] with the linear weights held as `format` says.
    pub fn load_checkpoint_as(
        ckpt: Checkpoint,
        config: &BertConfig,
        device: &B::Device,
        format: DenseFormat,
    ) -> Result<Self, TextError> {
        config.validate()?;
        if format == DenseFormat::PackedBf16 {
            // A kernel this process cannot run is refused before seconds of reading.
            taiyi_nn::CpuKernel::selected().map_err(TextError::Bf16)?;
        }
        let path: PathBuf = ckpt.source().to_path_buf();
        let model = config.init::<B>(device);
        let float = <B::FloatElem as Element>::dtype();
        let mut model = ckpt
            .load_into_with_dtypes::<B, _>(
                model,
                &config.load_spec(),
                float,
                format.load_dtype(float),
            )
            .map_err(|source| TextError::Store { path, source })?;
        if format == DenseFormat::PackedBf16 {
            model.prepack_bf16().map_err(TextError::Bf16)?;
        }
        Ok(model)
    }
}

impl BertConfig {
    /// How a checkpoint's keys meet this model: HF `BertModel` keys ([`REMAP`], [`IGNORE`])
    /// for the pooler head, a `ChineseCLIPModel` checkpoint's ([`CHINESE_CLIP_REMAP`],
    /// [`CHINESE_CLIP_IGNORE`]) for the projection head; [`RENAMES`] for both.
    pub fn load_spec(&self) -> LoadSpec<'static> {
        match self.head {
            TextHead::Pooler => LoadSpec {
                renames: RENAMES,
                remap: REMAP,
                ignore: IGNORE,
            },
            TextHead::ClsProjection { .. } => LoadSpec {
                renames: RENAMES,
                remap: CHINESE_CLIP_REMAP,
                ignore: CHINESE_CLIP_IGNORE,
            },
        }
    }
}
