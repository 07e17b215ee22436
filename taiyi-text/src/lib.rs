//! The Taiyi-CLIP text tower: the Chinese RoBERTa-wwm-ext-large BERT encoder
//! (`IDEA-CCNL/Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese`) in burn, generic over the backend.
//!
//! The text feature is the BERT pooler output `tanh(W h_[CLS] + b)` (1024-d for Taiyi, no
//! projection); normalising it is the caller's job. Three [`TextMode`]s reproduce the three
//! PyTorch usages (model card, Fengshenbang's 77-token training code, masked); the padding of
//! a mode is the tokenizer's (`taiyi_preprocess`), and `taiyi_core::TextEncoder` applies both.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use burn::tensor::{Int, Tensor};
//! use taiyi_text::BertModel;
//! # fn demo() -> Result<(), taiyi_text::TextError> {
//! let device = Default::default();
//! let (model, _config) =
//!     BertModel::<Flex>::from_pretrained_dir(std::path::Path::new("taiyi-text-dir"), &device)?;
//! // "一只猫" tokenised: [CLS] 一 只 猫 [SEP]
//! let ids = Tensor::<Flex, 2, Int>::from_ints([[101, 671, 1372, 4344, 102]], &device);
//! // The model card passes no mask (TextMode::ModelCard); TextMode::Masked would pass it.
//! let features = model.try_forward(ids, None)?.pooler_output; // [1, 1024]
//! # let _ = features; Ok(()) }
//! ```

use std::path::PathBuf;

mod checks;
mod config;
mod load;
mod mode;
mod model;
mod packed;

pub use config::{BertConfig, HfBertConfig, TextHead};
pub use load::{
    CHINESE_CLIP_IGNORE, CHINESE_CLIP_REMAP, IGNORE, REMAP, RENAMES, WEIGHT_FILES, read_config,
};
pub use mode::TextMode;
pub use model::{
    BertAttention, BertEmbeddings, BertEncoder, BertIntermediate, BertLayer, BertModel, BertOutput,
    BertPooler, BertResidualOutput, BertSelfAttention,
};
/// The attention kernel choice, shared with the image tower (`taiyi-nn`).
pub use taiyi_nn::{AttentionKernel, DenseFormat};

/// Errors of the text tower.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` cannot be read (missing, not a regular file, over
    /// [`taiyi_store::input::JSON_MAX_BYTES`], not UTF-8).
    #[error("cannot read BERT config {path}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// `config.json` is not valid JSON or lacks a required field.
    #[error("invalid BERT config {path}")]
    ConfigJson {
        /// The config file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration asks for something this crate does not implement, or is inconsistent.
    #[error("unsupported BERT configuration: {message}")]
    UnsupportedConfig {
        /// What is unsupported.
        message: String,
    },
    /// The weights could not be read or do not fit the model.
    #[error("cannot load text tower weights from {path}")]
    Store {
        /// The weights file (or directory searched).
        path: PathBuf,
        /// The loader's error (names the tensor key where one is at fault).
        #[source]
        source: taiyi_store::StoreError,
    },
    /// The linear weights could not be prepacked for the bf16 CPU kernels.
    #[error("cannot hold the text tower in bf16")]
    Bf16(#[source] taiyi_nn::KernelError),
    /// The batch or the sequence is empty.
    #[error("empty input: batch {batch}, sequence length {seq}")]
    EmptyInput {
        /// Batch size.
        batch: usize,
        /// Sequence length.
        seq: usize,
    },
    /// The sequence is longer than the model's absolute positions.
    #[error("sequence of {len} tokens exceeds the model's {max} positions")]
    SequenceTooLong {
        /// Sequence length.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} at [{row}, {col}] is outside the vocabulary of {vocab_size} ids")]
    TokenOutOfRange {
        /// The id.
        id: i64,
        /// Row (text) index.
        row: usize,
        /// Column (token) index.
        col: usize,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// The attention mask's shape differs from the ids'.
    #[error("attention mask shape {mask:?} differs from input ids shape {ids:?}")]
    MaskShape {
        /// Ids shape.
        ids: Vec<usize>,
        /// Mask shape.
        mask: Vec<usize>,
    },
    /// The attention mask holds a value other than 0 or 1.
    #[error("attention mask value {value} is not 0 or 1")]
    MaskValue {
        /// The value.
        value: i64,
    },
    /// Unknown text mode name.
    #[error("unknown text mode '{name}' (expected card, fixed77 or masked)")]
    UnknownMode {
        /// The name given.
        name: String,
    },
    /// The backend could not hand a tensor back.
    #[error("backend error: {message}")]
    Backend {
        /// What failed.
        message: String,
    },
}
