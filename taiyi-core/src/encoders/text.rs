//! [`TextEncoder`]: tokenizer + BERT text tower.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use taiyi_preprocess::tokenizer::{BatchEncoding, BertTokenizer, Padding, Truncation};
use taiyi_text::{BertModel, TextError, TextMode};

use super::{DEFAULT_TEXT_BATCH, l2_normalize};
use crate::{ClipError, ShapeBuckets};

/// Token ids and attention mask, both `[n, seq]`.
pub type TokenBatch<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>);

/// Tokenizer + BERT text tower: Chinese texts in, 1024-d features out.
///
/// The features are the BERT pooler output (Taiyi has no text projection). How texts are
/// padded, and whether padding is masked, is the [`TextMode`] (default
/// [`TextMode::ModelCard`], which reproduces the model card: pad to the longest text of the
/// call, no attention mask). Texts are encoded `batch_size` at a time; in the unmasked modes
/// every chunk is padded to the same length as the whole call would be, so the result is
/// identical to one big batch in every mode.
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
}

/// One forward pass worth of token ids, laid out on the host.
struct HostChunk {
    ids: Vec<i64>,
    mask: Vec<i64>,
    rows: usize,
    seq: usize,
}

impl<B: Backend> TextEncoder<B> {
    /// Load the tokenizer and the BERT weights from an HF model directory (`config.json`,
    /// `vocab.txt`, `tokenizer_config.json`, and `model.safetensors` or `pytorch_model.bin`).
    pub fn from_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, ClipError> {
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
        let (model, _) = BertModel::from_pretrained_dir(dir, device)?;
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
        }
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

    /// The device the tower lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The longest token sequence a text keeps: 77 in [`TextMode::Fixed77`], else the model's
    /// positions (512); longer texts are truncated keeping `[SEP]` last.
    fn max_tokens(&self) -> usize {
        let max = self.model.max_positions();
        self.mode.pad_to().map_or(max, |n| n.min(max))
    }

    /// Tokenize `texts`, truncated to [`Self::max_tokens`], padded to the longest, and check
    /// every id against the model's vocabulary (on the host).
    fn tokenize_host<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<(BatchEncoding, Vec<usize>), ClipError> {
        if texts.is_empty() {
            return Err(ClipError::EmptyInput { what: "no texts" });
        }
        let enc = self.tokenizer.encode_batch(
            texts,
            Padding::Longest,
            Truncation::MaxLength(self.max_tokens()),
        )?;
        let ids: Vec<i64> = enc.ids.iter().map(|&v| i64::from(v)).collect();
        self.model.check_host_ids(&ids, enc.seq_len)?;
        let lens = (0..enc.batch_size)
            .map(|r| {
                enc.row_mask(r)
                    .map_or(0, |m| m.iter().filter(|&&v| v == 1).count())
            })
            .collect();
        Ok((enc, lens))
    }

    /// Token ids and attention mask for `texts` as the mode pads them (the whole call in one
    /// batch, no buckets): `[n, seq]` each. Texts longer than the model's 512 positions are
    /// truncated, keeping `[SEP]` last.
    pub fn tokenize<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<TokenBatch<B>, ClipError> {
        let (enc, lens) = self.tokenize_host(texts)?;
        let order: Vec<usize> = (0..enc.batch_size).collect();
        let seq = self.mode.pad_to().unwrap_or(enc.seq_len);
        let chunk = self.lay_out(&enc, &lens, &order, seq, order.len());
        let shape = [chunk.rows, chunk.seq];
        Ok((
            Tensor::from_data(TensorData::new(chunk.ids, shape), &self.device),
            Tensor::from_data(TensorData::new(chunk.mask, shape), &self.device),
        ))
    }

    /// Lay out rows `rows` of `enc` as `[padded_rows, seq]` ids + mask: real tokens, then
    /// `[PAD]`; filler rows past `rows.len()` are `[CLS] [SEP]` (dropped after the pass).
    fn lay_out(
        &self,
        enc: &BatchEncoding,
        lens: &[usize],
        rows: &[usize],
        seq: usize,
        padded_rows: usize,
    ) -> HostChunk {
        let pad = i64::from(self.tokenizer.pad_id());
        let mut ids = vec![pad; padded_rows * seq];
        let mut mask = vec![0i64; padded_rows * seq];
        let filler = [
            i64::from(self.tokenizer.cls_id()),
            i64::from(self.tokenizer.sep_id()),
        ];
        for r in 0..padded_rows {
            let dst = &mut ids[r * seq..(r + 1) * seq];
            let m = &mut mask[r * seq..(r + 1) * seq];
            let len = match rows.get(r) {
                Some(&i) => {
                    let len = lens[i].min(seq);
                    let src = &enc.ids[i * enc.seq_len..i * enc.seq_len + len];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = i64::from(s);
                    }
                    len
                }
                None => {
                    let len = filler.len().min(seq);
                    dst[..len].copy_from_slice(&filler[..len]);
                    len
                }
            };
            m[..len].fill(1);
        }
        HostChunk {
            ids,
            mask,
            rows: padded_rows,
            seq,
        }
    }

    /// Run one laid-out chunk; returns the pooler output of its first `keep` rows.
    fn forward_chunk(&self, chunk: HostChunk, keep: usize) -> Result<Tensor<B, 2>, ClipError> {
        let max = self.model.max_positions();
        if chunk.seq > max {
            return Err(TextError::SequenceTooLong {
                len: chunk.seq,
                max,
            }
            .into());
        }
        let shape = [chunk.rows, chunk.seq];
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(chunk.ids, shape), &self.device);
        let mask = self.mode.uses_mask().then(|| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(chunk.mask, shape), &self.device)
        });
        let pooled = self.model.forward(ids, mask).pooler_output;
        Ok(if keep < chunk.rows {
            pooled.slice(0..keep)
        } else {
            pooled
        })
    }

    /// Raw (unnormalised) text features `[n, 1024]`, in the model's float dtype.
    pub fn encode_raw<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Tensor<B, 2>, ClipError> {
        self.encode_raw_with_progress(texts, &mut |_| {})
    }

    /// [`TextEncoder::encode_raw`], calling `progress(n_done)` after every chunk.
    ///
    /// In [`TextMode::Masked`] texts are grouped by length (longest first) and each chunk is
    /// padded only to its own longest text (rounded up to the buckets): padding is masked, so
    /// this changes nothing but the work done. The rows come back in input order.
    pub fn encode_raw_with_progress<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Tensor<B, 2>, ClipError> {
        let (enc, lens) = self.tokenize_host(texts)?;
        let n = enc.batch_size;
        let mut order: Vec<usize> = (0..n).collect();
        let sorted = self.mode.uses_mask() && n > self.batch_size;
        if sorted {
            order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        }
        let max = self.model.max_positions();
        let mut parts = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut done = 0;
        for rows in order.chunks(self.batch_size) {
            let seq = match self.mode.pad_to() {
                Some(fixed) => fixed,
                None if self.mode.uses_mask() => {
                    let longest = rows.iter().map(|&i| lens[i]).max().unwrap_or(2);
                    self.buckets.seq(longest, max)
                }
                // The model card: the call's longest text, exactly (padding is attended to).
                None => enc.seq_len,
            };
            let padded_rows = self.buckets.batch(rows.len(), self.batch_size);
            let chunk = self.lay_out(&enc, &lens, rows, seq, padded_rows);
            parts.push(self.forward_chunk(chunk, rows.len())?);
            done += rows.len();
            progress(done);
        }
        let out = Tensor::cat(parts, 0);
        if !sorted {
            return Ok(out);
        }
        // Row `order[k]` of the input is row `k` of `out`: invert the permutation.
        let mut inverse = vec![0i64; n];
        for (k, &i) in order.iter().enumerate() {
            inverse[i] = k as i64;
        }
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(inverse, [n]), &self.device);
        Ok(out.select(0, index))
    }

    /// L2-normalised text features `[n, 1024]` (f32, see [`l2_normalize`]).
    pub fn encode<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Tensor<B, 2>, ClipError> {
        Ok(l2_normalize(self.encode_raw(texts)?))
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
                let ids = vec![i64::from(self.tokenizer.cls_id()); rows * seq];
                let mask = vec![1i64; rows * seq];
                let out = self.forward_chunk(
                    HostChunk {
                        ids,
                        mask,
                        rows,
                        seq,
                    },
                    rows,
                )?;
                crate::sync(out)?;
                passes += 1;
            }
        }
        Ok(passes)
    }
}
