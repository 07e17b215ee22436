//! Running batches on the model, and splitting the results back into per-job answers.
//!
//! Batch invariance: a text's vector must not depend on the texts it was batched with. The
//! whole batch is one `TextEncoder::encode_token_rows` call: in `masked` mode on the CPU it
//! runs packed (no padding; every text's rows computed as if alone), so a text's vector is the
//! one `ClipModel::encode_texts(&[text])` gives, bit for bit, whatever else is in the batch
//! (`tests/http/batching.rs`). On GPUs the batch is padded to its longest text under the mask
//! (one batched forward instead of one per text): equal to the text alone up to float
//! rounding. In `fixed77` mode every text has the same shape already. `card` mode is
//! batch-dependent by definition: its requests run alone.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use taiyi_core::{
    Classification, ClipError, ClipModel, EncodeOptions, TextEncoder, TextMode, ZeroShotClassifier,
    l2_normalize, to_vec,
};

use super::batch::Batch;
use super::{Answer, Features, Job, ModelFacts, Work};
use crate::metrics::Metrics;

/// The model and the encoders of the other text modes (made on first use).
pub(crate) struct Runner<B: Backend> {
    model: ClipModel<B>,
    other_modes: Vec<(TextMode, TextEncoder<B>)>,
}

impl<B: Backend> Runner<B> {
    pub fn new(model: ClipModel<B>) -> Self {
        Self {
            model,
            other_modes: Vec::new(),
        }
    }

    pub fn facts(&self) -> ModelFacts {
        let text = self.model.text();
        ModelFacts {
            tokenizer: text.tokenizer().clone(),
            transform: self.model.image().transform().clone(),
            max_positions: text.model().max_positions(),
            text_mode: text.mode(),
            dim: self.model.image().model().output_dim(),
            text_batch_size: text.batch_size(),
            image_batch_size: self.model.image().batch_size(),
            logit_scale: self.model.logit_scale().ok(),
            cache_id: text.cache_id(),
            packed: text.packs(),
        }
    }

    /// One text and one image through the towers, so that `/health` turns 200 only once the
    /// model has really run.
    pub fn warm_up(&self) -> Result<(), ClipError> {
        taiyi_core::sync(self.model.encode_texts(&["预热"])?)?;
        let s = self.model.image().model().image_size();
        let pixels = Tensor::<B, 4>::zeros([1, 3, s, s], self.model.image().device());
        taiyi_core::sync(self.model.image().encode_pixels_raw(pixels)?)?;
        Ok(())
    }

    pub fn run(&mut self, batch: Batch, metrics: &Metrics) {
        let start = Instant::now();
        match batch {
            Batch::Texts(jobs) => {
                metrics.observe_batch("text", &jobs, start);
                let result = self.texts(&jobs);
                split(jobs, result);
            }
            Batch::Images(jobs) => {
                metrics.observe_batch("image", &jobs, start);
                let result = self.images(jobs.iter().flat_map(|j| match &j.work {
                    Work::Images { pixels } => pixels.as_slice(),
                    _ => &[],
                }));
                split(jobs, result);
            }
            Batch::Single(job) => {
                metrics.observe_batch("single", std::slice::from_ref(&job), start);
                let answer = self.single(job.work).map_err(Arc::new);
                let _ = job.reply.send(answer);
            }
        }
        metrics.observe_inference(start.elapsed());
    }

    /// Features of every text of `jobs`, in job order: one call, whatever the lengths.
    fn texts(&self, jobs: &[Job]) -> Result<(Vec<f32>, Vec<f32>, usize), ClipError> {
        let rows: Vec<&[u32]> = jobs
            .iter()
            .flat_map(|job| match &job.work {
                Work::Texts { ids } => ids.as_slice(),
                _ => &[],
            })
            .map(Vec::as_slice)
            .collect();
        host(
            self.model
                .text()
                .encode_token_rows(&rows, &EncodeOptions::raw())?,
        )
    }

    /// Features of `pixels` (`[3, S, S]` each), in order.
    fn images<'a>(
        &self,
        pixels: impl Iterator<Item = &'a Vec<f32>>,
    ) -> Result<(Vec<f32>, Vec<f32>, usize), ClipError> {
        let s = self.model.image().model().image_size();
        let mut flat = Vec::new();
        let mut n = 0;
        for p in pixels {
            flat.extend_from_slice(p);
            n += 1;
        }
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(flat, [n, 3, s, s]),
            self.model.image().device(),
        );
        host(self.model.image().encode_pixels_raw(pixels)?)
    }

    fn single(&mut self, work: Work) -> Result<Answer, ClipError> {
        let device = self.model.image().device().clone();
        let matrix = |v: Vec<f32>, dim: usize| {
            let rows = v.len() / dim.max(1);
            Tensor::<B, 2>::from_data(TensorData::new(v, [rows, dim]), &device)
        };
        match work {
            Work::TextsAlone { ids, mode } => {
                let (raw, normalized, dim) = host(
                    self.encoder(mode)
                        .encode_token_rows(&ids, &EncodeOptions::raw())?,
                )?;
                let rows = raw.len() / dim.max(1);
                Ok(Answer::Features(Features {
                    raw,
                    normalized,
                    rows,
                    dim,
                }))
            }
            Work::Logits { images, texts, dim } => {
                let out = self
                    .model
                    .logits_from_features(matrix(images, dim), matrix(texts, dim))?;
                Ok(Answer::Logits {
                    probs: to_vec(out.probs_tensor())?,
                    per_image: to_vec(out.logits_per_image)?,
                })
            }
            Work::Classify {
                images,
                prompts,
                dim,
                labels,
                templates,
            } => {
                let classifier = ZeroShotClassifier::from_prompt_features(
                    labels,
                    templates,
                    matrix(prompts, dim),
                    self.model.logit_scale()?,
                )?;
                let classes = classifier.classify(matrix(images, dim))?;
                Ok(Answer::Classes(
                    classes.iter().map(Classification::ranked).collect(),
                ))
            }
            // Batched kinds never arrive here (see `batch::kind`); run them alone anyway.
            Work::Texts { ids } => {
                let mode = self.model.text().mode();
                self.single(Work::TextsAlone { ids, mode })
            }
            Work::Images { pixels } => {
                let (raw, normalized, dim) = self.images(pixels.iter())?;
                let rows = raw.len() / dim.max(1);
                Ok(Answer::Features(Features {
                    raw,
                    normalized,
                    rows,
                    dim,
                }))
            }
        }
    }

    /// The text encoder of `mode`: the model's, or a copy in another mode (made once; the
    /// copy shares the weights).
    fn encoder(&mut self, mode: TextMode) -> &TextEncoder<B> {
        if mode == self.model.text().mode() {
            return self.model.text();
        }
        let at = match self.other_modes.iter().position(|(m, _)| *m == mode) {
            Some(i) => i,
            None => {
                let enc = self.model.text().clone().with_mode(mode);
                self.other_modes.push((mode, enc));
                self.other_modes.len() - 1
            }
        };
        &self.other_modes[at].1
    }
}

/// Raw features to the host, with their normalised copy (`l2_normalize`, as
/// `ClipModel::encode_*` apply it).
fn host<B: Backend>(raw: Tensor<B, 2>) -> Result<(Vec<f32>, Vec<f32>, usize), ClipError> {
    let [_, dim] = raw.dims();
    let normalized = to_vec(l2_normalize(raw.clone()))?;
    Ok((to_vec(raw)?, normalized, dim))
}

/// Hand every job its rows of the batch result (or the batch's error).
fn split(jobs: Vec<Job>, result: Result<(Vec<f32>, Vec<f32>, usize), ClipError>) {
    let (raw, normalized, dim) = match result {
        Ok(r) => r,
        Err(e) => {
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut at = 0;
    for job in jobs {
        let rows = match &job.work {
            Work::Texts { ids } => ids.len(),
            Work::Images { pixels } => pixels.len(),
            _ => 0,
        };
        let range = at * dim..(at + rows) * dim;
        at += rows;
        let _ = job.reply.send(Ok(Answer::Features(Features {
            raw: raw[range.clone()].to_vec(),
            normalized: normalized[range].to_vec(),
            rows,
            dim,
        })));
    }
}
