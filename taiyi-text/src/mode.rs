//! The three ways of turning tokenised texts into Taiyi text features. A mode is a padding
//! rule (applied by the tokenizer, `taiyi_preprocess`) and whether the mask is passed to
//! [`BertModel::forward`](crate::BertModel::forward); `taiyi_core::TextEncoder` applies both.

use crate::TextError;

/// How a batch of tokenised texts is padded and whether padding is masked.
///
/// The model card passes no attention mask, so a text's feature depends on how much padding its
/// batch adds (REFERENCE.md §1); each mode below reproduces one PyTorch usage exactly.
///
/// Each mode has one name (`card`, `fixed77`, `masked`: [`TextMode::name`], `Display`, the CLI,
/// the server and the Python module); [`FromStr`](std::str::FromStr) also takes `model-card`.
/// With the `clap` feature it is a `clap::ValueEnum` of those names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
    /// Each text attends to its own tokens only (the attention mask): a text's feature does
    /// not depend on its batch. `taiyi_core::TextEncoder` runs it packed on the CPU (no
    /// padding at all: the same bits as the text alone, in any batch) and padded to the
    /// longest text under the mask on GPUs (the same up to float rounding).
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

    /// The most tokens (`[CLS]` and `[SEP]` included) a text keeps in this mode: the
    /// tokenizer's `model_max_length`, the model's `max_positions`, and 77 in
    /// [`TextMode::Fixed77`], whichever is smallest (at least 2, `[CLS]` + `[SEP]`). Longer
    /// texts are truncated keeping `[SEP]` last. The one rule for every caller:
    /// `TextEncoder` embeds these ids and `taiyi tokenize --mode` prints them.
    pub fn max_tokens(&self, model_max_length: usize, max_positions: usize) -> usize {
        let limit = model_max_length.min(max_positions);
        self.pad_to().map_or(limit, |n| n.min(limit)).max(2)
    }

    /// Whether a text's feature is the same whatever it is batched with: true for
    /// [`TextMode::Fixed77`] (every text gets the same padding) and [`TextMode::Masked`]
    /// (padding is masked), false for [`TextMode::ModelCard`] (padding is attended to). The
    /// one place that says which modes a server may batch across requests.
    pub fn batch_invariant(&self) -> bool {
        !matches!(self, TextMode::ModelCard)
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
