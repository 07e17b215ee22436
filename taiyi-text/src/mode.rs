//! The three ways of turning tokenised texts into Taiyi text features.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::checks::{check_mask, int_values};
use crate::{BertModel, TextError};

/// How a batch of tokenised texts is padded and whether padding is masked.
///
/// The model card passes no attention mask, so a text's feature depends on how much padding its
/// batch adds (REFERENCE.md §1); each mode below reproduces one PyTorch usage exactly.
///
/// Each mode has one name (`card`, `fixed77`, `masked`: [`TextMode::name`], `Display`, the CLI,
/// the server and the Python module); [`FromStr`](std::str::FromStr) also takes `model-card`.
/// With the `clap` feature it is a `clap::ValueEnum` of those names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TextMode {
    /// The model card: pad to the longest text of the batch, no attention mask (padding is
    /// attended to). A text's feature depends on the batch it is in.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "card", alias = "model-card"))]
    ModelCard,
    /// Fengshenbang's training/evaluation code: pad or truncate every text to 77 tokens, no
    /// attention mask. Batch-independent (every text gets the same padding).
    #[cfg_attr(feature = "clap", value(name = "fixed77"))]
    Fixed77,
    /// Pad to the longest text and pass the attention mask: padding is ignored, so a text's
    /// feature does not depend on its batch (up to float rounding).
    Masked,
}

impl TextMode {
    /// Sequence length used by [`TextMode::Fixed77`].
    pub const FIXED_LEN: usize = 77;

    /// The padded length this mode uses: `Some(77)` for [`TextMode::Fixed77`], `None` (the
    /// longest text of the batch) otherwise.
    pub fn pad_to(&self) -> Option<usize> {
        match self {
            TextMode::Fixed77 => Some(Self::FIXED_LEN),
            TextMode::ModelCard | TextMode::Masked => None,
        }
    }

    /// Whether the attention mask is passed to the encoder (only [`TextMode::Masked`]).
    pub fn uses_mask(&self) -> bool {
        matches!(self, TextMode::Masked)
    }

    /// Whether texts longer than [`TextMode::pad_to`] are truncated (only [`TextMode::Fixed77`]).
    pub fn truncates(&self) -> bool {
        self.pad_to().is_some()
    }

    /// The mode's name (command lines, the server's JSON, Python): `card`, `fixed77`, `masked`.
    pub fn name(&self) -> &'static str {
        match self {
            TextMode::ModelCard => "card",
            TextMode::Fixed77 => "fixed77",
            TextMode::Masked => "masked",
        }
    }
}

impl std::fmt::Display for TextMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TextMode {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "card" | "model-card" | "modelcard" => Ok(TextMode::ModelCard),
            "fixed77" | "fixed-77" => Ok(TextMode::Fixed77),
            "masked" => Ok(TextMode::Masked),
            _ => Err(TextError::UnknownMode {
                name: s.to_string(),
            }),
        }
    }
}

/// Ids (and mask) of a batch re-laid out for one [`TextMode`], on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeBatch {
    /// Row-major `[batch, seq]` ids.
    pub ids: Vec<i64>,
    /// Row-major `[batch, seq]` mask (1 = token, 0 = padding).
    pub mask: Vec<i64>,
    /// Number of texts.
    pub batch: usize,
    /// Sequence length after the mode's padding rule.
    pub seq: usize,
}

impl TextMode {
    /// Re-lay out right-padded `ids`/`mask` (row-major `[batch, seq]`) for this mode:
    /// trailing padding columns are dropped (pad to the longest real text), then for
    /// [`TextMode::Fixed77`] every row is padded with `pad_id` to 77, and a text longer than 77
    /// keeps its first 76 tokens and its last one (`[SEP]`), as the tokenizer's truncation does.
    ///
    /// Padding positions (mask 0) get `pad_id`. Errors if a row is empty or not right-padded
    /// (a 1 after a 0 in the mask).
    pub fn layout(
        &self,
        ids: &[i64],
        mask: &[i64],
        batch: usize,
        seq: usize,
        pad_id: i64,
    ) -> Result<ModeBatch, TextError> {
        let mut lens = Vec::with_capacity(batch);
        for r in 0..batch {
            let row = &mask[r * seq..(r + 1) * seq];
            let len = row.iter().take_while(|&&m| m == 1).count();
            if len == 0 {
                return Err(TextError::EmptyText { row: r });
            }
            if row[len..].iter().any(|&m| m != 0) {
                return Err(TextError::NotRightPadded { row: r });
            }
            lens.push(len);
        }
        let longest = lens.iter().copied().max().unwrap_or(0);
        let out_seq = self.pad_to().unwrap_or(longest);
        let mut out_ids = vec![pad_id; batch * out_seq];
        let mut out_mask = vec![0i64; batch * out_seq];
        for (r, &len) in lens.iter().enumerate() {
            let src = &ids[r * seq..r * seq + len];
            let dst = &mut out_ids[r * out_seq..(r + 1) * out_seq];
            let m = &mut out_mask[r * out_seq..(r + 1) * out_seq];
            if len <= out_seq {
                dst[..len].copy_from_slice(src);
                m[..len].fill(1);
            } else {
                // Keep the first out_seq - 1 tokens and the final one ([SEP]).
                dst[..out_seq - 1].copy_from_slice(&src[..out_seq - 1]);
                dst[out_seq - 1] = src[len - 1];
                m.fill(1);
            }
        }
        Ok(ModeBatch {
            ids: out_ids,
            mask: out_mask,
            batch,
            seq: out_seq,
        })
    }
}

impl<B: Backend> BertModel<B> {
    /// Text features for one [`TextMode`]: the raw (not normalised) pooler output, `[batch, hidden]`.
    ///
    /// - `ids`: `[batch, seq]` token ids as the tokenizer returns them (`[CLS] … [SEP]`, right-padded).
    /// - `mask`: `[batch, seq]`, 1 for tokens, 0 for padding.
    ///
    /// The batch is re-laid out for `mode` (see [`TextMode::layout`]: any amount of input padding
    /// gives the same result), then encoded with the mask only in [`TextMode::Masked`].
    /// Errors (never panics) on mismatched shapes, empty rows, ids outside the vocabulary, and
    /// sequences longer than the model's positions.
    pub fn text_features(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Int>,
        mode: TextMode,
    ) -> Result<Tensor<B, 2>, TextError> {
        let [batch, seq] = ids.dims();
        if batch == 0 || seq == 0 {
            return Err(TextError::EmptyInput { batch, seq });
        }
        let mask_values = check_mask(&ids, &mask)?;
        let id_values = int_values(&ids)?;
        let pad = i64::try_from(self.pad_token_id()).map_err(|_| TextError::UnsupportedConfig {
            message: format!("pad_token_id {} does not fit i64", self.pad_token_id()),
        })?;
        let laid = mode.layout(&id_values, &mask_values, batch, seq, pad)?;
        let device = ids.device();
        let shape = [laid.batch, laid.seq];
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(laid.ids, shape), &device);
        let mask = mode
            .uses_mask()
            .then(|| Tensor::<B, 2, Int>::from_data(TensorData::new(laid.mask, shape), &device));
        Ok(self.try_forward(ids, mask)?.pooler_output)
    }
}
