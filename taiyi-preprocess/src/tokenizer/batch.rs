//! [`BatchEncoding`], the one padded batch of token ids (on the host), and [`TokenBatch`], the
//! same on a device; [`PackedEncoding`] / [`PackedTokens`], the unpadded (packed) layout of
//! the same texts. Every batch layout of the workspace is built here: the tokenizer decides the
//! padding ([`BertTokenizer::encode_batch`], [`BertTokenizer::rebatch`],
//! [`BertTokenizer::pad_rows`], [`BatchEncoding::pack`]).

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

/// Texts' ids back to back, without padding: the packed layout of the text tower's
/// `forward_packed` (every token of a batch one row of one matrix, attention per text).
///
/// `offsets` has one entry per text and the total last: text `i` is
/// `ids[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedEncoding {
    /// Every text's ids (`[CLS] … [SEP]`), one text after the other.
    pub ids: Vec<u32>,
    /// Where each text starts in `ids`, then `ids.len()` (`texts + 1` strictly ascending
    /// entries).
    pub offsets: Vec<usize>,
}

/// A [`PackedEncoding`] on a device: ids and explicit positions (each text counts from 0).
///
/// # Shapes
/// `ids`, `positions`: `[1, total_tokens]`; `offsets`: `texts + 1` entries, `0` first,
/// `total_tokens` last.
#[derive(Debug, Clone)]
pub struct PackedTokens<B: Backend> {
    /// Token ids `[1, total]`.
    pub ids: Tensor<B, 2, Int>,
    /// Each token's position in its own text `[1, total]`.
    pub positions: Tensor<B, 2, Int>,
    /// Row offsets of the texts (host).
    pub offsets: Vec<usize>,
}

impl PackedEncoding {
    /// Pack `rows` (each a text's ids) in order.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a [u32]>) -> Self {
        let mut ids = Vec::new();
        let mut offsets = vec![0];
        for row in rows {
            ids.extend_from_slice(row);
            offsets.push(ids.len());
        }
        Self { ids, offsets }
    }

    /// Number of texts.
    pub fn texts(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Number of tokens of all texts together.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// The ids of text `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[u32]> {
        let (&start, &end) = (self.offsets.get(i)?, self.offsets.get(i + 1)?);
        self.ids.get(start..end)
    }

    /// Check the batch against the model it is meant for, on the host (as
    /// [`BatchEncoding::check`]): no text longer than `max_positions`, every id below
    /// `vocab_size`, offsets that describe the ids (ascending, no empty text).
    pub fn check(&self, vocab_size: usize, max_positions: usize) -> Result<(), TokenizerError> {
        let valid = self.offsets.first() == Some(&0)
            && self.offsets.last() == Some(&self.ids.len())
            && self.offsets.windows(2).all(|w| w[0] < w[1]);
        if !valid {
            return Err(TokenizerError::BadPacking {
                texts: self.texts(),
                tokens: self.ids.len(),
            });
        }
        for (row, w) in self.offsets.windows(2).enumerate() {
            let ids = &self.ids[w[0]..w[1]];
            if ids.len() > max_positions {
                return Err(TokenizerError::TooManyTokens {
                    len: ids.len(),
                    max: max_positions,
                });
            }
            if let Some((col, &id)) = ids
                .iter()
                .enumerate()
                .find(|(_, id)| u64::from(**id) >= vocab_size as u64)
            {
                return Err(TokenizerError::IdOutOfVocab {
                    id,
                    row,
                    col,
                    vocab_size,
                });
            }
        }
        Ok(())
    }

    /// The batch as `[1, total]` ids and positions on `device`.
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> PackedTokens<B> {
        let shape = [1, self.ids.len()];
        let ids: Vec<i64> = self.ids.iter().map(|&x| i64::from(x)).collect();
        let positions: Vec<i64> = self
            .offsets
            .windows(2)
            .flat_map(|w| 0..(w[1] - w[0]) as i64)
            .collect();
        PackedTokens {
            ids: Tensor::from_data(TensorData::new(ids, shape), device),
            positions: Tensor::from_data(TensorData::new(positions, shape), device),
            offsets: self.offsets.clone(),
        }
    }
}

impl BatchEncoding {
    /// Rows `rows` of this batch (in that order), each without its padding, packed.
    pub fn pack(&self, rows: &[usize]) -> PackedEncoding {
        PackedEncoding::from_rows(rows.iter().map(|&i| {
            self.row_ids(i)
                .map_or(&[][..], |row| &row[..self.row_len(i).min(row.len())])
        }))
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

    /// Already tokenized texts (each `[CLS] … [SEP]`, as [`BertTokenizer::encode_truncated`]
    /// gives them) as one batch padded to the longest with `[PAD]`, the mask 1 on their ids.
    ///
    /// # Shapes
    /// `rows.len() = n` → `[n, longest]`.
    pub fn pad_rows<R: AsRef<[u32]>>(&self, rows: &[R]) -> BatchEncoding {
        let seq_len = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        let mut ids = vec![self.inner.pad_id; rows.len() * seq_len];
        let mut attention_mask = vec![0u32; rows.len() * seq_len];
        for (r, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            ids[r * seq_len..r * seq_len + row.len()].copy_from_slice(row);
            attention_mask[r * seq_len..r * seq_len + row.len()].fill(1);
        }
        BatchEncoding {
            ids,
            attention_mask,
            batch_size: rows.len(),
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

    #[test]
    fn packing_drops_the_padding_and_keeps_each_texts_positions() {
        let b = batch();
        let p = b.pack(&[1, 0]);
        assert_eq!(p.ids, vec![101, 3, 102, 101, 1, 2, 102]);
        assert_eq!(p.offsets, vec![0, 3, 7]);
        assert_eq!((p.texts(), p.tokens()), (2, 7));
        assert_eq!(p.row(1), Some(&[101, 1, 2, 102][..]));
        assert_eq!(p.row(2), None);
        assert!(p.check(200, 4).is_ok());
        // The second text (4 tokens) is over 3 positions; id 102 is outside a 102-id vocab at
        // text 0, column 2.
        assert!(matches!(
            p.check(200, 3),
            Err(TokenizerError::TooManyTokens { len: 4, max: 3 })
        ));
        assert!(matches!(
            p.check(102, 4),
            Err(TokenizerError::IdOutOfVocab {
                id: 102,
                row: 0,
                col: 2,
                ..
            })
        ));
        let t = p.to_tensors::<burn::backend::Flex>(&Default::default());
        let positions: Vec<i64> = t.positions.into_data().iter::<i64>().collect();
        assert_eq!(positions, vec![0, 1, 2, 0, 1, 2, 3]);
        assert_eq!(t.ids.dims(), [1, 7]);
        let broken = PackedEncoding {
            ids: vec![101, 102],
            offsets: vec![0, 3],
        };
        assert!(matches!(
            broken.check(200, 4),
            Err(TokenizerError::BadPacking {
                texts: 1,
                tokens: 2
            })
        ));
    }
}
