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
    /// Requests processed at once across the model routes; more get 429 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Texts or images (or labels) in one request; more get 413.
    pub max_batch_items: usize,
    /// Largest request body in bytes; larger get 413.
    pub payload_limit: usize,
    /// Largest image in pixels (width × height, read from the header before decoding: the
    /// decompression-bomb guard); larger get 422.
    pub max_image_pixels: u64,
}

impl Default for Limits {
    /// 64 concurrent requests, 1024 items, 32 MB bodies, Pillow's 89,478,485 pixels.
    fn default() -> Self {
        Self {
            max_concurrent_requests: 64,
            max_batch_items: 1024,
            payload_limit: 32 * 1024 * 1024,
            max_image_pixels: taiyi_preprocess::transform::PIL_MAX_IMAGE_PIXELS,
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
    /// Dynamic batching.
    pub batch: BatchConfig,
    /// The model name reported by `/v1/embeddings` and `/info`.
    pub model_name: String,
    /// Model files, device and precision, as `/info` shows them (free-form strings).
    pub model_info: ModelInfo,
}

/// Where the model came from, for `/info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelInfo {
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
            batch: BatchConfig::default(),
            model_name: DEFAULT_MODEL_NAME.to_string(),
            model_info: ModelInfo::default(),
        }
    }
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
}
