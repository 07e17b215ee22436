//! Running batches on the model, and splitting the results back into per-job answers.
//!
//! Batch invariance: a text's vector must not depend on the texts it was batched with. In
//! `masked` mode padding is masked, but a padded row still takes other summation paths than
//! an unpadded one (float rounding), so texts are grouped by token count and every group is
//! one call of `TextEncoder::encode_raw`: no text is ever padded, and its vector is the one
//! `ClipModel::encode_texts(&[text])` gives, bit for bit. In `fixed77` mode every text has the
//! same shape already. `card` mode is batch-dependent by definition: its requests run alone.

use std::collections::BTreeMap;
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
            // The encoder's own truncation rule, so counted tokens are embedded tokens.
            max_tokens: text.max_tokens(),
            text_mode: text.mode(),
            dim: self.model.image().model().output_dim(),
            text_batch_size: text.batch_size(),
            image_batch_size: self.model.image().batch_size(),
            logit_scale: self.model.logit_scale().ok(),
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

    /// Features of every text of `jobs`, in job order.
    fn texts(&self, jobs: &[Job]) -> Result<(Vec<f32>, Vec<f32>, usize), ClipError> {
        let mut all: Vec<(&str, usize)> = Vec::new();
        for job in jobs {
            if let Work::Texts { texts, tokens } = &job.work {
                all.extend(texts.iter().map(String::as_str).zip(tokens.iter().copied()));
            }
        }
        let encoder = self.model.text();
        if encoder.mode() != TextMode::Masked {
            // fixed77: every text has the same shape; one call is batch-invariant.
            let texts: Vec<&str> = all.iter().map(|t| t.0).collect();
            return host(encoder.encode(&texts, &EncodeOptions::raw())?);
        }
        // masked: one call per token count, so that nothing is padded.
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &(_, n)) in all.iter().enumerate() {
            groups.entry(n).or_default().push(i);
        }
        let mut raw = Vec::new();
        let mut normalized = Vec::new();
        let mut dim = 0;
        let mut place = vec![0usize; all.len()];
        for rows in groups.values() {
            let texts: Vec<&str> = rows.iter().map(|&i| all[i].0).collect();
            let (r, n, d) = host(encoder.encode(&texts, &EncodeOptions::raw())?)?;
            for (k, &i) in rows.iter().enumerate() {
                place[i] = raw.len() / d.max(1) + k;
            }
            raw.extend(r);
            normalized.extend(n);
            dim = d;
        }
        Ok((
            permute(&raw, &place, dim),
            permute(&normalized, &place, dim),
            dim,
        ))
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
            Work::TextsAlone { texts, mode } => {
                let (raw, normalized, dim) =
                    host(self.encoder(mode).encode(&texts, &EncodeOptions::raw())?)?;
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
                dim,
                labels,
                templates,
            } => {
                let classifier = ZeroShotClassifier::new(&self.model, &labels, &templates)?;
                let classes = classifier.classify(matrix(images, dim))?;
                Ok(Answer::Classes(
                    classes.iter().map(Classification::ranked).collect(),
                ))
            }
            // Batched kinds never arrive here (see `batch::kind`); run them alone anyway.
            Work::Texts { texts, .. } => {
                let mode = self.model.text().mode();
                self.single(Work::TextsAlone { texts, mode })
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

/// Rows `place[i]` of `v` (`dim` columns) as rows `i`.
fn permute(v: &[f32], place: &[usize], dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for &p in place {
        out.extend_from_slice(&v[p * dim..(p + 1) * dim]);
    }
    out
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
            Work::Texts { texts, .. } => texts.len(),
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
