//! [`BatchEncoding`], the one padded batch of token ids (on the host), and [`TokenBatch`], the
//! same on a device. Every padded batch of the workspace is built here: the tokenizer decides
//! the padding ([`BertTokenizer::encode_batch`], [`BertTokenizer::rebatch`]).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::{BertTokenizer, TokenizerError};

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

/// Token ids and attention mask of a batch on a device: what the text tower takes.
///
/// # Shapes
/// `ids` and `mask` are both `[batch, seq]`; `mask` is 1 for tokens, 0 for padding.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    /// Token ids `[batch, seq]`.
    pub ids: Tensor<B, 2, Int>,
    /// Attention mask `[batch, seq]` (1 = token, 0 = padding).
    pub mask: Tensor<B, 2, Int>,
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

    /// The number of real tokens (mask 1) of row `row`; 0 past the end.
    pub fn row_len(&self, row: usize) -> usize {
        self.row_mask(row)
            .map_or(0, |m| m.iter().filter(|&&v| v == 1).count())
    }

    /// Check the batch against the model it is meant for, on the host: rows no longer than
    /// `max_positions`, every id below `vocab_size`. Encoders call this before building device
    /// tensors, so that a forward pass never reads its inputs back.
    pub fn check(&self, vocab_size: usize, max_positions: usize) -> Result<(), TokenizerError> {
        if self.seq_len > max_positions {
            return Err(TokenizerError::TooManyTokens {
                len: self.seq_len,
                max: max_positions,
            });
        }
        let seq = self.seq_len.max(1);
        match self
            .ids
            .iter()
            .enumerate()
            .find(|(_, id)| u64::from(**id) >= vocab_size as u64)
        {
            Some((i, &id)) => Err(TokenizerError::IdOutOfVocab {
                id,
                row: i / seq,
                col: i % seq,
                vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// The batch as `[batch_size, seq_len]` integer tensors on `device`.
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> TokenBatch<B> {
        let shape = [self.batch_size, self.seq_len];
        let ints = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, shape), device)
        };
        TokenBatch {
            ids: ints(&self.ids),
            mask: ints(&self.attention_mask),
        }
    }
}

impl BertTokenizer {
    /// A new batch of rows `rows` of `enc` (in that order), each re-padded (or cut, keeping its
    /// first `seq_len` ids) to `seq_len`, followed by filler rows `[CLS] [SEP]` up to
    /// `total_rows` (shape buckets: the caller drops their outputs).
    ///
    /// # Shapes
    /// `enc` `[n, s]`, `rows.len() <= total_rows` → `[total_rows, seq_len]`.
    pub fn rebatch(
        &self,
        enc: &BatchEncoding,
        rows: &[usize],
        seq_len: usize,
        total_rows: usize,
    ) -> BatchEncoding {
        let total_rows = total_rows.max(rows.len());
        let mut ids = vec![self.inner.pad_id; total_rows * seq_len];
        let mut attention_mask = vec![0u32; total_rows * seq_len];
        let filler = [self.inner.cls_id, self.inner.sep_id];
        for r in 0..total_rows {
            let dst = &mut ids[r * seq_len..(r + 1) * seq_len];
            let src = match rows.get(r) {
                Some(&i) => enc.row_ids(i).map_or(&[][..], |row| &row[..enc.row_len(i)]),
                None => &filler[..],
            };
            let len = src.len().min(seq_len);
            dst[..len].copy_from_slice(&src[..len]);
            attention_mask[r * seq_len..r * seq_len + len].fill(1);
        }
        BatchEncoding {
            ids,
            attention_mask,
            batch_size: total_rows,
            seq_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> BatchEncoding {
        // [CLS] a b [SEP] / [CLS] c [SEP] [PAD]
        BatchEncoding {
            ids: vec![101, 1, 2, 102, 101, 3, 102, 0],
            attention_mask: vec![1, 1, 1, 1, 1, 1, 1, 0],
            batch_size: 2,
            seq_len: 4,
        }
    }

    #[test]
    fn check_names_the_first_bad_id_and_the_length() {
        let b = batch();
        assert!(b.check(200, 4).is_ok());
        assert!(matches!(
            b.check(102, 4),
            Err(TokenizerError::IdOutOfVocab {
                id: 102,
                row: 0,
                col: 3,
                vocab_size: 102
            })
        ));
        assert!(matches!(
            b.check(200, 3),
            Err(TokenizerError::TooManyTokens { len: 4, max: 3 })
        ));
        assert_eq!((b.row_len(0), b.row_len(1), b.row_len(2)), (4, 3, 0));
    }
}
