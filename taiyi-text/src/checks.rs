//! Input checks of the text tower: ids, masks, and reading integer tensors back.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::{BertModel, TextError};

impl<B: Backend> BertModel<B> {
    pub(crate) fn check_ids(&self, ids: &Tensor<B, 2, Int>) -> Result<(), TextError> {
        let [batch, seq] = ids.dims();
        if batch == 0 || seq == 0 {
            return Err(TextError::EmptyInput { batch, seq });
        }
        if seq > self.max_positions() {
            return Err(TextError::SequenceTooLong {
                len: seq,
                max: self.max_positions(),
            });
        }
        self.check_host_ids(&int_values(ids)?, seq)
    }

    /// Every id of row-major `[batch, seq]` `ids` must be in the vocabulary.
    fn check_host_ids(&self, ids: &[i64], seq: usize) -> Result<(), TextError> {
        if let Some((i, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, v)| **v < 0 || **v as u64 >= self.vocab_size() as u64)
        {
            return Err(TextError::TokenOutOfRange {
                id,
                row: i / seq.max(1),
                col: i % seq.max(1),
                vocab_size: self.vocab_size(),
            });
        }
        Ok(())
    }
}

pub(crate) fn check_mask<B: Backend>(
    ids: &Tensor<B, 2, Int>,
    mask: &Tensor<B, 2, Int>,
) -> Result<Vec<i64>, TextError> {
    if ids.dims() != mask.dims() {
        return Err(TextError::MaskShape {
            ids: ids.dims().to_vec(),
            mask: mask.dims().to_vec(),
        });
    }
    let values = int_values(mask)?;
    if let Some(&v) = values.iter().find(|v| **v != 0 && **v != 1) {
        return Err(TextError::MaskValue { value: v });
    }
    Ok(values)
}

pub(crate) fn int_values<B: Backend>(t: &Tensor<B, 2, Int>) -> Result<Vec<i64>, TextError> {
    t.to_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .map_err(|e| TextError::Backend {
            message: format!("cannot read an integer tensor back: {e:?}"),
        })
}
