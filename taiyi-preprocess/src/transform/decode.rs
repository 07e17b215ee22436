//! Decoding files into [`PilImage`]s in the mode Pillow would open them in.
//!
//! - PNG: the `png` crate with no transformations; the colour type / bit depth map to Pillow's
//!   modes exactly as `PngImagePlugin._MODES` does (1-bit grey -> `1`, 2/4-bit grey -> `L`
//!   scaled by 85/17, 16-bit grey -> `I;16`, 16-bit RGB(A)/LA -> RGB(A) keeping the high byte,
//!   palette -> `P`; tRNS only adds `info["transparency"]`, which the transform ignores).
//! - JPEG: [`super::jpeg`] (libjpeg-turbo as Pillow, or zune-jpeg), 1 component -> `L`,
//!   3 -> `RGB`, 4 -> `CMYK` inverted like Pillow's `CMYK;I` raw mode.
//! - GIF and 1/4/8-bit palette BMP: [`super::indexed`], in Pillow's modes `1` / `L` / `P`
//!   (which Pillow, and so the transform, resizes NEAREST).
//! - Anything else the `image` crate reads (WebP, 16/24/32-bit BMP, TIFF): decoded by it and
//!   mapped by [`from_dynamic`].

use std::io::Cursor;

use super::error::{ImageError, PngError};
use super::indexed;
use super::jpeg::{self, JpegDecoder};
use super::pil::{PilImage, PilMode, Samples};
use image::{DynamicImage, ImageFormat};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Zero-size and decompression-bomb checks from the header's size, before decoding.
pub(crate) fn check_size(
    origin: &str,
    width: u64,
    height: u64,
    max_pixels: u64,
) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize {
            origin: origin.to_owned(),
            width,
            height,
        });
    }
    let pixels = width.saturating_mul(height);
    if pixels > max_pixels {
        return Err(ImageError::TooManyPixels {
            origin: origin.to_owned(),
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Width, height and samples per pixel of the decoded image, from the header alone; `None`
/// when it does not parse (decoding will then report the error).
fn probe(bytes: &[u8], origin: &str) -> Option<(u64, u64, u64)> {
    if bytes.starts_with(PNG_MAGIC) {
        let be = |i: usize| {
            bytes
                .get(i..i + 4)
                .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        };
        let samples = match bytes.get(25)? {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        };
        let wide = if bytes.get(24) == Some(&16) { 2 } else { 1 };
        return Some((be(16)?, be(20)?, samples * wide));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let (w, h, n) = jpeg::jpeg_header(bytes, origin).ok()?;
        return Some((w, h, n as u64));
    }
    let format = image::guess_format(bytes).ok()?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let (w, h) = reader.into_dimensions().ok()?;
    Some((u64::from(w), u64::from(h), 4))
}

/// The bytes a decode of `bytes` is expected to hold at its peak, for the decode budget:
/// the encoded data plus, per pixel (at most `max_pixels` of them, where decoding stops),
/// 2 bytes per decoded sample + 2 (decoder output and working buffers, conversion copies,
/// the resize's intermediate rows; the measurement was 7.9 bytes per RGB pixel, this
/// gives 8). Only the encoded size when the header does not parse.
pub(crate) fn estimate(bytes: &[u8], origin: &str, max_pixels: u64) -> u64 {
    let len = bytes.len() as u64;
    match probe(bytes, origin) {
        Some((w, h, samples)) => {
            let pixels = w.saturating_mul(h).min(max_pixels);
            len.saturating_add(pixels.saturating_mul(2 * samples + 2))
        }
        None => len,
    }
}

/// Decodes an encoded image (PNG, JPEG, GIF, WebP, BMP, TIFF) from memory.
pub(crate) fn decode_bytes(
    bytes: &[u8],
    origin: &str,
    max_pixels: u64,
    jpeg_decoder: JpegDecoder,
) -> Result<PilImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Corrupt {
            origin: origin.to_owned(),
            what: "empty data".into(),
        });
    }
    if bytes.starts_with(PNG_MAGIC) {
        return decode_png(bytes, origin, max_pixels);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return jpeg::decode_jpeg(bytes, origin, max_pixels, jpeg_decoder);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::Unsupported {
        origin: origin.to_owned(),
        what: "unknown image format (not PNG, JPEG, GIF, WebP, BMP or TIFF)".into(),
    })?;
    if !matches!(
        format,
        ImageFormat::Gif | ImageFormat::WebP | ImageFormat::Bmp | ImageFormat::Tiff
    ) {
        return Err(ImageError::Unsupported {
            origin: origin.to_owned(),
            what: format!("format {format:?}"),
        });
    }
    if format == ImageFormat::Gif {
        return indexed::decode_gif(bytes, origin, max_pixels);
    }
    if format == ImageFormat::Bmp
        && let Some(img) = indexed::decode_palette_bmp(bytes, origin, max_pixels)?
    {
        return Ok(img);
    }
    let dec = |e| ImageError::Decode {
        origin: origin.to_owned(),
        source: e,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let (w, h) = reader.into_dimensions().map_err(dec)?;
    check_size(origin, u64::from(w), u64::from(h), max_pixels)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let img = reader.decode().map_err(dec)?;
    from_dynamic(&img, origin)
}

fn decode_png(bytes: &[u8], origin: &str, max_pixels: u64) -> Result<PilImage, ImageError> {
    let corrupt = |what: &str| ImageError::Corrupt {
        origin: origin.to_owned(),
        what: what.to_owned(),
    };
    // IHDR must be the first chunk: signature(8) length(4) "IHDR"(4) width(4) height(4).
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return Err(corrupt("PNG without IHDR chunk"));
    }
    let be = |i: usize| {
        u64::from(u32::from_be_bytes([
            bytes[i],
            bytes[i + 1],
            bytes[i + 2],
            bytes[i + 3],
        ]))
    };
    check_size(origin, be(16), be(20), max_pixels)?;

    let png_err = |e| ImageError::Png {
        origin: origin.to_owned(),
        source: PngError(e),
    };
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: usize::MAX });
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(png_err)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt("PNG too large for memory"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(png_err)?;
    let info = reader.info();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let line = frame.line_size;
    let depth = info.bit_depth as u8;
    let rows = |f: &mut dyn FnMut(&[u8])| {
        for y in 0..h {
            f(&buf[y * line..(y + 1) * line]);
        }
    };
    // Unpacks sub-byte samples (MSB first), one per pixel.
    let unpack = |bits: u8, scale: u8| -> Vec<u8> {
        let mut out = Vec::with_capacity(w * h);
        let per = 8 / usize::from(bits);
        let mask = (1u16 << bits) as u8 - 1;
        rows(&mut |r: &[u8]| {
            for x in 0..w {
                let byte = r[x / per];
                let shift = 8 - usize::from(bits) * (x % per + 1);
                out.push(((byte >> shift) & mask).wrapping_mul(scale));
            }
        });
        out
    };
    // 16-bit big-endian samples -> their high bytes (Pillow's `RGB;16B` etc.).
    let high_bytes = || -> Vec<u8> {
        let mut out = Vec::with_capacity(size / 2);
        rows(&mut |r: &[u8]| out.extend(r.chunks_exact(2).map(|s| s[0])));
        out
    };
    let packed = || -> Vec<u8> {
        let mut out = Vec::with_capacity(size);
        rows(&mut |r: &[u8]| out.extend_from_slice(r));
        out
    };
    use png::ColorType as C;
    let u8img = |mode, data| PilImage::from_u8(mode, w, h, data);
    let img = match (info.color_type, depth) {
        (C::Grayscale, 1) => u8img(PilMode::Bilevel, unpack(1, 255))?,
        (C::Grayscale, 2) => u8img(PilMode::L, unpack(2, 85))?,
        (C::Grayscale, 4) => u8img(PilMode::L, unpack(4, 17))?,
        (C::Grayscale, 8) => u8img(PilMode::L, packed())?,
        (C::Grayscale, 16) => {
            let mut out = Vec::with_capacity(w * h);
            rows(&mut |r: &[u8]| {
                out.extend(r.chunks_exact(2).map(|s| u16::from_be_bytes([s[0], s[1]])))
            });
            PilImage::from_i16(w, h, out)?
        }
        (C::Rgb, 8) => u8img(PilMode::Rgb, packed())?,
        (C::Rgb, 16) => u8img(PilMode::Rgb, high_bytes())?,
        (C::GrayscaleAlpha, 8) => u8img(PilMode::La, packed())?,
        (C::GrayscaleAlpha, 16) => {
            // Pillow: `LA;16B` -> RGBA (L high byte replicated, A high byte).
            let la = high_bytes();
            let mut out = Vec::with_capacity(w * h * 4);
            for px in la.chunks_exact(2) {
                out.extend_from_slice(&[px[0], px[0], px[0], px[1]]);
            }
            u8img(PilMode::Rgba, out)?
        }
        (C::Rgba, 8) => u8img(PilMode::Rgba, packed())?,
        (C::Rgba, 16) => u8img(PilMode::Rgba, high_bytes())?,
        (C::Indexed, d @ (1 | 2 | 4 | 8)) => {
            let pal = info
                .palette
                .as_ref()
                .ok_or_else(|| corrupt("palette PNG without PLTE chunk"))?;
            let palette: Vec<[u8; 3]> = pal
                .chunks_exact(3)
                .take(256)
                .map(|p| [p[0], p[1], p[2]])
                .collect();
            let idx = if d == 8 { packed() } else { unpack(d, 1) };
            PilImage::from_palette(w, h, idx, palette)?
        }
        (ct, d) => {
            return Err(ImageError::Unsupported {
                origin: origin.to_owned(),
                what: format!("PNG colour type {ct:?} with bit depth {d}"),
            });
        }
    };
    Ok(img)
}

/// Maps an `image::DynamicImage` to the Pillow mode Pillow would give the same pixels:
/// L8 -> `L`, La8 -> `LA`, Rgb8 -> `RGB`, Rgba8 -> `RGBA`, L16 -> `I;16`, and 16-bit colour /
/// grey+alpha to `RGB`/`RGBA` keeping the high byte (as Pillow opens 16-bit PNGs).
/// Float images are converted with `image`'s own `to_rgb8` / `to_rgba8`.
pub(crate) fn from_dynamic(img: &DynamicImage, origin: &str) -> Result<PilImage, ImageError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(ImageError::ZeroSize {
            origin: origin.to_owned(),
            width: w as u64,
            height: h as u64,
        });
    }
    let hi = |v: &[u16]| v.iter().map(|&s| (s >> 8) as u8).collect::<Vec<u8>>();
    match img {
        DynamicImage::ImageLuma8(b) => PilImage::from_u8(PilMode::L, w, h, b.as_raw().clone()),
        DynamicImage::ImageLumaA8(b) => PilImage::from_u8(PilMode::La, w, h, b.as_raw().clone()),
        DynamicImage::ImageRgb8(b) => PilImage::from_u8(PilMode::Rgb, w, h, b.as_raw().clone()),
        DynamicImage::ImageRgba8(b) => PilImage::from_u8(PilMode::Rgba, w, h, b.as_raw().clone()),
        DynamicImage::ImageLuma16(b) => PilImage::from_i16(w, h, b.as_raw().clone()),
        DynamicImage::ImageLumaA16(b) => {
            let la = hi(b.as_raw());
            let mut out = Vec::with_capacity(w * h * 4);
            for px in la.chunks_exact(2) {
                out.extend_from_slice(&[px[0], px[0], px[0], px[1]]);
            }
            PilImage::from_u8(PilMode::Rgba, w, h, out)
        }
        DynamicImage::ImageRgb16(b) => PilImage::from_u8(PilMode::Rgb, w, h, hi(b.as_raw())),
        DynamicImage::ImageRgba16(b) => PilImage::from_u8(PilMode::Rgba, w, h, hi(b.as_raw())),
        other if other.color().has_alpha() => {
            PilImage::from_u8(PilMode::Rgba, w, h, other.to_rgba8().into_raw())
        }
        other => PilImage::from_u8(PilMode::Rgb, w, h, other.to_rgb8().into_raw()),
    }
}

impl PilImage {
    /// Samples as 8-bit (for tests and debugging); `None` for `I;16`.
    pub fn samples_u8(&self) -> Option<&[u8]> {
        match &self.samples {
            Samples::U8(v) => Some(v),
            Samples::U16(_) => None,
        }
    }

    /// Samples of an `I;16` image; `None` for the 8-bit modes.
    pub fn samples_u16(&self) -> Option<&[u16]> {
        match &self.samples {
            Samples::U16(v) => Some(v),
            Samples::U8(_) => None,
        }
    }

    /// The palette of a `P` image (empty for other modes).
    pub fn palette(&self) -> &[[u8; 3]] {
        &self.palette
    }
}
