//! [`TextEncoder`]: tokenizer + BERT text tower.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use taiyi_preprocess::tokenizer::{
    BatchEncoding, BertTokenizer, Padding, TokenBatch, TokenizerError, Truncation,
};
use taiyi_text::{BertModel, DenseFormat, TextMode};

use super::{DEFAULT_TEXT_BATCH, EncodeOptions};
use crate::{ClipError, ShapeBuckets};

/// Tokenizer + BERT text tower: Chinese texts in, 1024-d features out.
///
/// The features are the BERT pooler output (Taiyi has no text projection). How texts are
/// padded, and whether padding is masked, is the [`TextMode`] (default
/// [`TextMode::ModelCard`], which reproduces the model card: pad to the longest text of the
/// call, no attention mask). Texts are encoded `batch_size` at a time; in the unmasked modes
/// every chunk is padded to the same length as the whole call would be, so the result is
/// identical to one big batch in every mode. In [`TextMode::Masked`] on the CPU the chunks run
/// packed, without padding ([`TextEncoder::packs`]), and every text's feature is the one it
/// gets alone, bit for bit.
///
/// Inputs are tokenized and checked on the host; the forward pass never reads anything back
/// from the device. With [`ShapeBuckets`] (on GPU backends) chunks are padded to a few fixed
/// shapes so that kernels are compiled once per bucket.
///
/// Cloning is cheap: the clone shares the weights (burn tensors are reference-counted), so
/// `enc.clone().with_mode(m)` gives a second encoder in another mode without loading again.
#[derive(Debug, Clone)]
pub struct TextEncoder<B: Backend> {
    model: BertModel<B>,
    tokenizer: BertTokenizer,
    mode: TextMode,
    batch_size: usize,
    buckets: ShapeBuckets,
    device: B::Device,
    cache_id: u64,
}

/// The next [`TextEncoder::cache_id`].
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

impl<B: Backend> TextEncoder<B> {
    /// Load the tokenizer and the BERT weights from an HF model directory (`config.json`,
    /// `vocab.txt`, `tokenizer_config.json`, and `model.safetensors` or `pytorch_model.bin`).
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, ClipError> {
        Self::from_dir_as(dir, device, DenseFormat::Float)
    }

    /// [`TextEncoder::from_dir`] with the tower's linear weights held as `weights` says
    /// ([`DenseFormat::PackedBf16`]: bf16 for the CPU kernels, `--precision bf16`).
    pub fn from_dir_as(
        dir: impl AsRef<Path>,
        device: &B::Device,
        weights: DenseFormat,
    ) -> Result<Self, ClipError> {
        let dir = dir.as_ref();
        let tokenizer = BertTokenizer::from_model_dir(dir)?;
        // The sizes are checked before the weights are read (they take seconds).
        let config = taiyi_text::read_config(&dir.join("config.json"))?;
        if tokenizer.vocab_size() > config.vocab_size {
            // Ids past the embedding table would fail on the first text that uses them.
            return Err(ClipError::VocabMismatch {
                dir: dir.to_path_buf(),
                vocab: tokenizer.vocab_size(),
                config: config.vocab_size,
            });
        }
        let (model, _) = BertModel::from_pretrained_dir_as(dir, device, weights)?;
        Ok(Self::new(model, tokenizer, device.clone()))
    }

    /// Assemble from parts.
    pub fn new(model: BertModel<B>, tokenizer: BertTokenizer, device: B::Device) -> Self {
        Self {
            model,
            tokenizer,
            mode: TextMode::default(),
            batch_size: DEFAULT_TEXT_BATCH,
            buckets: ShapeBuckets::NONE,
            device,
            cache_id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This encoder's weights as a [`TextCache`](crate::TextCache) key: a number given once per
    /// [`TextEncoder::new`] (every load), kept by clones and the `with_*` builders (they share
    /// the weights; the mode is a key of its own).
    pub fn cache_id(&self) -> u64 {
        self.cache_id
    }

    /// Use another text mode.
    pub fn with_mode(mut self, mode: TextMode) -> Self {
        self.mode = mode;
        self
    }

    /// Encode at most `batch_size` texts per forward pass (minimum 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Pad chunks to shape buckets (see [`ShapeBuckets`]; default [`ShapeBuckets::NONE`]).
    pub fn with_buckets(mut self, buckets: ShapeBuckets) -> Self {
        self.buckets = buckets;
        self
    }

    /// The text mode in use.
    pub fn mode(&self) -> TextMode {
        self.mode
    }

    /// Texts per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shape buckets in use.
    pub fn buckets(&self) -> ShapeBuckets {
        self.buckets
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// The BERT tower.
    pub fn model(&self) -> &BertModel<B> {
        &self.model
    }

    /// Width of the text features (1024 for Taiyi, the `projection_dim` for Chinese-CLIP).
    pub fn output_dim(&self) -> usize {
        self.model.output_dim()
    }

    /// The device the tower lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The longest token sequence a text keeps ([`TextMode::max_tokens`]): the tokenizer's
    /// `model_max_length`, the model's positions (512) and 77 in [`TextMode::Fixed77`],
    /// whichever is smallest; longer texts are truncated keeping `[SEP]` last.
    pub fn max_tokens(&self) -> usize {
        self.mode.max_tokens(
            self.tokenizer.options().max_length,
            self.model.max_positions(),
        )
    }

    /// Tokenize `texts`, truncated to [`Self::max_tokens`] and padded to the longest (the
    /// chunks are re-padded for the mode by [`BertTokenizer::rebatch`]).
    fn tokenize_host<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<BatchEncoding, ClipError> {
        if texts.is_empty() {
            return Err(ClipError::EmptyInput { what: "no texts" });
        }
        Ok(self.tokenizer.encode_batch(
            texts,
            Padding::Longest,
            Truncation::MaxLength(self.max_tokens()),
        )?)
    }

    /// Token ids and attention mask for `texts` as the mode pads them (the whole call in one
    /// batch, no buckets), checked against the model's vocabulary and positions: the ids that
    /// [`TextEncoder::encode`] embeds. Texts longer than [`TextEncoder::max_tokens`] are
    /// truncated, keeping `[SEP]` last.
    ///
    /// # Shapes
    /// `texts.len() = n` → `ids`, `mask` `[n, seq]` (`seq` = 77 in [`TextMode::Fixed77`], the
    /// longest text otherwise).
    pub fn tokenize<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<TokenBatch<B>, ClipError> {
        let enc = self.tokenize_host(texts)?;
        let order: Vec<usize> = (0..enc.batch_size).collect();
        let seq = self.mode.pad_to().unwrap_or(enc.seq_len);
        let batch = self.tokenizer.rebatch(&enc, &order, seq, order.len());
        batch.check(self.model.vocab_size(), self.model.max_positions())?;
        Ok(batch.to_tensors(&self.device))
    }

    /// Run one padded chunk (checked on the host first); returns the pooler output of its
    /// first `keep` rows.
    fn forward_chunk(&self, batch: &BatchEncoding, keep: usize) -> Result<Tensor<B, 2>, ClipError> {
        batch.check(self.model.vocab_size(), self.model.max_positions())?;
        let TokenBatch { ids, mask } = batch.to_tensors::<B>(&self.device);
        let pooled = self
            .model
            .forward(ids, self.mode.uses_mask().then_some(mask))
            .pooler_output;
        Ok(if keep < batch.batch_size {
            pooled.slice(0..keep)
        } else {
            pooled
        })
    }

    /// Text features `[n, 1024]`: L2-normalised in f32 (the default, see
    /// [`l2_normalize`](super::l2_normalize)) or raw in the model's float dtype
    /// ([`EncodeOptions::raw`]); `options.progress` hears the number of texts done after every
    /// chunk.
    ///
    /// In [`TextMode::Masked`] on the CPU backend ([`TextEncoder::packs`]) each chunk of
    /// `batch_size` texts runs packed, without padding ([`BertModel::forward_packed`]): a text's
    /// feature is then the same, bit for bit, whatever it is batched with. On other backends
    /// texts are grouped by length (longest first) and each chunk is padded only to its own
    /// longest text (rounded up to the buckets) under the mask: equal to the text alone up to
    /// float rounding. The rows come back in input order.
    ///
    /// # Shapes
    /// `texts.len() = n` → `[n, hidden]`.
    pub fn encode<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: &EncodeOptions<'_>,
    ) -> Result<Tensor<B, 2>, ClipError> {
        let enc = self.tokenize_host(texts)?;
        self.encode_batch(&enc, options)
    }

    /// [`TextEncoder::encode`] of texts tokenized already, each row `[CLS] … [SEP]` of at most
    /// [`TextEncoder::max_tokens`] ids, as
    /// [`BertTokenizer::encode_truncated`]`(text, encoder.max_tokens())` gives them: the same
    /// features as `encode` of the texts. For callers that tokenize elsewhere (the server
    /// tokenizes on its request threads, once).
    ///
    /// # Errors
    /// No rows, a row of fewer than 2 or more than `max_tokens` ids, an id outside the
    /// vocabulary.
    ///
    /// # Shapes
    /// `rows.len() = n` → `[n, hidden]`.
    pub fn encode_token_rows<R: AsRef<[u32]>>(
        &self,
        rows: &[R],
        options: &EncodeOptions<'_>,
    ) -> Result<Tensor<B, 2>, ClipError> {
        if rows.is_empty() {
            return Err(ClipError::EmptyInput { what: "no texts" });
        }
        let max = self.max_tokens();
        for (i, row) in rows.iter().map(AsRef::as_ref).enumerate() {
            if row.len() > max {
                return Err(TokenizerError::TooManyTokens {
                    len: row.len(),
                    max,
                }
                .into());
            }
            if row.len() < 2 {
                return Err(ClipError::Mismatch {
                    message: format!(
                        "token row {i} has {} ids; a tokenized text has at least [CLS] and [SEP]",
                        row.len()
                    ),
                });
            }
        }
        self.encode_batch(&self.tokenizer.pad_rows(rows), options)
    }

    /// Whether this encoder runs packed batches: [`TextMode::Masked`] on a backend with the
    /// packed attention kernel (burn's `Flex`, the CPU; [`taiyi_nn::has_packed_kernel`]). On
    /// GPUs one padded batch under the mask is a few large kernels where packing would be one
    /// attention call per text, so they keep padding (with [`ShapeBuckets`]).
    pub fn packs(&self) -> bool {
        self.mode.uses_mask() && taiyi_nn::has_packed_kernel::<B>()
    }

    /// The features of every row of `enc` (rows padded to the longest, mask 1 on the ids).
    fn encode_batch(
        &self,
        enc: &BatchEncoding,
        options: &EncodeOptions<'_>,
    ) -> Result<Tensor<B, 2>, ClipError> {
        if self.packs() {
            return self.encode_packed(enc, options);
        }
        let n = enc.batch_size;
        let mut order: Vec<usize> = (0..n).collect();
        let sorted = self.mode.uses_mask() && n > self.batch_size;
        if sorted {
            order.sort_by_key(|&i| std::cmp::Reverse(enc.row_len(i)));
        }
        let max = self.model.max_positions();
        let mut parts = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut done = 0;
        for rows in order.chunks(self.batch_size) {
            let seq = match self.mode.pad_to() {
                Some(fixed) => fixed,
                None if self.mode.uses_mask() => {
                    let longest = rows.iter().map(|&i| enc.row_len(i)).max().unwrap_or(2);
                    self.buckets.seq(longest, max)
                }
                // The model card: the call's longest text, exactly (padding is attended to).
                None => enc.seq_len,
            };
            let padded_rows = self.buckets.batch(rows.len(), self.batch_size);
            let chunk = self.tokenizer.rebatch(enc, rows, seq, padded_rows);
            parts.push(self.forward_chunk(&chunk, rows.len())?);
            done += rows.len();
            options.report(done);
        }
        let out = Tensor::cat(parts, 0);
        if !sorted {
            return Ok(options.finish(out));
        }
        // Row `order[k]` of the input is row `k` of `out`: invert the permutation.
        let mut inverse = vec![0i64; n];
        for (k, &i) in order.iter().enumerate() {
            inverse[i] = k as i64;
        }
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(inverse, [n]), &self.device);
        Ok(options.finish(out.select(0, index)))
    }

    /// Packed chunks of `batch_size` texts in input order (no padding, no sorting).
    fn encode_packed(
        &self,
        enc: &BatchEncoding,
        options: &EncodeOptions<'_>,
    ) -> Result<Tensor<B, 2>, ClipError> {
        let order: Vec<usize> = (0..enc.batch_size).collect();
        let mut parts = Vec::with_capacity(order.len().div_ceil(self.batch_size));
        let mut done = 0;
        for rows in order.chunks(self.batch_size) {
            let packed = enc.pack(rows);
            packed.check(self.model.vocab_size(), self.model.max_positions())?;
            let tokens = packed.to_tensors::<B>(&self.device);
            let out = self
                .model
                .forward_packed(tokens.ids, tokens.positions, &tokens.offsets);
            parts.push(out.pooler_output);
            done += rows.len();
            options.report(done);
        }
        Ok(options.finish(Tensor::cat(parts, 0)))
    }

    /// Run the tower once for every shape that texts of up to `max_tokens` tokens can take in
    /// this encoder's mode, buckets and batch size, so that later calls compile nothing. Returns
    /// the number of forward passes run.
    ///
    /// In [`TextMode::ModelCard`] the length is the longest text of each call, exactly (no
    /// buckets by definition): the warm-up then covers the bucket lengths only. Without
    /// buckets it runs one full batch of `max_tokens`.
    pub fn warm_up(&self, max_tokens: usize) -> Result<usize, ClipError> {
        let max = self.max_tokens().min(max_tokens.max(2));
        let (seqs, batches) = match (self.mode.pad_to(), self.buckets.is_enabled()) {
            (Some(fixed), true) => (vec![fixed], self.buckets.batch_buckets(self.batch_size)),
            (None, true) => (
                self.buckets.seq_buckets(max),
                self.buckets.batch_buckets(self.batch_size),
            ),
            // Without buckets every shape is new anyway: run one full batch.
            (fixed, false) => (vec![fixed.unwrap_or(max)], vec![self.batch_size]),
        };
        let mut passes = 0;
        for &seq in &seqs {
            for &rows in &batches {
                let batch = BatchEncoding {
                    ids: vec![self.tokenizer.cls_id(); rows * seq],
                    attention_mask: vec![1; rows * seq],
                    batch_size: rows,
                    seq_len: seq,
                };
                let out = self.forward_chunk(&batch, rows)?;
                crate::sync(out)?;
                passes += 1;
            }
        }
        Ok(passes)
    }
}
