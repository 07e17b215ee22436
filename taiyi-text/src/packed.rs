//! Packed (padding-free) batches: every token of a batch one row of one matrix, attention per
//! text over its own rows (`taiyi_nn::attend_packed`), the pooler on each text's `[CLS]` row.
//!
//! Why: padding wastes work (a batch costs its longest text × its size), and a padded row, even
//! masked, takes other summation paths than the same text alone, so its feature is equal to the
//! text's own only up to float rounding. Packed, the per-token layers (embeddings, projections,
//! MLP, LayerNorm) see a text's rows as they would alone (the CPU gemm's rows do not depend on
//! the other rows: `taiyi-nn/src/flex/gemm.rs`), and attention reads only the text's own rows:
//! a text's feature is the same, bit for bit, in any batch (`tests/packed.rs`).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use taiyi_nn::{attend_packed, linear_rows};

use crate::BertModel;
use crate::model::{BertLayer, BertOutput, BertSelfAttention};

impl<B: Backend> BertSelfAttention<B> {
    /// Self-attention of packed texts: rows `offsets[i] .. offsets[i + 1]` are text `i`,
    /// which attends to its own rows only.
    ///
    /// # Shapes
    /// `x`: `[1, total, hidden]` → `[1, total, hidden]`.
    pub fn forward_packed(&self, x: Tensor<B, 3>, offsets: &[usize]) -> Tensor<B, 3> {
        let rows = |layer| linear_rows(layer, x.clone());
        let (q, k, v) = (rows(&self.query), rows(&self.key), rows(&self.value));
        attend_packed(q, k, v, self.num_heads, offsets, self.kernel)
    }
}

impl<B: Backend> BertLayer<B> {
    /// [`BertLayer::forward`] on packed texts (see [`BertModel::forward_packed`]).
    ///
    /// # Shapes
    /// `x`: `[1, total, hidden]` → `[1, total, hidden]`.
    pub fn forward_packed(&self, x: Tensor<B, 3>, offsets: &[usize]) -> Tensor<B, 3> {
        let ctx = self.attention.self_attn.forward_packed(x.clone(), offsets);
        self.after_attention(ctx, x)
    }
}

impl<B: Backend> BertModel<B> {
    /// Run the encoder on packed texts, without validating the inputs: text `i` is tokens
    /// `offsets[i] .. offsets[i + 1]` of `input_ids`, at `positions` (each text counting from
    /// 0; `taiyi_preprocess`'s `PackedEncoding::to_tensors` builds both). No padding, no mask:
    /// each text attends to its own tokens, so its outputs are those of the text alone
    /// (`masked` mode's definition), computed without padding work.
    ///
    /// Returns `last_hidden_state` `[1, total, hidden]` (the texts' rows in order) and
    /// `pooler_output` `[texts, hidden]`.
    ///
    /// # Shapes
    /// `input_ids`, `positions`: `[1, total]`; `offsets`: `texts + 1` ascending row indices,
    /// `0` first and `total` last.
    ///
    /// The backend may panic on a position past [`BertModel::max_positions`], an id out of the
    /// vocabulary or offsets that do not describe the rows: check on the host first
    /// (`PackedEncoding::check`).
    pub fn forward_packed(
        &self,
        input_ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        offsets: &[usize],
    ) -> BertOutput<B> {
        let mut x = self.embeddings.forward_at(input_ids, positions);
        for layer in &self.encoder.layer {
            x = layer.forward_packed(x, offsets);
        }
        let [_, total, hidden] = x.dims();
        let texts = offsets.len().saturating_sub(1);
        let starts: Vec<i64> = offsets[..texts].iter().map(|&o| o as i64).collect();
        let starts = Tensor::<B, 1, Int>::from_data(TensorData::new(starts, [texts]), &x.device());
        let cls = x.clone().reshape([total, hidden]).select(0, starts);
        BertOutput {
            last_hidden_state: x,
            pooler_output: self.head_forward(cls),
        }
    }
}
