//! The slow Python `BertTokenizer` of transformers 4.57.6, id-exact.
//!
//! [`BertTokenizer`] reproduces `transformers.BertTokenizer` (the slow, pure-Python one) with the
//! Taiyi / chinese-roberta vocabulary, including the parts that live in
//! `PreTrainedTokenizer.tokenize`:
//!
//! 1. when lowercasing, every code point outside a special-token match is lowercased *on its own*
//!    (`re.sub(r"(\[UNK\]|...)|(.+?)", ...)`), so Python's final-sigma rule never fires
//!    ("ΟΔΟΣ" becomes "οδοσ", not "οδος");
//! 2. the text is split on the special tokens (`[UNK] [SEP] [PAD] [CLS] [MASK]`), which are kept whole;
//! 3. each remaining piece runs through `BasicTokenizer` (drop NUL, U+FFFD and category C*, map
//!    whitespace to ' ', pad CJK ideographs, NFC, split on `str.isspace`, lowercase + strip accents
//!    (NFD, drop Mn), split on punctuation) and greedy longest-match-first WordPiece (words over 100
//!    chars, or with an unmatchable piece, become one `[UNK]`);
//! 4. `[CLS] ... [SEP]`, truncation keeping `[SEP]` last, right padding with `[PAD]`.
//!
//! Character properties come from tables generated from the reference Python's `unicodedata`
//! (Unicode 14.0.0), not from Rust's `char` methods. NFC/NFD come from `unicode-normalization`:
//! it implements a newer Unicode version, but every code point unassigned in 14.0.0 is removed
//! (category Cn) before normalisation, and the normalisation of assigned code points is frozen by
//! Unicode's stability policy; the committed corpus test checks this on 20,000+ texts.
//!
//! Known, documented limits: only the five BERT special tokens are supported as added tokens
//! (configs with other added tokens, or with `lstrip`/`rstrip`/`single_word` special tokens, are
//! rejected with [`TokenizerError::ConfigValue`]); special-token splitting is leftmost-longest,
//! which is what Python's `Trie.split` computes for this prefix-free token set.

mod basic;
mod batch;
mod config;
mod encoding;
mod error;
#[cfg(test)]
mod tests;
mod unicode;
mod unicode_tables;
mod vocab;
mod wordpiece;

use std::collections::HashMap;
use std::sync::Arc;

pub use batch::{BatchEncoding, PackedEncoding, PackedTokens, TokenBatch};
pub use encoding::{Encoding, Padding, Truncation};
pub use error::TokenizerError;

/// The longest row [`Padding::Fixed`] may ask for (a million tokens; BERT itself takes 512).
pub const MAX_PADDED_LENGTH: usize = 1 << 20;
/// The most ids a padded batch may hold (2^28 = 1 GiB of `u32` ids, as much again of mask).
pub const MAX_PADDED_CELLS: usize = 1 << 28;

/// Default `model_max_length` of BERT (its 512 position embeddings).
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// Unicode version of the reference Python's `unicodedata` that the character tables come from.
pub const REFERENCE_UNICODE_VERSION: &str = unicode_tables::UNICODE_VERSION;

/// `WordpieceTokenizer.max_input_chars_per_word`: longer words become one `[UNK]`.
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// The special tokens, as text. They must all be entries of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Unknown token, `[UNK]`.
    pub unk: String,
    /// Separator, appended last, `[SEP]`.
    pub sep: String,
    /// Padding token, `[PAD]`.
    pub pad: String,
    /// Classifier token, prepended, `[CLS]`.
    pub cls: String,
    /// Mask token, `[MASK]`.
    pub mask: String,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        Self {
            unk: "[UNK]".into(),
            sep: "[SEP]".into(),
            pad: "[PAD]".into(),
            cls: "[CLS]".into(),
            mask: "[MASK]".into(),
        }
    }
}

impl SpecialTokens {
    /// The tokens in `all_special_tokens` order (unk, sep, pad, cls, mask) with their role names.
    fn roles(&self) -> [(&'static str, &str); 5] {
        [
            ("unk_token", &self.unk),
            ("sep_token", &self.sep),
            ("pad_token", &self.pad),
            ("cls_token", &self.cls),
            ("mask_token", &self.mask),
        ]
    }
}

/// Options of the tokenizer, mirroring `BertTokenizer.__init__`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// Lowercase (and, unless `strip_accents == Some(false)`, strip accents). Taiyi: `true`.
    pub do_lower_case: bool,
    /// `None` follows `do_lower_case`; `Some(true)` strips accents even without lowercasing.
    pub strip_accents: Option<bool>,
    /// Put spaces around CJK ideographs (always `true` for Chinese BERT).
    pub tokenize_chinese_chars: bool,
    /// `model_max_length`: what [`BertTokenizer::encode`] and [`Truncation::ModelMax`] truncate to
    /// (at least 2). Default [`DEFAULT_MAX_LENGTH`].
    pub max_length: usize,
    /// The special tokens.
    pub special_tokens: SpecialTokens,
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        Self {
            do_lower_case: true,
            strip_accents: None,
            tokenize_chinese_chars: true,
            max_length: DEFAULT_MAX_LENGTH,
            special_tokens: SpecialTokens::default(),
        }
    }
}

/// The slow `BertTokenizer`, id-exact. Cheap to clone (the vocabulary is shared); `Send + Sync`.
///
/// ```no_run
/// use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, Truncation};
/// # fn main() -> Result<(), taiyi_preprocess::tokenizer::TokenizerError> {
/// let tok = BertTokenizer::from_model_dir("Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese")?;
/// let one = tok.encode("一只猫");
/// assert_eq!(one.ids.first(), Some(&101));
/// let batch = tok.encode_batch(&["一只猫", "一只狗在草地上"], Padding::Longest, Truncation::None)?;
/// assert_eq!(batch.ids.len(), batch.batch_size * batch.seq_len);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Whole vocabulary, token -> id (word-initial WordPiece lookups).
    vocab: HashMap<String, u32>,
    /// Entries starting with `##`, stripped of it (continuation lookups without allocating).
    continuation: HashMap<String, u32>,
    /// id -> token.
    id_to_token: Vec<String>,
    options: TokenizerOptions,
    /// Special tokens in `all_special_tokens` order, deduplicated, with their ids.
    specials: Vec<(String, u32)>,
    /// First chars of the special tokens (fast reject while scanning).
    special_first_chars: Vec<char>,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
}

impl BertTokenizer {
    /// The options this tokenizer runs with.
    pub fn options(&self) -> &TokenizerOptions {
        &self.inner.options
    }

    /// Number of vocabulary entries (21128 for the Taiyi vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.inner.id_to_token.len()
    }

    /// Id of a vocabulary entry, `None` if absent.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.vocab.get(token).copied()
    }

    /// Id of `[PAD]` (0 for the Taiyi vocabulary).
    pub fn pad_id(&self) -> u32 {
        self.inner.pad_id
    }

    /// Id of `[CLS]` (101).
    pub fn cls_id(&self) -> u32 {
        self.inner.cls_id
    }

    /// Id of `[SEP]` (102).
    pub fn sep_id(&self) -> u32 {
        self.inner.sep_id
    }

    /// Id of `[UNK]` (100).
    pub fn unk_id(&self) -> u32 {
        self.inner.unk_id
    }

    /// `convert_ids_to_tokens`: the token of each id; an id outside the vocabulary gives the
    /// unknown token, as Python's `ids_to_tokens.get(index, unk_token)` does.
    pub fn convert_ids_to_tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.inner
                    .id_to_token
                    .get(id as usize)
                    .cloned()
                    .unwrap_or_else(|| self.inner.options.special_tokens.unk.clone())
            })
            .collect()
    }

    /// `tokenize`: the WordPiece tokens of `text`, without `[CLS]`/`[SEP]`.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut ids = Vec::new();
        self.push_text_ids(text, &mut ids);
        self.convert_ids_to_tokens(&ids)
    }

    /// The ids of [`tokenize`](Self::tokenize) (`convert_tokens_to_ids(tokenize(text))`), no truncation.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.push_text_ids(text, &mut ids);
        ids
    }
}
