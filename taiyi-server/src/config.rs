//! [`ServerConfig`]: address, limits and dynamic-batching parameters of the server.

use std::net::SocketAddr;
use std::time::Duration;

/// How requests are grouped into forward passes (see the crate docs, "Dynamic batching").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// A text batch closes once its texts hold this many tokens (`[CLS]`/`[SEP]` included).
    /// One request is never split, so a single large request can exceed it.
    pub max_batch_tokens: usize,
    /// An image batch closes once it holds this many images.
    pub max_batch_images: usize,
    /// How long the first request of a batch waits for company before the batch runs.
    pub max_wait: Duration,
    /// Jobs the inference queue holds; a request finding it full is answered 503.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    /// 8192 tokens, 16 images, 5 ms, 256 queued jobs.
    fn default() -> Self {
        Self {
            max_batch_tokens: 8192,
            max_batch_images: 16,
            max_wait: Duration::from_millis(5),
            queue_capacity: 256,
        }
    }
}

/// Request limits (each answered with its own status code, see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests processed at once across the model routes (counted from the moment a
    /// request's body is complete); more get 429 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Open connections; a connection over the bound is answered 503 with `Retry-After` and
    /// closed.
    pub max_connections: usize,
    /// Texts or images (or labels) in one request; more get 413.
    pub max_batch_items: usize,
    /// Tokens (`[CLS]`/`[SEP]` included, after truncation) one request may send to the text
    /// tower, all its texts or prompts together; more get 413. `/classify` prompts and
    /// `/logits` texts found in the label cache, and repeats of a text, are not sent.
    pub max_request_tokens: usize,
    /// Prompts one `/classify` request may ask for: labels × templates (labels alone without
    /// templates); more get 413.
    pub max_prompts: usize,
    /// Largest request body in bytes; larger get 413.
    pub payload_limit: usize,
    /// Largest image in pixels (width × height, read from the header before decoding: the
    /// decompression-bomb guard); larger get 422.
    pub max_image_pixels: u64,
}

impl Default for Limits {
    /// 64 concurrent requests, 512 connections, 1024 items, 65,536 tokens and 4096 prompts
    /// per request, 32 MB bodies, Pillow's 89,478,485 pixels.
    fn default() -> Self {
        Self {
            max_concurrent_requests: 64,
            max_connections: 512,
            max_batch_items: 1024,
            max_request_tokens: 65_536,
            max_prompts: 4096,
            payload_limit: 32 * 1024 * 1024,
            max_image_pixels: taiyi_preprocess::transform::PIL_MAX_IMAGE_PIXELS,
        }
    }
}

/// Deadlines of connections and of shutting down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a client has to send a request's headers, and then again its body; also how
    /// long an idle keep-alive connection stays open. Headers late: the connection is closed;
    /// body late: 408.
    pub request: Duration,
    /// On shutdown, how long complete requests get to be answered before the server stops
    /// anyway. Idle connections and requests still being sent are closed at once.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    /// 30 s each.
    fn default() -> Self {
        Self {
            request: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Everything [`crate::spawn`] and [`crate::serve`] need besides the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// `Authorization: Bearer <key>` required on every route but `/health` when set.
    pub api_key: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// Connection deadlines.
    pub timeouts: Timeouts,
    /// Dynamic batching.
    pub batch: BatchConfig,
    /// The model name reported by `/v1/embeddings` and `/info`.
    pub model_name: String,
    /// Model files, device and precision, as `/info` shows them (free-form strings).
    pub model_info: ModelInfo,
    /// Texts whose normalised features the label cache keeps (`/classify` prompts, `/logits`
    /// texts; least recently used out first; 0: no cache). Batch-invariant text modes only.
    pub label_cache: usize,
    /// The collection `POST /search` answers from (`taiyi serve --index`); without one the
    /// route answers 404.
    pub index: Option<SharedIndex>,
}

/// A collection opened for search ([`taiyi_core::ann::SearchIndex`]), shared by the request
/// handlers, and where it was opened from. Two are equal when they are the same opened index.
#[derive(Debug, Clone)]
pub struct SharedIndex {
    /// The opened index.
    pub index: std::sync::Arc<taiyi_core::ann::SearchIndex>,
    /// Its `.npy` file, as `/info` shows it.
    pub path: std::path::PathBuf,
}

impl PartialEq for SharedIndex {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.index, &other.index)
    }
}

impl Eq for SharedIndex {}

/// [`ServerConfig::label_cache`] by default: 4096 texts (16 MiB of 1024-d features).
pub const DEFAULT_LABEL_CACHE: usize = 4096;

/// Where the model came from, for `/info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model family (`taiyi`, `chinese-clip`).
    pub family: String,
    /// The text-tower directory.
    pub text_model: String,
    /// The image-tower checkpoint.
    pub vision_model: String,
    /// The image-tower architecture.
    pub vision_arch: String,
    /// The device (`cpu`, `cuda:0`, …).
    pub device: String,
    /// The precision (`f32`, `f16`, `bf16`).
    pub precision: String,
    /// The CPU's bf16 matmul kernel (`avx512bf16`, `f32`) when the linear weights are held
    /// in bf16 on the CPU, else `None`.
    pub cpu_kernel: Option<String>,
}

/// The model name the server reports by default.
pub const DEFAULT_MODEL_NAME: &str = "Taiyi-CLIP-RoBERTa-326M-ViT-H-Chinese";

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            batch: BatchConfig::default(),
            model_name: DEFAULT_MODEL_NAME.to_string(),
            label_cache: DEFAULT_LABEL_CACHE,
            model_info: ModelInfo::default(),
            index: None,
        }
    }
}

/// The longest `max_wait` accepted: a batch's first request never waits longer for company.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(10);
/// The longest request deadline and shutdown grace accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A setting of [`ServerConfig`] that cannot work, found by [`ServerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count or size limit is 0.
    #[error("{name} must be at least 1")]
    Zero {
        /// The setting, as its command-line flag spells it.
        name: &'static str,
    },
    /// A duration is out of its range.
    #[error("{name} must be between {min_ms} ms and {max_ms} ms, got {got_ms} ms")]
    Duration {
        /// The setting, as its command-line flag spells it.
        name: &'static str,
        /// The value given.
        got_ms: u128,
        /// The smallest value accepted.
        min_ms: u128,
        /// The largest value accepted.
        max_ms: u128,
    },
    /// The API key is empty or holds characters an `Authorization` header cannot carry.
    #[error(
        "the API key must be non-empty visible ASCII without spaces (an empty key would refuse every request)"
    )]
    ApiKey,
}

impl ServerConfig {
    /// Check every limit, deadline and the API key: a 0 limit, a wait or deadline out of range
    /// (`max_wait` ≤ [`MAX_BATCH_WAIT`], deadlines 1 ms ..= [`MAX_TIMEOUT`]) or an unusable
    /// key is an error, never silently replaced. [`crate::spawn`] calls it.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let b = &self.batch;
        for (name, v) in [
            ("--max-concurrent-requests", l.max_concurrent_requests),
            ("--max-connections", l.max_connections),
            ("--max-batch-items", l.max_batch_items),
            ("--max-request-tokens", l.max_request_tokens),
            ("--max-prompts", l.max_prompts),
            ("--payload-limit", l.payload_limit),
            ("--max-batch-tokens", b.max_batch_tokens),
            ("--max-batch-images", b.max_batch_images),
            ("--queue-capacity", b.queue_capacity),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        if l.max_image_pixels == 0 {
            return Err(ConfigError::Zero {
                name: "--max-image-pixels",
            });
        }
        let ms = Duration::from_millis(1);
        for (name, v, min, max) in [
            ("--max-wait-ms", b.max_wait, Duration::ZERO, MAX_BATCH_WAIT),
            ("--request-timeout", self.timeouts.request, ms, MAX_TIMEOUT),
            (
                "--shutdown-grace",
                self.timeouts.shutdown_grace,
                ms,
                MAX_TIMEOUT,
            ),
        ] {
            if v < min || v > max {
                return Err(ConfigError::Duration {
                    name,
                    got_ms: v.as_millis(),
                    min_ms: min.as_millis(),
                    max_ms: max.as_millis(),
                });
            }
        }
        if let Some(key) = &self.api_key
            && (key.is_empty() || !key.bytes().all(|c| c.is_ascii_graphic()))
        {
            return Err(ConfigError::ApiKey);
        }
        Ok(())
    }
}

/// A duration as a user writes it: `30` (seconds), `500ms`, `30s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 30, 30s, 500ms, 2m)"))?;
    let d = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' in '{s}' (ms, s, m)"
            ));
        }
    };
    Ok(d)
}

/// A byte size as a user writes it: `33554432`, `512KB`, `32MB`, `1GB` (powers of 1024;
/// `K`/`M`/`G`, `KiB`/`MiB`/`GiB` and lower case accepted).
pub fn parse_byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: usize = n
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 33554432, 512KB, 32MB)"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' in '{s}' (KB, MB, GB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("32MB"), Ok(32 << 20));
        assert_eq!(parse_byte_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_byte_size("1024"), Ok(1024));
        assert!(parse_byte_size("MB").is_err());
        assert!(parse_byte_size("3 parsecs").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    /// Every unusable setting is named; none is silently replaced.
    #[test]
    fn validation_names_the_setting() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        let mut c = ServerConfig::default();
        c.limits.max_batch_items = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero {
                name: "--max-batch-items"
            })
        );
        let mut c = ServerConfig::default();
        c.batch.max_wait = Duration::from_millis(100_000_000);
        let e = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("--max-wait-ms") && e.contains("100000000"),
            "{e}"
        );
        let mut c = ServerConfig::default();
        c.timeouts.request = Duration::ZERO;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Duration {
                name: "--request-timeout",
                ..
            })
        ));
        for key in ["", "a key", "clé"] {
            let c = ServerConfig {
                api_key: Some(key.into()),
                ..ServerConfig::default()
            };
            assert_eq!(c.validate(), Err(ConfigError::ApiKey), "{key:?}");
        }
    }
}
