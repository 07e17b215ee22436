//! Errors of the tokenizer.

use std::path::PathBuf;

/// Everything that can go wrong when loading or running the [`BertTokenizer`](super::BertTokenizer).
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary file could not be read (missing, unreadable, not a regular file, over
    /// [`taiyi_store::input::VOCAB_MAX_BYTES`]).
    #[error("cannot read vocabulary file {path}")]
    VocabRead {
        /// The vocabulary file.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// The vocabulary file is not valid UTF-8 (Python reads it as strict UTF-8).
    #[error("vocabulary file {path} is not valid UTF-8")]
    VocabNotUtf8 {
        /// The vocabulary file.
        path: PathBuf,
        /// The decoding error (it carries the byte offset).
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// The vocabulary has no entries.
    #[error("vocabulary file {path} is empty")]
    VocabEmpty {
        /// The vocabulary file.
        path: PathBuf,
    },
    /// The vocabulary holds more entries than a `u32` id can number.
    #[error("vocabulary file {path} has {entries} entries, more than u32 ids can number")]
    VocabTooLarge {
        /// The vocabulary file.
        path: PathBuf,
        /// How many entries it has.
        entries: usize,
    },
    /// A token appears on two lines of the vocabulary (Python would silently keep the later id).
    #[error(
        "vocabulary file {path}: token {token:?} appears on line {first_line} and again on line {line}"
    )]
    DuplicateVocabEntry {
        /// The vocabulary file.
        path: PathBuf,
        /// The duplicated token.
        token: String,
        /// 1-based line of its first occurrence.
        first_line: usize,
        /// 1-based line of the repeat.
        line: usize,
    },
    /// A special token (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]` or a configured replacement) is not in the vocabulary.
    #[error("vocabulary {path} lacks the special token {token:?} ({role})")]
    MissingSpecialToken {
        /// The vocabulary file.
        path: PathBuf,
        /// The token text.
        token: String,
        /// Which role it plays (`unk_token`, `cls_token`, ...).
        role: &'static str,
    },
    /// A tokenizer configuration file could not be read (unreadable, not a regular file,
    /// over [`taiyi_store::input::JSON_MAX_BYTES`], not UTF-8).
    #[error("cannot read tokenizer config {path}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// A tokenizer configuration file is not valid JSON.
    #[error("tokenizer config {path} is not valid JSON")]
    ConfigJson {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A tokenizer configuration key has a value of the wrong type or an unsupported value.
    #[error("tokenizer config {path}: key `{key}`: {message}")]
    ConfigValue {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// `encode_batch` was given no texts.
    #[error("encode_batch needs at least one text, got an empty batch")]
    EmptyBatch,
    /// A maximum length below 2 leaves no room for `[CLS]` and `[SEP]`.
    #[error("max_length {max_length} is too small: [CLS] and [SEP] alone need 2 positions")]
    MaxLengthTooSmall {
        /// The requested length.
        max_length: usize,
    },
    /// `Padding::Fixed(n)` asks for rows too long (or a batch too large) to allocate sanely.
    #[error(
        "padding {rows} text(s) to {length} tokens is too much (at most {} tokens per row and {} in all)",
        super::MAX_PADDED_LENGTH,
        super::MAX_PADDED_CELLS
    )]
    PaddingTooLong {
        /// The requested row length.
        length: usize,
        /// The number of rows.
        rows: usize,
    },
    /// `Padding::None` was asked for a batch whose rows have different lengths.
    #[error(
        "Padding::None on a batch whose rows differ in length (row 0 has {first}, row {row} has {len}); use Padding::Longest or Padding::Fixed"
    )]
    RaggedBatch {
        /// Length of row 0.
        first: usize,
        /// The first row of another length.
        row: usize,
        /// Its length.
        len: usize,
    },
    /// A token id is not below the vocabulary size of the model it is meant for.
    #[error("token id {id} at [{row}, {col}] is outside the vocabulary of {vocab_size} ids")]
    IdOutOfVocab {
        /// The id.
        id: u32,
        /// Row (text) index.
        row: usize,
        /// Column (token) index.
        col: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The batch's rows are longer than the model's absolute positions.
    #[error("sequence of {len} tokens exceeds the model's {max} positions")]
    TooManyTokens {
        /// Row length.
        len: usize,
        /// The model's positions.
        max: usize,
    },
    /// A packed batch's offsets do not describe its ids.
    #[error(
        "packed batch of {texts} texts: offsets do not split its {tokens} ids into non-empty texts in order"
    )]
    BadPacking {
        /// Texts (offsets − 1).
        texts: usize,
        /// Ids.
        tokens: usize,
    },
}
