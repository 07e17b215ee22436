//! # taiyi-server
//!
//! `taiyi serve`: Taiyi-CLIP as an HTTP service (axum + tokio) — OpenAI-compatible text and
//! image embeddings, native embeddings, zero-shot classification and logits, with dynamic
//! batching, limits, Prometheus metrics and graceful shutdown.
//!
//! ## Routes
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/embeddings` | OpenAI's: `input` (string or array), `model`, `encoding_format` (`float`/`base64`); `"modality": "image"` with `data:image/...;base64,...` items | `{"object":"list","data":[{"embedding",…}],"usage"}`, L2-normalised |
//! | `POST /embed` | `{"texts": [...]}` or `{"images": ["<base64>"...]}`, `normalize`, `mode` | `{"embeddings", "dim", "mode", "tokens"}` |
//! | `POST /classify` | `{"images", "labels", "templates" (or `"zh"`), "top_k"}` | per image `{"image","labels","probs","top"}` (as `taiyi zero-shot --json`) |
//! | `POST /logits` | `{"images", "texts"}` | `{"logit_scale","logits_per_image","probs"}` |
//! | `GET /health` | | 200 when loaded and warmed up, else 503 |
//! | `GET /info` | | model files, device, precision, text mode, limits, version |
//! | `GET /metrics` | | Prometheus text |
//!
//! Errors are `{"error": {"message", "type", "index", "code"}}`: 400 malformed JSON or a
//! `dimensions` other than the model's, 401 bad API key, 404 / 405 route, 408 a body that did
//! not arrive within the request deadline, 413 body, item count, tokens or prompts over the
//! limits, 415 not JSON, 422 wrong types / empty lists / bad base64 / not an image / too many
//! pixels, 429 over `max_concurrent_requests` (with `Retry-After`), 503 loading, queue full,
//! shutting down or over `max_connections`, 500 a model failure.
//!
//! ## Connections
//!
//! Served by hyper's HTTP/1 directly (`conn.rs`; `axum::serve` has no deadlines): a request's
//! headers must arrive within `timeouts.request` (also the idle keep-alive timeout), then its
//! body within the same time; the body is read whole before the request takes a model slot;
//! at most `max_connections` connections are open. On shutdown idle and half-sent
//! connections close at once and complete requests get `timeouts.shutdown_grace`.
//!
//! ## Execution and dynamic batching
//!
//! The model lives on one inference thread fed by a bounded queue. Handlers tokenize (once:
//! the ids are what the engine embeds) and decode + preprocess images on rayon, then queue host
//! data. The thread groups queued requests: texts until `max_batch_tokens`, images until
//! `max_batch_images`, waiting at most `max_wait` for company. Results are those of
//! `ClipModel` / `TextEncoder::encode_token_rows` / `ImageEncoder::encode_pixels_raw` bit for
//! bit, and do not depend on the batch: in `masked` mode (the default) a text batch runs packed
//! on the CPU (no padding; every text computed as if alone); `card` mode (batch-dependent by
//! definition) runs each request alone. `/classify` prompts and `/logits` texts go through the
//! label cache (`ServerConfig::label_cache`) first.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use taiyi_core::ClipModel;
//! use taiyi_server::ServerConfig;
//!
//! # fn main() -> Result<(), taiyi_server::ServerError> {
//! let config = ServerConfig::default(); // 127.0.0.1:8080
//! taiyi_server::serve(config, || {
//!     ClipModel::<Flex>::from_pretrained(&Default::default())
//!         .map(|m| m.with_text_mode(taiyi_core::TextMode::Masked))
//! })
//! # }
//! ```

mod config;
mod conn;
mod engine;
mod error;
mod intake;
mod metrics;
mod prepare;
mod routes;
mod server;
mod wire;

pub use config::{
    BatchConfig, ConfigError, DEFAULT_LABEL_CACHE, DEFAULT_MODEL_NAME, Limits, MAX_BATCH_WAIT,
    MAX_TIMEOUT, ModelInfo, ServerConfig, SharedIndex, Timeouts, parse_byte_size, parse_duration,
};
pub use error::{ApiError, ServerError};
pub use metrics::Metrics;
pub use server::{RunningServer, serve, spawn};

use burn::tensor::backend::Backend;
use taiyi_core::{BackendTask, ClipError, ClipModel, ClipOptions, ModelSource};

/// [`serve`] as a [`BackendTask`], for [`taiyi_core::DeviceSpec::run`]: loads the model from
/// `source` with `options` on the chosen backend and serves it until SIGINT/SIGTERM.
#[derive(Debug, Clone)]
pub struct ServeTask {
    /// Address, limits, batching.
    pub config: ServerConfig,
    /// The model files (either family).
    pub source: ModelSource,
    /// Text mode (use `TextMode::Masked` for batch-invariant vectors), batch sizes, vision
    /// architecture.
    pub options: ClipOptions,
    /// Before serving, run every shape bucket once (`ClipModel::warm_up`, texts up to this
    /// many tokens): worth it on GPUs, where a new shape compiles kernels.
    pub warm_up_tokens: Option<usize>,
}

/// Why [`ServeTask`] failed: the backend could not be opened, or the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeTaskError {
    /// The backend or device is unavailable.
    #[error("cannot open the device")]
    Device(#[from] ClipError),
    /// The server failed.
    #[error("the server failed")]
    Server(#[from] ServerError),
}

impl BackendTask for ServeTask {
    type Output = ();
    type Error = ServeTaskError;

    fn run<B: Backend>(self, device: B::Device) -> Result<(), ServeTaskError> {
        let (source, options, warm) = (self.source, self.options, self.warm_up_tokens);
        serve::<B, _>(self.config, move || {
            let model = ClipModel::<B>::load_source(&source, &options, &device)?;
            if let Some(tokens) = warm {
                model.warm_up(tokens)?;
            }
            Ok(model)
        })?;
        Ok(())
    }
}
