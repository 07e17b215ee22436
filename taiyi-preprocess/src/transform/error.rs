//! Errors of the image transform.

use std::path::PathBuf;

/// A libjpeg(-turbo) error: the message its `format_message` wrote, or what the reader saw
/// (e.g. data ending before the last scanline).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LibjpegError(pub String);

/// The PNG decoder's error, shown with chunk names (`IHDR`) where the decoder's own message
/// dumps a `ChunkType { type: IHDR, critical: true, … }` debug struct. Its source is the
/// decoder error's own source (an I/O error, say), so a printed chain says it once.
#[derive(Debug)]
pub struct PngError(pub png::DecodingError);

impl std::fmt::Display for PngError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&png_message(&self.0))
    }
}

impl std::error::Error for PngError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// Everything that can go wrong while decoding or transforming an image.
///
/// Every variant that comes from a file or buffer names it (`origin`: the path, or
/// `<bytes>` / `<image>` for in-memory input) and keeps the decoder's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read (missing, unreadable, not a regular file, larger than
    /// [`super::ImageTransform::max_file_bytes`]).
    #[error("cannot read image file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// The PNG decoder rejected the data (corrupt, truncated, bad CRC, ...).
    #[error("{origin}: corrupt or truncated PNG")]
    Png {
        /// Where the data came from.
        origin: String,
        /// The decoder's error.
        #[source]
        source: PngError,
    },
    /// The JPEG decoder rejected the data (corrupt, truncated, ...).
    #[error("{origin}: corrupt or truncated JPEG")]
    Jpeg {
        /// Where the data came from.
        origin: String,
        /// The decoder's error.
        #[source]
        source: zune_jpeg::errors::DecodeErrors,
    },
    /// libjpeg-turbo (the default JPEG decoder, feature `libjpeg`) rejected the data (corrupt,
    /// truncated, unsupported JPEG process, ...).
    #[error("{origin}: corrupt or truncated JPEG (libjpeg-turbo)")]
    Libjpeg {
        /// Where the data came from.
        origin: String,
        /// libjpeg's message.
        #[source]
        source: LibjpegError,
    },
    /// The GIF decoder rejected the data.
    #[error("{origin}: corrupt or truncated GIF")]
    Gif {
        /// Where the data came from.
        origin: String,
        /// The decoder's error.
        #[source]
        source: gif::DecodingError,
    },
    /// The `image` crate (GIF, WebP, BMP, TIFF) rejected the data.
    #[error("{origin}: cannot decode image")]
    Decode {
        /// Where the data came from.
        origin: String,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The data is not a decodable image at all (empty, too short, inconsistent).
    #[error("{origin}: corrupt image data: {what}")]
    Corrupt {
        /// Where the data came from.
        origin: String,
        /// What is wrong.
        what: String,
    },
    /// The image has a zero width or height.
    #[error("{origin}: image has zero size ({width}x{height})")]
    ZeroSize {
        /// Where the data came from.
        origin: String,
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
    },
    /// A format, colour mode or encoding this port does not handle.
    #[error("{origin}: unsupported image: {what}")]
    Unsupported {
        /// Where the data came from.
        origin: String,
        /// What is not supported.
        what: String,
    },
    /// More pixels than the configured limit (decompression-bomb protection, like Pillow's
    /// `DecompressionBombError`), checked from the header before decoding.
    #[error(
        "{origin}: image of {width}x{height} = {pixels} pixels exceeds the limit of {limit} pixels (possible decompression bomb)"
    )]
    TooManyPixels {
        /// Where the data came from.
        origin: String,
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// `width * height`.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A raw pixel buffer whose length does not match its size and mode.
    #[error("invalid pixel buffer: {0}")]
    InvalidBuffer(String),
    /// The environment variable `TAIYI_DECODE_MEMORY` (the decode budget's limit) is set but
    /// is not a size: a configuration error of the process, not of an image.
    #[error(
        "invalid environment variable TAIYI_DECODE_MEMORY={value:?}: expected a size in bytes, \
         or e.g. 512M, 4GiB"
    )]
    DecodeMemoryEnv {
        /// The variable's value.
        value: String,
    },
    /// An invalid transform configuration (e.g. image size 0, non-positive std), or an image
    /// processor configuration this port refuses (see
    /// [`ImageTransform::from_hf_processor`](super::ImageTransform::from_hf_processor)).
    #[error("invalid image transform configuration: {0}")]
    InvalidConfig(String),
    /// An image processor configuration file (`preprocessor_config.json`) could not be read
    /// (missing, not a regular file, too large, not UTF-8).
    #[error("cannot read image processor config {path}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// An image processor configuration is not valid JSON, or a field has the wrong type or
    /// form (a size dict with unknown keys, a non-integer size, `null` where transformers
    /// needs a value, ...).
    #[error("{origin}: invalid image processor config")]
    ConfigJson {
        /// The file, or `<json>` for text given in memory.
        origin: String,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A batch call was given no images.
    #[error("empty batch: no images to preprocess")]
    EmptyBatch,
    /// One image of a batch failed.
    #[error("batch image {index}")]
    Batch {
        /// Position of the failing image in the batch.
        index: usize,
        /// Its error.
        #[source]
        source: Box<ImageError>,
    },
}

/// The PNG decoder's message with its `ChunkType { type: IHDR, critical: true, … }` debug
/// dumps reduced to the chunk name (`IHDR`).
fn png_message(e: &png::DecodingError) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("ChunkType { type: ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "ChunkType { type: ".len()..];
        let name_end = after.find([',', ' ', '}']).unwrap_or(after.len());
        out.push_str(&after[..name_end]);
        rest = match after.find('}') {
            Some(close) => &after[close + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}
