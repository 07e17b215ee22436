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

mod config;
mod error;
mod unicode;
mod unicode_tables;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

pub use error::TokenizerError;
use unicode::{
    is_bert_whitespace, is_chinese_char, is_control, is_nonspacing_mark, is_punctuation,
    is_py_space, push_lower,
};

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

/// One encoded text: `[CLS] ... [SEP]` ids and an all-ones attention mask of the same length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// 1 for every position (a single unpadded text has no padding).
    pub attention_mask: Vec<u32>,
}

/// How [`BertTokenizer::encode_batch`] pads rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding: every row must already have the same length (e.g. a single text), else
    /// [`TokenizerError::RaggedBatch`].
    None,
    /// Pad to the longest row of the batch (Python `padding=True`; the model card).
    Longest,
    /// Truncate AND pad every row to exactly this length (Python
    /// `padding="max_length", truncation=True, max_length=n`; Fengshenbang training uses 77).
    Fixed(usize),
}

/// How [`BertTokenizer::encode_batch`] truncates rows (always keeping `[SEP]` last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Never truncate (Python's default). Rows can then exceed the model's 512 positions;
    /// the text tower must reject those.
    None,
    /// Truncate to [`TokenizerOptions::max_length`] (Python `truncation=True`).
    ModelMax,
    /// Truncate to this many tokens (at least 2).
    MaxLength(usize),
}

/// A padded batch, row-major: `ids[row * seq_len + position]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEncoding {
    /// Token ids, `batch_size * seq_len`, padded on the right with `[PAD]`.
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding, same layout as `ids`.
    pub attention_mask: Vec<u32>,
    /// Number of rows (texts).
    pub batch_size: usize,
    /// Length of every row.
    pub seq_len: usize,
}

impl BatchEncoding {
    /// The ids of row `row`, or `None` past the end.
    pub fn row_ids(&self, row: usize) -> Option<&[u32]> {
        self.ids.chunks(self.seq_len.max(1)).nth(row)
    }

    /// The attention mask of row `row`, or `None` past the end.
    pub fn row_mask(&self, row: usize) -> Option<&[u32]> {
        self.attention_mask.chunks(self.seq_len.max(1)).nth(row)
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
    /// Loads `vocab.txt` (one token a line, split on `\n`, `\r\n` and `\r` as Python's
    /// universal-newline `readlines()` does; U+2028 is NOT a line break) with explicit options.
    ///
    /// Errors: unreadable file, invalid UTF-8, duplicate entry, missing special token,
    /// `max_length < 2`.
    pub fn from_vocab_file(
        path: impl AsRef<Path>,
        options: TokenizerOptions,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::VocabRead {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|source| TokenizerError::VocabNotUtf8 {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_vocab_text(&text, path, options)
    }

    /// Builds the tokenizer from the text of a `vocab.txt`; `origin` only names it in errors.
    pub fn from_vocab_text(
        text: &str,
        origin: &Path,
        options: TokenizerOptions,
    ) -> Result<Self, TokenizerError> {
        if options.max_length < 2 {
            return Err(TokenizerError::MaxLengthTooSmall {
                max_length: options.max_length,
            });
        }
        // Universal newlines: "\r\n" and "\r" read as "\n"; readlines() then splits after each
        // "\n" and rstrip("\n") drops it. A final line without "\n" still counts; a trailing "\n"
        // does not start an extra entry.
        let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
        if normalized.is_empty() {
            return Err(TokenizerError::VocabEmpty {
                path: origin.to_path_buf(),
            });
        }
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut id_to_token = Vec::new();
        for (index, token) in body.split('\n').enumerate() {
            let id = u32::try_from(index).map_err(|_| TokenizerError::VocabTooLarge {
                path: origin.to_path_buf(),
                entries: index + 1,
            })?;
            if let Some(&first) = vocab.get(token) {
                return Err(TokenizerError::DuplicateVocabEntry {
                    path: origin.to_path_buf(),
                    token: token.to_string(),
                    first_line: first as usize + 1,
                    line: index + 1,
                });
            }
            vocab.insert(token.to_string(), id);
            id_to_token.push(token.to_string());
        }
        let continuation = vocab
            .iter()
            .filter_map(|(t, &id)| t.strip_prefix("##").map(|rest| (rest.to_string(), id)))
            .collect();
        let mut specials: Vec<(String, u32)> = Vec::new();
        for (role, token) in options.special_tokens.roles() {
            let id = *vocab
                .get(token)
                .ok_or_else(|| TokenizerError::MissingSpecialToken {
                    path: origin.to_path_buf(),
                    token: token.to_string(),
                    role,
                })?;
            if !specials.iter().any(|(t, _)| t == token) {
                specials.push((token.to_string(), id));
            }
        }
        let id_of = |t: &str| vocab.get(t).copied().unwrap_or(0);
        let st = &options.special_tokens;
        let (unk_id, cls_id, sep_id, pad_id) = (
            id_of(&st.unk),
            id_of(&st.cls),
            id_of(&st.sep),
            id_of(&st.pad),
        );
        let mut special_first_chars: Vec<char> = specials
            .iter()
            .filter_map(|(t, _)| t.chars().next())
            .collect();
        special_first_chars.sort_unstable();
        special_first_chars.dedup();
        Ok(Self {
            inner: Arc::new(Inner {
                vocab,
                continuation,
                id_to_token,
                options,
                specials,
                special_first_chars,
                unk_id,
                cls_id,
                sep_id,
                pad_id,
            }),
        })
    }

    /// Loads a Hugging Face model directory: `vocab.txt` plus, when present,
    /// `tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`,
    /// `model_max_length` — absent or absurd values (> 1e6, e.g. transformers' 1e30 sentinel)
    /// mean 512, a non-integer is an error — and special tokens) and `special_tokens_map.json`
    /// (special tokens; applied as transformers does when the config has no `added_tokens_decoder`).
    ///
    /// Errors: those of [`from_vocab_file`](Self::from_vocab_file) for `dir/vocab.txt`, plus
    /// unreadable or invalid JSON config files and wrongly typed or unsupported keys
    /// (`do_basic_tokenize: false`, extra added tokens, `lstrip`/`rstrip`/`single_word` specials).
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let options = config::read_options(dir)?;
        Self::from_vocab_file(dir.join("vocab.txt"), options)
    }

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

    /// Encodes one text as `[CLS] tokens [SEP]`, truncated to
    /// [`TokenizerOptions::max_length`] (512 by default) keeping `[SEP]` last: any text, however
    /// long, gives at most `max_length` ids. No padding; the mask is all ones.
    pub fn encode(&self, text: &str) -> Encoding {
        let ids = self.encode_ids(text, Some(self.inner.options.max_length));
        let attention_mask = vec![1; ids.len()];
        Encoding {
            ids,
            attention_mask,
        }
    }

    /// Encodes a batch into equal-length rows (`[CLS] tokens [SEP] [PAD]...`) with attention
    /// masks, matching Python `tokenizer(texts, padding=True)` for
    /// (`Padding::Longest`, `Truncation::None`) and
    /// `tokenizer(texts, padding="max_length", truncation=True, max_length=n)` for
    /// (`Padding::Fixed(n)`, any truncation). `Padding::Fixed(n)` always truncates to `n` too.
    ///
    /// Errors: empty batch, a length below 2, `Padding::None` with rows of different lengths,
    /// `Padding::Fixed(n)` beyond [`MAX_PADDED_LENGTH`] or [`MAX_PADDED_CELLS`] ids in all.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        padding: Padding,
        truncation: Truncation,
    ) -> Result<BatchEncoding, TokenizerError> {
        if texts.is_empty() {
            return Err(TokenizerError::EmptyBatch);
        }
        let check = |n: usize| {
            if n < 2 {
                Err(TokenizerError::MaxLengthTooSmall { max_length: n })
            } else {
                Ok(n)
            }
        };
        let mut limit = match truncation {
            Truncation::None => None,
            Truncation::ModelMax => Some(self.inner.options.max_length),
            Truncation::MaxLength(n) => Some(check(n)?),
        };
        if let Padding::Fixed(n) = padding {
            let n = check(n)?;
            let cells = n.checked_mul(texts.len());
            if n > MAX_PADDED_LENGTH || cells.is_none_or(|c| c > MAX_PADDED_CELLS) {
                return Err(TokenizerError::PaddingTooLong {
                    length: n,
                    rows: texts.len(),
                });
            }
            limit = Some(limit.map_or(n, |l| l.min(n)));
        }
        let rows: Vec<Vec<u32>> = if texts.len() >= 16 {
            texts
                .par_iter()
                .map(|t| self.encode_ids(t.as_ref(), limit))
                .collect()
        } else {
            texts
                .iter()
                .map(|t| self.encode_ids(t.as_ref(), limit))
                .collect()
        };
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let seq_len = match padding {
            Padding::Longest => longest,
            Padding::Fixed(n) => n,
            Padding::None => {
                let first = rows.first().map_or(0, Vec::len);
                if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != first) {
                    return Err(TokenizerError::RaggedBatch {
                        first,
                        row,
                        len: r.len(),
                    });
                }
                first
            }
        };
        let mut ids = Vec::with_capacity(rows.len() * seq_len);
        let mut attention_mask = Vec::with_capacity(rows.len() * seq_len);
        for row in &rows {
            ids.extend_from_slice(row);
            ids.resize(ids.len() + (seq_len - row.len()), self.inner.pad_id);
            attention_mask.resize(attention_mask.len() + row.len(), 1);
            attention_mask.resize(attention_mask.len() + (seq_len - row.len()), 0);
        }
        Ok(BatchEncoding {
            ids,
            attention_mask,
            batch_size: rows.len(),
            seq_len,
        })
    }

    /// `[CLS] tokens [SEP]`, truncated to `limit` (>= 2) keeping `[SEP]` last.
    fn encode_ids(&self, text: &str, limit: Option<usize>) -> Vec<u32> {
        let mut ids = vec![self.inner.cls_id];
        self.push_text_ids(text, &mut ids);
        if let Some(limit) = limit {
            ids.truncate(limit.saturating_sub(1).max(1));
        }
        ids.push(self.inner.sep_id);
        ids
    }

    /// The special token (text, id) starting at byte `pos` of `text`, if any: the first in
    /// `all_special_tokens` order (`longest == false`, the lowercasing regex's alternation) or
    /// the longest (`longest == true`, the trie).
    fn special_at(&self, text: &str, pos: usize, longest: bool) -> Option<(usize, u32)> {
        let rest = &text[pos..];
        let first = rest.chars().next()?;
        if !self.inner.special_first_chars.contains(&first) {
            return None;
        }
        let mut best: Option<(usize, u32)> = None;
        for (tok, id) in &self.inner.specials {
            if rest.starts_with(tok.as_str()) {
                if !longest {
                    return Some((tok.len(), *id));
                }
                if best.is_none_or(|(l, _)| tok.len() > l) {
                    best = Some((tok.len(), *id));
                }
            }
        }
        best
    }

    /// `PreTrainedTokenizer.tokenize` + `convert_tokens_to_ids`, appending to `out`.
    fn push_text_ids(&self, text: &str, out: &mut Vec<u32>) {
        let lowered;
        let text = if self.inner.options.do_lower_case {
            lowered = self.lower_outside_specials(text);
            lowered.as_str()
        } else {
            text
        };
        let mut segment_start = 0;
        let mut pos = 0;
        while pos < text.len() {
            if let Some((len, id)) = self.special_at(text, pos, true) {
                self.basic_ids(&text[segment_start..pos], out);
                out.push(id);
                pos += len;
                segment_start = pos;
            } else {
                pos += text[pos..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.basic_ids(&text[segment_start..], out);
    }

    /// The lowercasing `re.sub` of `PreTrainedTokenizer.tokenize`: special tokens are copied,
    /// every other code point is replaced by its own `str.lower()`.
    fn lower_outside_specials(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        let mut pos = 0;
        while pos < text.len() {
            if let Some((len, _)) = self.special_at(text, pos, false) {
                out.push_str(&text[pos..pos + len]);
                pos += len;
                continue;
            }
            let Some(c) = text[pos..].chars().next() else {
                break;
            };
            push_lower(c, &mut out);
            pos += c.len_utf8();
        }
        out
    }

    fn is_special(&self, token: &str) -> bool {
        self.inner.specials.iter().any(|(t, _)| t == token)
    }

    /// `BertTokenizer._tokenize` (BasicTokenizer then WordPiece) on a piece of text without
    /// special-token matches, appending ids to `out`.
    fn basic_ids(&self, segment: &str, out: &mut Vec<u32>) {
        if segment.is_empty() {
            return;
        }
        let opts = &self.inner.options;
        // _clean_text + _tokenize_chinese_chars (both per code point, so one pass).
        let mut buf = String::with_capacity(segment.len() + 16);
        for c in segment.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_bert_whitespace(c) {
                buf.push(' ');
            } else if opts.tokenize_chinese_chars && is_chinese_char(c) {
                buf.push(' ');
                buf.push(c);
                buf.push(' ');
            } else {
                buf.push(c);
            }
        }
        if is_nfc_quick(buf.chars()) != IsNormalized::Yes {
            buf = buf.nfc().collect();
        }
        let strip = if opts.do_lower_case {
            opts.strip_accents != Some(false)
        } else {
            opts.strip_accents == Some(true)
        };
        let mut word = String::new();
        for token in buf.split(is_py_space).filter(|t| !t.is_empty()) {
            if self.is_special(token) {
                // never_split: kept whole, then WordPiece finds it in the vocabulary.
                self.wordpiece_ids(token, out);
                continue;
            }
            let mut transformed = if opts.do_lower_case {
                // Second `token.lower()`: the text was already lowercased code point by code
                // point, so no U+03A3 is left and Python's final-sigma context rule cannot apply.
                let mut s = String::with_capacity(token.len());
                token.chars().for_each(|c| push_lower(c, &mut s));
                s
            } else {
                token.to_string()
            };
            if strip && !transformed.is_ascii() {
                transformed = transformed
                    .nfd()
                    .filter(|&c| !is_nonspacing_mark(c))
                    .collect();
            }
            if self.is_special(&transformed) {
                self.wordpiece_ids(&transformed, out);
                continue;
            }
            // _run_split_on_punc, then whitespace_tokenize(" ".join(...)).
            word.clear();
            for c in transformed.chars() {
                if is_punctuation(c) {
                    self.flush_word(&word, out);
                    word.clear();
                    let mut p = [0u8; 4];
                    self.wordpiece_ids(c.encode_utf8(&mut p), out);
                } else {
                    word.push(c);
                }
            }
            self.flush_word(&word, out);
        }
    }

    /// WordPiece on every `str.split()` part of `word`.
    fn flush_word(&self, word: &str, out: &mut Vec<u32>) {
        for part in word.split(is_py_space).filter(|t| !t.is_empty()) {
            self.wordpiece_ids(part, out);
        }
    }

    /// `WordpieceTokenizer.tokenize` on one whitespace-free word.
    fn wordpiece_ids(&self, word: &str, out: &mut Vec<u32>) {
        let mut bounds: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        let n = bounds.len();
        if n == 0 {
            return;
        }
        if n > MAX_INPUT_CHARS_PER_WORD {
            out.push(self.inner.unk_id);
            return;
        }
        bounds.push(word.len());
        let mark = out.len();
        let mut start = 0;
        while start < n {
            let mut end = n;
            let mut found = None;
            while start < end {
                let piece = &word[bounds[start]..bounds[end]];
                let hit = if start == 0 {
                    self.inner.vocab.get(piece)
                } else {
                    self.inner.continuation.get(piece)
                };
                if let Some(&id) = hit {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.inner.unk_id);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> BertTokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##b\n,\n猫\n";
        BertTokenizer::from_vocab_text(vocab, Path::new("toy"), TokenizerOptions::default())
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn wordpiece_greedy_and_unk() {
        let t = toy();
        assert_eq!(t.tokenize("unaffable"), ["un", "##aff", "##able"]);
        assert_eq!(
            t.tokenize("UNAFFABLE,a猫"),
            ["un", "##aff", "##able", ",", "a", "猫"]
        );
        assert_eq!(t.tokenize("unaffablex"), ["[UNK]"]);
        // Exactly 100 chars is still split, 101 chars is one [UNK].
        let ok = format!("a{}", "b".repeat(99));
        let mut expect = vec![8u32];
        expect.extend(std::iter::repeat_n(9u32, 99));
        assert_eq!(t.token_ids(&ok), expect);
        assert_eq!(t.tokenize(&format!("a{}", "b".repeat(100))), ["[UNK]"]);
    }

    #[test]
    fn truncation_keeps_sep_last() {
        let t = toy();
        let long = "a ".repeat(1000);
        let e = t.encode(&long);
        assert_eq!(e.ids.len(), 512);
        assert_eq!(e.ids[0], 2);
        assert_eq!(e.ids[511], 3);
        let b = t
            .encode_batch(&[long.as_str(), "a"], Padding::Fixed(5), Truncation::None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.ids, [2, 8, 8, 8, 3, 2, 8, 3, 0, 0]);
        assert_eq!(b.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    }
}
