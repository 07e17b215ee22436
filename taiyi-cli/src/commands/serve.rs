//! `taiyi serve`: the HTTP embedding and zero-shot server (crate `taiyi-server`). This module
//! only turns flags into a [`taiyi_server::ServeTask`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use taiyi_core::{CpuKernel, DenseFormat, ModelSource, Precision, TextMode, vision_config_for};
use taiyi_server::{BatchConfig, Limits, ModelInfo, ServeTask, ServerConfig, Timeouts};

use crate::args::{RunOptions, WARM_UP_TOKENS};
use crate::error::CliError;

/// Flags of `taiyi serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// HF text-tower directory (default: $TAIYI_TEXT_MODEL, else the hub).
    #[arg(long, value_name = "DIR")]
    text_model: Option<PathBuf>,
    /// open_clip checkpoint file or directory (default: $TAIYI_VISION_MODEL, else the hub).
    #[arg(long, value_name = "FILE")]
    vision_model: Option<PathBuf>,
    /// Image-tower architecture: an open_clip name (ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32,
    /// with -quickgelu) or an open_clip model-config JSON file.
    #[arg(long, default_value = "ViT-H-14", value_name = "NAME|FILE.json")]
    vision_arch: String,
    /// Text mode: masked (batch-invariant: a text's vector never depends on what it was
    /// batched with; the default here), card (the model card; each request then runs alone),
    /// fixed77.
    #[arg(long, value_enum, default_value_t = TextMode::Masked)]
    mode: TextMode,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health (non-empty visible
    /// ASCII).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Model requests processed at once (counted once a request's body has arrived); more
    /// are answered 429 with Retry-After.
    #[arg(long, default_value_t = Limits::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// Open connections; more are answered 503 with Retry-After and closed.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Deadline for a request's headers, then again for its body (408 when the body is
    /// late); also how long an idle keep-alive connection stays open. Seconds, or 500ms, 2m.
    #[arg(long, default_value = "30s", value_parser = taiyi_server::parse_duration)]
    request_timeout: Duration,
    /// On SIGTERM / Ctrl-C, how long requests already received get to be answered before
    /// the server exits anyway (idle and half-sent connections are closed at once).
    #[arg(long, default_value = "30s", value_parser = taiyi_server::parse_duration)]
    shutdown_grace: Duration,
    /// Texts / images / labels per request; more are answered 413.
    #[arg(long, default_value_t = Limits::default().max_batch_items)]
    max_batch_items: usize,
    /// Tokens one request may send to the text tower (all texts, or all /classify prompts);
    /// more are answered 413.
    #[arg(long, default_value_t = Limits::default().max_request_tokens)]
    max_request_tokens: usize,
    /// Prompts one /classify request may ask for (labels × templates); more are answered
    /// 413.
    #[arg(long, default_value_t = Limits::default().max_prompts)]
    max_prompts: usize,
    /// Largest request body (bytes, or 512KB, 32MB, …); larger are answered 413.
    #[arg(long, default_value = "32MB", value_parser = taiyi_server::parse_byte_size)]
    payload_limit: usize,
    /// Largest image (width × height, checked before decoding); larger are answered 422.
    #[arg(long, default_value_t = Limits::default().max_image_pixels)]
    max_image_pixels: u64,
    /// A text batch closes at this many tokens.
    #[arg(long, default_value_t = BatchConfig::default().max_batch_tokens)]
    max_batch_tokens: usize,
    /// An image batch closes at this many images.
    #[arg(long, default_value_t = BatchConfig::default().max_batch_images)]
    max_batch_images: usize,
    /// Longest wait (ms, at most 10000) of a batch's first request for others to join it.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Jobs the inference queue holds (full: 503).
    #[arg(long, default_value_t = BatchConfig::default().queue_capacity)]
    queue_capacity: usize,
    /// Texts (/classify prompts, /logits texts) whose features are kept for the next request
    /// (least recently used out first; 0: no cache). Used in the masked and fixed77 modes,
    /// where a text's feature does not depend on its batch; /metrics counts hits and misses.
    #[arg(long, default_value_t = taiyi_server::DEFAULT_LABEL_CACHE, value_name = "TEXTS")]
    label_cache: usize,
    /// An embedded collection (from embed-image) that POST /search answers from: through its
    /// ANN graph IDX.npy.ann when `taiyi index build` wrote one, else by scoring every row.
    #[arg(long, value_name = "IDX.npy")]
    index: Option<PathBuf>,
    /// Texts per forward pass [default: 32 on cpu, 128 on GPUs].
    #[arg(long)]
    text_batch_size: Option<usize>,
    /// Images per forward pass [default: 8 on cpu, 64 on GPUs].
    #[arg(long)]
    image_batch_size: Option<usize>,
}

/// Load the model on `run.device` and serve until SIGINT/SIGTERM (requests in flight drained).
pub(crate) fn run(a: ServeArgs, run: RunOptions, precision: Precision) -> Result<(), CliError> {
    let mut config = ServerConfig {
        addr: SocketAddr::new(a.host, a.port),
        api_key: a.api_key,
        limits: Limits {
            max_concurrent_requests: a.max_concurrent_requests,
            max_connections: a.max_connections,
            max_batch_items: a.max_batch_items,
            max_request_tokens: a.max_request_tokens,
            max_prompts: a.max_prompts,
            payload_limit: a.payload_limit,
            max_image_pixels: a.max_image_pixels,
        },
        timeouts: Timeouts {
            request: a.request_timeout,
            shutdown_grace: a.shutdown_grace,
        },
        batch: BatchConfig {
            max_batch_tokens: a.max_batch_tokens,
            max_batch_images: a.max_batch_images,
            max_wait: Duration::from_millis(a.max_wait_ms),
            queue_capacity: a.queue_capacity,
        },
        label_cache: a.label_cache,
        ..ServerConfig::default()
    };
    // Settings are checked before anything is loaded.
    config.validate()?;
    if let Some(npy) = &a.index {
        let index = taiyi_core::ann::SearchIndex::open(npy, false)?;
        config.index = Some(taiyi_server::SharedIndex {
            index: std::sync::Arc::new(index),
            path: npy.clone(),
        });
    }
    let source = run.source(a.text_model.as_deref(), a.vision_model.as_deref())?;
    let options = run
        .options(
            source.family(),
            Some(a.mode),
            a.text_batch_size,
            a.image_batch_size,
        )
        .with_vision(vision_config_for(source.dir(), &a.vision_arch)?);
    let vision_arch = match &source {
        ModelSource::Dir(_) => "config.json".to_string(),
        ModelSource::Taiyi(_) => a.vision_arch,
    };
    if let Some(shared) = &config.index {
        let (model, index) = (options.vision.output_dim, shared.index.dim());
        if model != index {
            return Err(CliError::Usage(format!(
                "--index {} holds {index}-d embeddings, but the model's are {model}-d: it was \
                 embedded by another model",
                shared.path.display()
            )));
        }
    }
    config.model_info = ModelInfo {
        family: source.family().to_string(),
        text_model: source.text_dir().display().to_string(),
        vision_model: source.vision_path().display().to_string(),
        vision_arch,
        device: run.device.to_string(),
        precision: precision.to_string(),
        cpu_kernel: (options.weights == DenseFormat::PackedBf16).then(|| {
            CpuKernel::selected()
                .map_or("none", CpuKernel::name)
                .to_string()
        }),
    };
    let task = ServeTask {
        config,
        source,
        options,
        warm_up_tokens: run.warm_up.then_some(WARM_UP_TOKENS),
    };
    run.device.run(precision, task).map_err(CliError::Serve)
}
