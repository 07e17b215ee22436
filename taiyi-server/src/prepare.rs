//! The request side's work before and around the model: tokenizing (once, on rayon, as the
//! encoder truncates), decoding images on rayon, the label cache, and queueing jobs.

use std::sync::Arc;

use rayon::prelude::*;
use taiyi_core::TextMode;
use taiyi_preprocess::transform::ImageInput;

use crate::engine::{Answer, Features, HealthState, ModelFacts, SubmitError, Work};
use crate::error::ApiError;
use crate::routes::AppState;
use crate::wire;

/// Run `f` on the rayon pool and await it.
pub(crate) async fn on_rayon<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| ApiError::Unavailable("the preprocessing pool stopped"))?
}

impl AppState {
    /// The model's facts, or why there are none yet.
    pub(crate) fn facts(&self) -> Result<&ModelFacts, ApiError> {
        self.engine.facts().ok_or(match self.engine.health.get() {
            HealthState::Failed => ApiError::Unavailable("the model failed to load"),
            _ => ApiError::Unavailable("the model is loading; retry once /health answers 200"),
        })
    }

    /// Queue `work` and await its answer.
    pub(crate) async fn submit(&self, work: Work) -> Result<Answer, ApiError> {
        match self.engine.submit(work).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(ApiError::Model(e)),
            Err(SubmitError::NotReady) => Err(self
                .facts()
                .err()
                .unwrap_or(ApiError::Unavailable("the model is not ready"))),
            Err(SubmitError::Full) => Err(ApiError::Unavailable(
                "the inference queue is full; retry later",
            )),
            Err(SubmitError::Stopped) => Err(ApiError::Unavailable("the server is shutting down")),
        }
    }

    async fn features(&self, work: Work) -> Result<Features, ApiError> {
        match self.submit(work).await? {
            Answer::Features(f) => Ok(f),
            _ => Err(ApiError::Unavailable(
                "the model answered another request kind",
            )),
        }
    }

    /// Token ids of `texts` as the encoder of `mode` takes them (truncated to its length), on
    /// rayon; more than `max_request_tokens` together is [`ApiError::TooMuchWork`]. The only
    /// tokenization of a request: the engine embeds these ids.
    async fn tokenize(
        &self,
        texts: Vec<String>,
        mode: TextMode,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let facts = self.facts()?;
        let (tokenizer, max) = (facts.tokenizer.clone(), facts.max_tokens(mode));
        let limit = self.config.limits.max_request_tokens;
        on_rayon(move || {
            let ids: Vec<Vec<u32>> = texts
                .par_iter()
                .map(|t| tokenizer.encode_truncated(t, max))
                .collect();
            let count = ids.iter().map(Vec::len).sum();
            if count > limit {
                return Err(ApiError::TooMuchWork {
                    what: "tokens",
                    count,
                    limit,
                });
            }
            Ok(ids)
        })
        .await
    }

    /// Features of `texts` in `mode` (default: the server's) and their token counts. Texts in
    /// the server's mode, when it is batch-invariant, join other requests' texts in a batch.
    pub(crate) async fn texts(
        &self,
        texts: Vec<String>,
        mode: Option<TextMode>,
    ) -> Result<(Features, Vec<usize>), ApiError> {
        let facts = self.facts()?;
        let server_mode = facts.text_mode;
        let mode = mode.unwrap_or(server_mode);
        let ids = self.tokenize(texts, mode).await?;
        let tokens = ids.iter().map(Vec::len).collect();
        let work = if mode == server_mode && mode.batch_invariant() {
            Work::Texts { ids }
        } else {
            Work::TextsAlone { ids, mode }
        };
        Ok((self.features(work).await?, tokens))
    }

    /// L2-normalised features of `texts` in the server's mode (`[n, d]` row-major, and `d`),
    /// through the label cache when it serves the mode: cached texts cost nothing, the others
    /// (each distinct text once) are tokenized and embedded as one `Texts` job — batched with
    /// other requests — and stored. The token bound counts the texts sent to the tower. In a
    /// batch-dependent mode (`card`) every text is embedded, all in one call, as without a
    /// cache.
    pub(crate) async fn normalized_texts(
        &self,
        texts: Vec<String>,
    ) -> Result<(Vec<f32>, usize), ApiError> {
        let facts = self.facts()?;
        let (mode, dim, model) = (facts.text_mode, facts.dim, facts.cache_id);
        if !self.cache.serves(mode) {
            let (f, _) = self.texts(texts, None).await?;
            return Ok((f.normalized, f.dim));
        }
        let lookup = self.cache.lookup(model, mode, &texts);
        let fresh = if lookup.missing().is_empty() {
            Vec::new()
        } else {
            self.texts(lookup.missing().to_vec(), None)
                .await?
                .0
                .normalized
        };
        lookup
            .complete(&self.cache, &fresh, dim)
            .map_err(|e| ApiError::Model(Arc::new(e)))
    }

    /// Features of base64 images (`uri_only`: `data:image/...;base64,` URIs only).
    pub(crate) async fn images(
        &self,
        field: &'static str,
        images: Vec<String>,
        uri_only: bool,
    ) -> Result<Features, ApiError> {
        let transform = self.facts()?.transform.clone();
        let pixels = on_rayon(move || {
            let bytes = images
                .par_iter()
                .enumerate()
                .map(|(i, s)| wire::image_bytes(field, i, s, uri_only))
                .collect::<Result<Vec<_>, _>>()?;
            let inputs: Vec<ImageInput<'_>> = bytes.iter().map(|b| ImageInput::Bytes(b)).collect();
            transform.apply_batch(&inputs).map_err(|e| match e {
                taiyi_preprocess::transform::ImageError::Batch { index, source } => {
                    ApiError::Item {
                        field,
                        index,
                        reason: "is not a usable image".into(),
                        source: Some(source),
                    }
                }
                other => ApiError::Field {
                    field,
                    reason: other.to_string(),
                },
            })
        })
        .await?;
        self.features(Work::Images { pixels }).await
    }
}
