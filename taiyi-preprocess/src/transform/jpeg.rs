//! JPEG decoding in Pillow's modes, by libjpeg-turbo (default) or zune-jpeg (pure Rust).
//!
//! Pillow 13.0.0 (`JpegImagePlugin.py`, `JpegDecode.c`) opens a JPEG by its frame's component
//! count: 1 -> `L`, 3 -> `RGB`, 4 -> `CMYK` (raw mode `CMYK;I`: Adobe polarity, every sample
//! inverted), anything else is an error. It asks libjpeg-turbo for `JCS_GRAYSCALE` / `JCS_RGB` /
//! `JCS_CMYK` with libjpeg's defaults (islow IDCT, fancy upsampling, no draft scaling), so
//! libjpeg converts YCbCr -> RGB and YCCK -> CMYK itself. Data that ends before the EOI marker
//! is an error (Pillow: `image file is truncated`, even when only the EOI is missing); what
//! follows EOI is ignored.
//!
//! - [`JpegDecoder::Libjpeg`] (feature `libjpeg`, default): libjpeg-turbo's C code (the MozJPEG
//!   fork's decoder, built without SIMD; libjpeg-turbo's SIMD and C paths are bit-exact), set up
//!   as Pillow does: pixel-identical to Pillow on every fixture of `fixtures/jpeg/` (Pillow,
//!   cjpeg and libjpeg encoders; baseline 4:2:0/4:2:2/4:4:0/4:1:1/4:4:4, progressive,
//!   arithmetic, restart markers, greyscale, RGB, Adobe CMYK, YCCK). libjpeg's `error_exit`
//!   unwinds (the C is built with `-fexceptions`) and is caught here: a corrupt JPEG is an
//!   [`ImageError::Libjpeg`], never an `exit()`, an abort or a panic message.
//! - [`JpegDecoder::Zune`]: zune-jpeg. Its IDCT and chroma upsampling are not libjpeg's:
//!   measured on the 20 `fixtures/jpeg/` files it reads, after the transform, up to 5 u8 levels
//!   (mean 0.13-0.28, up to 0.41 for a q100 image upscaled 3.5x) off Pillow for chroma-subsampled
//!   JPEGs, up to 2-3 levels (mean <= 0.018) for
//!   4:4:4 and greyscale (`tests/jpeg_parity.rs` prints the table); 1 level is <= 0.015 after
//!   Normalize. It rejects YCCK and arithmetic-coded JPEGs.

#[cfg(feature = "libjpeg")]
use std::cell::Cell;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::decode::check_size;
use super::error::ImageError;
#[cfg(feature = "libjpeg")]
use super::error::LibjpegError;
use super::pil::{PilImage, PilMode};

/// Which decoder reads JPEG files (see the `transform` module docs for their differences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JpegDecoder {
    /// libjpeg-turbo, as Pillow decodes (feature `libjpeg`, the default): pixel-identical.
    #[cfg(feature = "libjpeg")]
    #[default]
    Libjpeg,
    /// zune-jpeg, pure Rust: up to 5 u8 levels off Pillow; no YCCK, no arithmetic coding.
    #[cfg_attr(not(feature = "libjpeg"), default)]
    Zune,
}

/// Pillow's mode for a JPEG frame of `components` components.
fn pil_mode(components: usize, origin: &str) -> Result<PilMode, ImageError> {
    match components {
        1 => Ok(PilMode::L),
        3 => Ok(PilMode::Rgb),
        4 => Ok(PilMode::Cmyk),
        n => Err(ImageError::Unsupported {
            origin: origin.to_owned(),
            what: format!("JPEG with {n} components (Pillow reads 1, 3 or 4)"),
        }),
    }
}

/// Pillow reads every 4-component JPEG with raw mode `CMYK;I` (Adobe polarity).
fn invert_cmyk(mode: PilMode, data: &mut [u8]) {
    if mode == PilMode::Cmyk {
        for v in data {
            *v = 255 - *v;
        }
    }
}

/// Decodes a JPEG (the bytes start with `FF D8 FF`) with `decoder`.
pub(crate) fn decode_jpeg(
    bytes: &[u8],
    origin: &str,
    max_pixels: u64,
    decoder: JpegDecoder,
) -> Result<PilImage, ImageError> {
    match decoder {
        #[cfg(feature = "libjpeg")]
        JpegDecoder::Libjpeg => decode_libjpeg(bytes, origin, max_pixels),
        JpegDecoder::Zune => decode_zune(bytes, origin, max_pixels),
    }
}

/// The header's size and component count (for the decompression-bomb check and the memory
/// budget), without decoding: `(width, height, components)`.
pub(crate) fn jpeg_header(bytes: &[u8], origin: &str) -> Result<(u64, u64, usize), ImageError> {
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), zune_options());
    dec.decode_headers().map_err(|e| ImageError::Jpeg {
        origin: origin.to_owned(),
        source: e,
    })?;
    let (w, h) = dec.dimensions().ok_or_else(|| no_frame(origin))?;
    let n = dec.input_colorspace().map_or(3, |c| c.num_components());
    Ok((w as u64, h as u64, n))
}

fn no_frame(origin: &str) -> ImageError {
    ImageError::Corrupt {
        origin: origin.to_owned(),
        what: "JPEG without frame header".into(),
    }
}

fn zune_options() -> DecoderOptions {
    DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
}

fn decode_zune(bytes: &[u8], origin: &str, max_pixels: u64) -> Result<PilImage, ImageError> {
    let jerr = |e| ImageError::Jpeg {
        origin: origin.to_owned(),
        source: e,
    };
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), zune_options());
    dec.decode_headers().map_err(jerr)?;
    let (w, h) = dec.dimensions().ok_or_else(|| no_frame(origin))?;
    check_size(origin, w as u64, h as u64, max_pixels)?;
    let input = dec.input_colorspace().unwrap_or(ColorSpace::YCbCr);
    if input == ColorSpace::YCCK {
        return Err(ImageError::Unsupported {
            origin: origin.to_owned(),
            what: "YCCK (Adobe transform 2) JPEG with the zune-jpeg decoder".into(),
        });
    }
    let mode = pil_mode(input.num_components(), origin)?;
    let out_cs = match mode {
        PilMode::L => ColorSpace::Luma,
        PilMode::Cmyk => ColorSpace::CMYK,
        _ => ColorSpace::RGB,
    };
    dec.set_options(dec.options().jpeg_set_out_colorspace(out_cs));
    let mut data = dec.decode().map_err(jerr)?;
    invert_cmyk(mode, &mut data);
    PilImage::from_u8(mode, w, h, data)
}

/// A `BufRead` over the bytes that records whether libjpeg asked for data past their end
/// (the source manager then fakes an EOI marker, as libjpeg's own memory source does).
#[cfg(feature = "libjpeg")]
struct EofReader<'a> {
    rest: &'a [u8],
    hit_eof: &'a Cell<bool>,
}

#[cfg(feature = "libjpeg")]
impl std::io::Read for EofReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rest.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(n)
    }
}

#[cfg(feature = "libjpeg")]
impl std::io::BufRead for EofReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amt: usize) {
        self.rest = &self.rest[amt.min(self.rest.len())..];
    }
}

#[cfg(feature = "libjpeg")]
fn decode_libjpeg(bytes: &[u8], origin: &str, max_pixels: u64) -> Result<PilImage, ImageError> {
    use mozjpeg::ColorSpace as J;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let fail = |message: String| ImageError::Libjpeg {
        origin: origin.to_owned(),
        source: LibjpegError(message),
    };
    let hit_eof = Cell::new(false);
    let truncated = || fail("the data ends before the EOI marker (truncated file)".into());
    let decode = || -> Result<PilImage, ImageError> {
        let reader = EofReader {
            rest: bytes,
            hit_eof: &hit_eof,
        };
        let io = |e: std::io::Error| fail(e.to_string());
        // Reads the header only (jpeg_read_header): the size is checked before any pixel buffer.
        let dec = mozjpeg::Decompress::builder()
            .from_reader(reader)
            .map_err(io)?;
        let (w, h) = dec.size();
        if hit_eof.get() {
            return Err(truncated());
        }
        check_size(origin, w as u64, h as u64, max_pixels)?;
        let mode = pil_mode(dec.components().len(), origin)?;
        let out = match mode {
            PilMode::L => J::JCS_GRAYSCALE,
            PilMode::Cmyk => J::JCS_CMYK,
            _ => J::JCS_RGB,
        };
        // libjpeg's defaults, as Pillow leaves them: JDCT_ISLOW, fancy upsampling, scale 1/1.
        let mut started = dec.to_colorspace(out).map_err(io)?;
        let mut data = started.read_scanlines::<u8>().map_err(io)?;
        // Pillow calls jpeg_finish_decompress too (reads up to EOI).
        started.finish().map_err(io)?;
        // Data ending anywhere before EOI (even just the EOI marker missing) is
        // Pillow's "image file is truncated".
        if hit_eof.get() {
            return Err(truncated());
        }
        invert_cmyk(mode, &mut data);
        PilImage::from_u8(mode, w, h, data)
    };
    // libjpeg's error_exit unwinds with its message (mozjpeg's error manager, `resume_unwind`:
    // no panic hook runs); it stops here.
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "libjpeg failed".into());
        Err(fail(message))
    })
}
