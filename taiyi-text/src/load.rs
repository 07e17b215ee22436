//! Loading Hugging Face BERT checkpoints into [`BertModel`].

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use taiyi_store::{Checkpoint, LoadSpec, StoreError, find_in_dir};

use crate::{BertConfig, BertModel, HfBertConfig, TextError};

/// Weight files tried by [`BertModel::from_pretrained_dir`], in order.
pub const WEIGHT_FILES: &[&str] = &[
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// Checkpoint key rewrites onto the module's field names. `bert.` (the prefix of
/// `BertFor*` checkpoints such as hfl's `BertForMaskedLM`) is dropped, `attention.self` is the
/// field `self_attn`, and `LayerNorm.{weight,bias}` is `layer_norm.{gamma,beta}`.
///
/// The LayerNorm names are rewritten here rather than left to burn-store's
/// `PyTorchToBurnAdapter`: in burn-store 0.21 a tensor found through the adapter's alternative
/// name (`weight` for `gamma`) is still reported as unused, which strict loading rejects.
pub const REMAP: &[(&str, &str)] = &[
    (r"^bert\.", ""),
    (r"\.attention\.self\.", ".attention.self_attn."),
    (r"(^|\.)LayerNorm\.weight$", "${1}layer_norm.gamma"),
    (r"(^|\.)LayerNorm\.bias$", "${1}layer_norm.beta"),
];

/// Checkpoint tensors that are dropped silently: the legacy int64 `position_ids` buffer and
/// the pre-training heads (`cls.predictions.*` MLM head, `cls.seq_relationship.*` NSP head).
/// Anything else the model does not use (e.g. a `classifier.*` of a
/// `BertForSequenceClassification`, whose features are its logits, not the pooler output) is an
/// error.
pub const IGNORE: &[&str] = &[r"^(bert\.)?embeddings\.position_ids$", r"^cls\."];

/// Map a module path (as burn-store reports it) back to the checkpoint's spelling.
fn checkpoint_key(key: &str) -> String {
    let mut parts: Vec<String> = key.split('.').map(str::to_string).collect();
    let n = parts.len();
    for i in 0..n {
        let after_norm = i > 0 && parts[i - 1] == "LayerNorm";
        match parts[i].as_str() {
            "self_attn" => parts[i] = "self".to_string(),
            "layer_norm" => parts[i] = "LayerNorm".to_string(),
            "gamma" if after_norm => parts[i] = "weight".to_string(),
            "beta" if after_norm => parts[i] = "bias".to_string(),
            _ => {}
        }
    }
    parts.join(".")
}

fn to_checkpoint_names(err: StoreError) -> StoreError {
    let map = |v: Vec<String>| v.iter().map(|k| checkpoint_key(k)).collect();
    match err {
        StoreError::Missing {
            path,
            keys,
            suggestions,
        } => StoreError::Missing {
            path,
            keys: map(keys),
            suggestions: map(suggestions),
        },
        StoreError::Unused { path, keys } => StoreError::Unused {
            path,
            keys: map(keys),
        },
        StoreError::Shape {
            path,
            key,
            expected,
            found,
        } => StoreError::Shape {
            path,
            key: checkpoint_key(&key),
            expected,
            found,
        },
        StoreError::Tensor { path, key, message } => StoreError::Tensor {
            path,
            key: checkpoint_key(&key),
            message,
        },
        other => other,
    }
}

/// Read and check a Hugging Face `config.json`.
pub fn read_config(path: &Path) -> Result<BertConfig, TextError> {
    let text = std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let hf = HfBertConfig::from_json(&text).map_err(|source| TextError::ConfigJson {
        path: path.to_path_buf(),
        source,
    })?;
    BertConfig::try_from(hf).map_err(|e| match e {
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
        let model = Self::load_file(&weights, &config, device)?;
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
        config.validate()?;
        let path: PathBuf = ckpt.source().to_path_buf();
        let model = config.init::<B>(device);
        ckpt.load_into::<B, _>(
            model,
            &LoadSpec {
                remap: REMAP,
                ignore: IGNORE,
            },
        )
        .map_err(|e| TextError::Store {
            path,
            source: to_checkpoint_names(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_key;

    #[test]
    fn module_paths_map_back_to_checkpoint_keys() {
        assert_eq!(
            checkpoint_key("encoder.layer.3.attention.self_attn.query.weight"),
            "encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(
            checkpoint_key("embeddings.layer_norm.gamma"),
            "embeddings.LayerNorm.weight"
        );
        assert_eq!(
            checkpoint_key("encoder.layer.0.output.layer_norm.beta"),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(checkpoint_key("pooler.dense.bias"), "pooler.dense.bias");
    }
}
