//! Dynamic batching: texts by token budget, images by count, a short maximum wait.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Instant;

use super::{Job, Work};
use crate::config::BatchConfig;
use crate::metrics::Metrics;

/// What a batch holds: jobs of one kind.
#[derive(Debug)]
pub(crate) enum Batch {
    /// Text jobs in the server's mode, run together.
    Texts(Vec<Job>),
    /// Image jobs, run together.
    Images(Vec<Job>),
    /// A job run on its own (other text modes, logits, classification).
    Single(Job),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Texts,
    Images,
    Single,
}

fn kind(job: &Job) -> Kind {
    match job.work {
        Work::Texts { .. } => Kind::Texts,
        Work::Images { .. } => Kind::Images,
        _ => Kind::Single,
    }
}

/// A job's weight against its batch's budget: tokens for texts, images for images.
fn weight(job: &Job) -> usize {
    match &job.work {
        Work::Texts { ids } => ids.iter().map(Vec::len).sum(),
        Work::Images { pixels } => pixels.len(),
        _ => 0,
    }
}

/// Pulls jobs from the queue and groups them.
pub(crate) struct Batcher {
    rx: Receiver<Job>,
    config: BatchConfig,
    /// Jobs taken from the queue that did not fit the batch being built; served first.
    deferred: VecDeque<Job>,
}

impl Batcher {
    pub fn new(rx: Receiver<Job>, config: BatchConfig) -> Self {
        Self {
            rx,
            config,
            deferred: VecDeque::new(),
        }
    }

    fn take(&mut self, metrics: &Metrics) -> Option<Job> {
        let job = self.rx.recv().ok()?;
        metrics.queue_depth_add(-1);
        Some(job)
    }

    /// The next batch, or `None` once every sender is gone and the queue is drained.
    ///
    /// The first job opens the batch; jobs of the same kind join it until the budget
    /// (`max_batch_tokens` / `max_batch_images`) would be exceeded or `max_wait` has passed
    /// since the batch opened. A job that does not fit, or of another kind, waits in
    /// `deferred` and opens a later batch, in arrival order.
    pub fn next_batch(&mut self, metrics: &Metrics) -> Option<Batch> {
        let first = match self.deferred.pop_front() {
            Some(j) => j,
            None => self.take(metrics)?,
        };
        let k = kind(&first);
        let budget = match k {
            Kind::Texts => self.config.max_batch_tokens,
            Kind::Images => self.config.max_batch_images,
            Kind::Single => return Some(Batch::Single(first)),
        };
        let mut used = weight(&first);
        let mut jobs = vec![first];
        let deadline = Instant::now() + self.config.max_wait;
        // Deferred jobs of the same kind first (they arrived earlier), in order.
        let mut i = 0;
        while i < self.deferred.len() && used < budget {
            if kind(&self.deferred[i]) == k && used + weight(&self.deferred[i]) <= budget {
                if let Some(j) = self.deferred.remove(i) {
                    used += weight(&j);
                    jobs.push(j);
                }
            } else {
                i += 1;
            }
        }
        while used < budget {
            let next = match self.rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.rx.recv_timeout(left) {
                        Ok(j) => j,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            metrics.queue_depth_add(-1);
            if kind(&next) == k && used + weight(&next) <= budget {
                used += weight(&next);
                jobs.push(next);
            } else {
                let full = kind(&next) == k;
                self.deferred.push_back(next);
                if full {
                    break;
                }
            }
        }
        Some(match k {
            Kind::Texts => Batch::Texts(jobs),
            Kind::Images | Kind::Single => Batch::Images(jobs),
        })
    }
}
