//! Model configuration: the burn [`BertConfig`] and the Hugging Face `config.json` mirror.

use burn::config::Config;
use serde::{Deserialize, Serialize};
use taiyi_nn::AttentionKernel;

use crate::TextError;

/// Architecture hyper-parameters of a BERT encoder (post-LN, absolute positions, exact GELU,
/// tanh pooler), as used by the Taiyi-CLIP text tower.
///
/// Every field defaults to the Taiyi / `hfl/chinese-roberta-wwm-ext-large` value, so
/// `BertConfig::new()` equals [`BertConfig::taiyi_roberta_large`].
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Number of token ids (rows of `embeddings.word_embeddings`).
    #[config(default = 21128)]
    pub vocab_size: usize,
    /// Width of the hidden states.
    #[config(default = 1024)]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[config(default = 24)]
    pub num_hidden_layers: usize,
    /// Number of attention heads (must divide `hidden_size`).
    #[config(default = 16)]
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    #[config(default = 4096)]
    pub intermediate_size: usize,
    /// Number of absolute positions; longer sequences are rejected.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (only type 0 is used).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Id of the `[PAD]` token, used when a text mode pads a batch.
    #[config(default = 0)]
    pub pad_token_id: usize,
    /// How the layers compute attention (not part of `config.json`). Matmul by default: the
    /// eager PyTorch reference's order of operations, and on flex as fast as the fused kernel
    /// at these sequence lengths (`benches/text_tower.rs`). On flex f32 with taiyi-nn's `flex`
    /// feature (taiyi-core's default) the layers use taiyi-nn's parallel kernel whichever is
    /// named.
    #[config(default = "AttentionKernel::Matmul")]
    pub attention_kernel: AttentionKernel,
    /// What the text feature is: Taiyi's pooler or Chinese-CLIP's projected `[CLS]` row.
    #[config(default = "TextHead::Pooler")]
    pub head: TextHead,
}

/// The text feature a [`crate::BertModel`] returns as `pooler_output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TextHead {
    /// `tanh(pooler.dense(h_[CLS]))`, `hidden_size` wide: HF `BertModel`'s pooler output, the
    /// Taiyi text feature.
    #[default]
    Pooler,
    /// `text_projection(h_[CLS])` (a bias-free linear to `dim`), no pooler: the text feature of
    /// transformers' `ChineseCLIPModel` (`text_outputs[0][:, 0, :]` through `text_projection`).
    ClsProjection {
        /// Output width (the model's `projection_dim`).
        dim: usize,
    },
}

impl TextHead {
    /// Width of the text feature of a model `hidden` wide.
    pub fn output_dim(self, hidden: usize) -> usize {
        match self {
            TextHead::Pooler => hidden,
            TextHead::ClsProjection { dim } => dim,
        }
    }
}

impl BertConfig {
    /// The Taiyi-CLIP-RoBERTa-326M text tower (`hfl/chinese-roberta-wwm-ext-large`):
    /// vocab 21128, hidden 1024, 24 layers, 16 heads, intermediate 4096, 512 positions,
    /// 2 token types, eps 1e-12, pad id 0.
    pub fn taiyi_roberta_large() -> Self {
        Self::new()
    }

    /// A tiny configuration for tests and examples: the real vocabulary size (so real token ids
    /// work), hidden 16, 2 layers, 4 heads, intermediate 64, 96 positions.
    pub fn tiny() -> Self {
        Self::new()
            .with_hidden_size(16)
            .with_num_hidden_layers(2)
            .with_num_attention_heads(4)
            .with_intermediate_size(64)
            .with_max_position_embeddings(96)
    }

    /// Width of one attention head (`hidden_size / num_attention_heads`).
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Number of parameters of a [`crate::BertModel`] with this configuration (pooler included).
    pub fn num_params(&self) -> usize {
        let h = self.hidden_size;
        let i = self.intermediate_size;
        let emb =
            (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h;
        let layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
        let head = match self.head {
            TextHead::Pooler => h * h + h,
            TextHead::ClsProjection { dim } => h * dim,
        };
        emb + self.num_hidden_layers * layer + head
    }

    /// Check that the sizes are usable (non-zero, heads dividing the width).
    pub fn validate(&self) -> Result<(), TextError> {
        let bad = |message: String| Err(TextError::UnsupportedConfig { message });
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be > 0"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.pad_token_id >= self.vocab_size {
            return bad(format!(
                "pad_token_id {} is outside the vocabulary ({} ids)",
                self.pad_token_id, self.vocab_size
            ));
        }
        if self.head == (TextHead::ClsProjection { dim: 0 }) {
            return bad("the text projection's dim must be > 0".to_string());
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!(
                "layer_norm_eps {} must be > 0",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }
}

/// The fields of a Hugging Face BERT `config.json` that matter here. Unknown fields are
/// accepted and ignored; fields that change the architecture are checked by
/// `TryFrom<HfBertConfig> for BertConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfBertConfig {
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `max_position_embeddings` (HF default 512).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// `type_vocab_size` (HF default 2).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// `layer_norm_eps` (HF default 1e-12).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// `pad_token_id` (HF default 0).
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// `hidden_act`: only `"gelu"` (exact erf) is implemented.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// `position_embedding_type`: only `"absolute"` is implemented.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// `model_type` (`"bert"` expected; `"roberta"` uses a position offset and is rejected).
    #[serde(default)]
    pub model_type: Option<String>,
    /// `architectures`, informational.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// `is_decoder`: decoders (causal masks) are not implemented.
    #[serde(default)]
    pub is_decoder: bool,
    /// `add_cross_attention`: cross-attention is not implemented.
    #[serde(default)]
    pub add_cross_attention: bool,
}

fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".to_string()
}

impl HfBertConfig {
    /// Parse a `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl TryFrom<HfBertConfig> for BertConfig {
    type Error = TextError;

    fn try_from(hf: HfBertConfig) -> Result<Self, TextError> {
        let bad = |message: String| Err(TextError::UnsupportedConfig { message });
        if hf.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act \"{}\" is not supported (only \"gelu\", exact erf)",
                hf.hidden_act
            ));
        }
        if let Some(p) = &hf.position_embedding_type
            && p != "absolute"
        {
            return bad(format!(
                "position_embedding_type \"{p}\" is not supported (only \"absolute\")"
            ));
        }
        if let Some(m) = &hf.model_type
            && m != "bert"
            && m != "chinese_clip_text_model"
        {
            return bad(format!(
                "model_type \"{m}\" is not supported (only \"bert\" and \"chinese_clip_text_model\"; RoBERTa offsets positions)"
            ));
        }
        if hf.is_decoder {
            return bad("is_decoder = true is not supported (encoder only)".to_string());
        }
        if hf.add_cross_attention {
            return bad("add_cross_attention = true is not supported".to_string());
        }
        let cfg = BertConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            intermediate_size: hf.intermediate_size,
            max_position_embeddings: hf.max_position_embeddings,
            type_vocab_size: hf.type_vocab_size,
            layer_norm_eps: hf.layer_norm_eps,
            pad_token_id: hf.pad_token_id.unwrap_or(0),
            attention_kernel: AttentionKernel::Matmul,
            head: TextHead::Pooler,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
