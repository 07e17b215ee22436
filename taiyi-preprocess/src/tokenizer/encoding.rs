//! Encoding texts into ids: [`Encoding`] of one text, and the [`Padding`] / [`Truncation`]
//! modes of [`BertTokenizer::encode_batch`] (which returns a [`BatchEncoding`]).

use rayon::prelude::*;

use super::{BatchEncoding, BertTokenizer, MAX_PADDED_CELLS, MAX_PADDED_LENGTH, TokenizerError};

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
    /// Truncate to [`TokenizerOptions::max_length`](super::TokenizerOptions::max_length)
    /// (Python `truncation=True`).
    ModelMax,
    /// Truncate to this many tokens (at least 2).
    MaxLength(usize),
}

impl BertTokenizer {
    /// Encodes one text as `[CLS] tokens [SEP]`, truncated to
    /// [`TokenizerOptions::max_length`](super::TokenizerOptions::max_length) (512 by default)
    /// keeping `[SEP]` last: any text, however long, gives at most `max_length` ids. No padding;
    /// the mask is all ones.
    pub fn encode(&self, text: &str) -> Encoding {
        let ids = self.encode_ids(text, Some(self.inner.options.max_length));
        let attention_mask = vec![1; ids.len()];
        Encoding {
            ids,
            attention_mask,
        }
    }

    /// Encodes one text as `[CLS] tokens [SEP]`, truncated to `max_tokens` (at least 2) keeping
    /// `[SEP]` last: the ids row `i` of [`BertTokenizer::encode_batch`] holds with
    /// `Truncation::MaxLength(max_tokens)`, without padding.
    pub fn encode_truncated(&self, text: &str, max_tokens: usize) -> Vec<u32> {
        self.encode_ids(text, Some(max_tokens.max(2)))
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
}
