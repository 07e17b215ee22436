//! The inference side: one thread that owns the model, fed by a bounded queue of [`Job`]s,
//! grouping them into batches ([`batch`]) and running them ([`run`]).
//!
//! The HTTP side never touches the model: it tokenizes / decodes on rayon, sends host data
//! here, and awaits the answer on a oneshot channel. The thread is generic over the backend;
//! everything crossing the queue is plain host data, so the HTTP side is not.

mod batch;
mod run;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use burn::tensor::backend::Backend;
use taiyi_core::{BertTokenizer, ClipError, ClipModel, ImageTransform, Prediction, TextMode};
use tokio::sync::oneshot;

use crate::config::BatchConfig;
use crate::metrics::Metrics;

/// What one job asks of the model.
#[derive(Debug)]
pub(crate) enum Work {
    /// Embed texts in the server's text mode (batched with other requests' texts).
    Texts {
        /// Each text's token ids, `[CLS] … [SEP]`, truncated as the server's encoder truncates
        /// (tokenized once, on the request side).
        ids: Vec<Vec<u32>>,
    },
    /// Embed texts in another mode, as one call of their own (never batched with others).
    TextsAlone {
        /// Each text's token ids, truncated for `mode`.
        ids: Vec<Vec<u32>>,
        /// The mode.
        mode: TextMode,
    },
    /// Embed preprocessed images (`[3, S, S]` each), batched with other requests' images.
    Images {
        /// One CHW vector per image.
        pixels: Vec<Vec<f32>>,
    },
    /// `logit_scale.exp() * img @ txt.T` and its softmax, from normalised features.
    Logits {
        /// `[n_images, d]` row-major.
        images: Vec<f32>,
        /// `[n_texts, d]` row-major.
        texts: Vec<f32>,
        /// The feature size `d`.
        dim: usize,
    },
    /// Zero-shot classification of normalised image features against the prompts' normalised
    /// features (embedded beforehand as `Texts` jobs, or taken from the label cache).
    Classify {
        /// `[n_images, d]` row-major.
        images: Vec<f32>,
        /// `[n_labels · max(templates, 1), d]` row-major, label-major.
        prompts: Vec<f32>,
        /// The feature size `d`.
        dim: usize,
        /// The labels.
        labels: Vec<String>,
        /// Templates per label (0: the labels themselves).
        templates: usize,
    },
}

/// Features of a job's items: `rows × dim`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Features {
    /// The tower's output (before normalisation).
    pub raw: Vec<f32>,
    /// L2-normalised, as `ClipModel::encode_*` return them.
    pub normalized: Vec<f32>,
    /// Rows (items).
    pub rows: usize,
    /// Columns (the embedding size).
    pub dim: usize,
}

/// What the engine answers.
#[derive(Debug)]
pub(crate) enum Answer {
    /// For `Texts`, `TextsAlone`, `Images`.
    Features(Features),
    /// For `Logits`: `[n_images, n_texts]` each, row-major.
    Logits {
        /// `logits_per_image`.
        per_image: Vec<f32>,
        /// Softmax over the texts.
        probs: Vec<f32>,
    },
    /// For `Classify`: per image, every label, most probable first.
    Classes(Vec<Vec<Prediction>>),
}

/// A job: the work, its weight in the batch (tokens or images), and where to answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub work: Work,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<Answer, Arc<ClipError>>>,
}

/// What the HTTP side needs to know about the loaded model.
#[derive(Debug, Clone)]
pub(crate) struct ModelFacts {
    pub tokenizer: BertTokenizer,
    pub transform: ImageTransform,
    /// The text tower's absolute positions (512).
    pub max_positions: usize,
    pub text_mode: TextMode,
    pub text_batch_size: usize,
    pub image_batch_size: usize,
    pub logit_scale: Option<f32>,
    /// Width of the embeddings (the image tower's output, equal to the text feature's).
    pub dim: usize,
    /// The text encoder's `cache_id`: the model part of the label cache's keys.
    pub cache_id: u64,
    /// Whether text batches run packed (`TextEncoder::packs`: masked mode on the CPU).
    pub packed: bool,
}

impl ModelFacts {
    /// The most tokens a text keeps in `mode` (the encoder's own rule,
    /// [`TextMode::max_tokens`]): what the request side truncates to, so that counted tokens
    /// are embedded tokens.
    pub fn max_tokens(&self, mode: TextMode) -> usize {
        mode.max_tokens(self.tokenizer.options().max_length, self.max_positions)
    }
}

/// Loading state, as `/health` reports it.
#[derive(Debug, Default)]
pub(crate) struct Health {
    state: AtomicU8,
}

/// The states of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthState {
    Loading,
    Ready,
    Failed,
}

impl Health {
    pub fn get(&self) -> HealthState {
        match self.state.load(Ordering::Acquire) {
            0 => HealthState::Loading,
            1 => HealthState::Ready,
            _ => HealthState::Failed,
        }
    }

    fn set(&self, s: HealthState) {
        let v = match s {
            HealthState::Loading => 0,
            HealthState::Ready => 1,
            HealthState::Failed => 2,
        };
        self.state.store(v, Ordering::Release);
    }
}

/// Why a job could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// The model is not loaded (yet, or it failed).
    NotReady,
    /// The queue is full.
    Full,
    /// The inference thread has stopped.
    Stopped,
}

/// The HTTP side's handle on the engine.
#[derive(Debug, Clone)]
pub(crate) struct EngineHandle {
    tx: SyncSender<Job>,
    facts: Arc<OnceLock<ModelFacts>>,
    pub health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl EngineHandle {
    /// The model's facts, once it is loaded and warmed up.
    pub fn facts(&self) -> Option<&ModelFacts> {
        self.facts.get()
    }

    /// Queue `work` and wait for its answer.
    pub async fn submit(&self, work: Work) -> Result<Result<Answer, Arc<ClipError>>, SubmitError> {
        if self.health.get() != HealthState::Ready {
            return Err(SubmitError::NotReady);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            enqueued: Instant::now(),
            reply,
        };
        self.metrics.queue_depth_add(1);
        if let Err(e) = self.tx.try_send(job) {
            self.metrics.queue_depth_add(-1);
            return Err(match e {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            });
        }
        answer.await.map_err(|_| SubmitError::Stopped)
    }
}

/// Start the inference thread: it loads the model with `load`, runs a warm-up batch, then
/// serves jobs until every [`EngineHandle`] is dropped. The thread returns the loading error,
/// if any; `on_exit` runs when it ends (for any reason).
pub(crate) fn start<B, F>(
    load: F,
    config: BatchConfig,
    max_image_pixels: u64,
    metrics: Arc<Metrics>,
    on_exit: Box<dyn FnOnce() + Send>,
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<Result<(), ClipError>>)>
where
    B: Backend,
    F: FnOnce() -> Result<ClipModel<B>, ClipError> + Send + 'static,
{
    let (tx, rx) = sync_channel(config.queue_capacity.max(1));
    let handle = EngineHandle {
        tx,
        facts: Arc::new(OnceLock::new()),
        health: Arc::new(Health::default()),
        metrics: metrics.clone(),
    };
    let (facts, health) = (handle.facts.clone(), handle.health.clone());
    let thread = std::thread::Builder::new()
        .name("taiyi-inference".into())
        .spawn(move || {
            let outcome = main_loop(
                load,
                rx,
                &config,
                max_image_pixels,
                &metrics,
                &facts,
                &health,
            );
            if outcome.is_err() {
                health.set(HealthState::Failed);
            }
            on_exit();
            outcome
        })?;
    Ok((handle, thread))
}

fn main_loop<B: Backend, F>(
    load: F,
    rx: Receiver<Job>,
    config: &BatchConfig,
    max_image_pixels: u64,
    metrics: &Metrics,
    facts: &OnceLock<ModelFacts>,
    health: &Health,
) -> Result<(), ClipError>
where
    F: FnOnce() -> Result<ClipModel<B>, ClipError>,
{
    let model = load()?;
    let mut runner = run::Runner::new(model);
    runner.warm_up()?;
    let mut known = runner.facts();
    known.transform = known.transform.with_max_pixels(max_image_pixels);
    let _ = facts.set(known);
    health.set(HealthState::Ready);
    let mut batcher = batch::Batcher::new(rx, config.clone());
    while let Some(batch) = batcher.next_batch(metrics) {
        runner.run(batch, metrics);
    }
    Ok(())
}
