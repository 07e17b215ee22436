//! GIF and 1/4/8-bit palette BMP decoding in the modes Pillow 13.0.0 opens them in.
//!
//! The mode decides the resize filter: Pillow resizes `1` and `P` images NEAREST whatever the
//! caller asks for (so open_clip's BICUBIC `Resize` is NEAREST for them), `L` BICUBIC.
//!
//! - BMP (`BmpImagePlugin.py`): a palette image whose palette is exactly black/white (2 colours,
//!   entries `(0,0,0), (255,255,255)`; or 1 colour `(0,0,0)`) is `1`; one whose `colors` entries
//!   are the identity greys `(i,i,i)` is `L` (8-bit) and samples are the indices; anything else
//!   is `P` with the file's palette. (A 4-bit BMP with an identity grey palette, which Pillow
//!   misreads as 8-bit `L`, is rejected as unsupported.)
//! - GIF (`GifImagePlugin.py`, first frame only): the frame's local colour table, else the
//!   global one, is its palette; a palette that is the identity greys counts as none (mode `L`,
//!   samples are the indices), otherwise mode `P`. The image is the logical screen, enlarged to
//!   the frame's extent if the frame overflows it; pixels outside the frame are the transparent
//!   index if the frame has one, else 0.

use std::collections::HashMap;
use std::io::Cursor;

use image::ImageDecoder;
use image::codecs::bmp::BmpDecoder;

use super::decode::check_size;
use super::error::ImageError;
use super::pil::{PilImage, PilMode};

/// A palette that is `(i, i, i)` for every entry `i` (Pillow's `_is_palette_needed` is false).
fn identity_greys(palette: &[[u8; 3]]) -> bool {
    palette
        .iter()
        .enumerate()
        .all(|(i, p)| usize::from(p[0]) == i && p[0] == p[1] && p[1] == p[2])
}

/// Bits per pixel and palette size (`colors`, 0 meaning `1 << bits`) from a BMP's headers:
/// BITMAPCOREHEADER (12 bytes) or BITMAPINFOHEADER and later (offsets 28 and 46).
fn bmp_bits_and_colors(bytes: &[u8]) -> (u16, usize) {
    let u16le = |o: usize| {
        bytes
            .get(o..o + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32le = |o: usize| {
        bytes
            .get(o..o + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (bits, colors) = if u32le(14) == 12 {
        (u16le(24), 0)
    } else {
        (u16le(28), u32le(46))
    };
    let colors = if colors == 0 {
        1usize << bits.min(16)
    } else {
        colors as usize
    };
    (bits, colors)
}

/// Decodes a 1/4/8-bit palette BMP; `Ok(None)` for a BMP without palette (16/24/32-bit),
/// which the caller decodes as RGB(A).
pub(crate) fn decode_palette_bmp(
    bytes: &[u8],
    origin: &str,
    max_pixels: u64,
) -> Result<Option<PilImage>, ImageError> {
    let dec = |e| ImageError::Decode {
        origin: origin.to_owned(),
        source: e,
    };
    // Reads the headers and the palette only.
    let decoder = BmpDecoder::new(Cursor::new(bytes)).map_err(dec)?;
    let Some(palette) = decoder.get_palette().map(<[[u8; 3]]>::to_vec) else {
        return Ok(None);
    };
    let (w, h) = decoder.dimensions();
    check_size(origin, u64::from(w), u64::from(h), max_pixels)?;
    let (bits, colors) = bmp_bits_and_colors(bytes);
    // image pads the palette to 256 entries; Pillow's has the header's `colors` entries.
    let palette = palette[..palette.len().min(colors)].to_vec();
    // image's indexed output mis-handles 1/4-bit rows, so decode to RGB through the palette
    // and map back: a P image's transform only depends on the colours of its indices
    // (NEAREST resize, then palette lookup), so any index of a colour is as good.
    let rgb = image::DynamicImage::from_decoder(decoder)
        .map_err(dec)?
        .to_rgb8()
        .into_raw();
    let (w, h) = (w as usize, h as usize);
    let black_white = match palette.len() {
        2 => palette == [[0, 0, 0], [255, 255, 255]],
        1 => palette == [[0, 0, 0]],
        _ => false,
    };
    let first_channel = || rgb.chunks_exact(3).map(|p| p[0]).collect::<Vec<u8>>();
    let img = if black_white {
        // Pillow's raw mode `1`: index 0/1 -> 0/255, the palette's own colours.
        PilImage::from_u8(PilMode::Bilevel, w, h, first_channel())?
    } else if palette.len() > 2 && identity_greys(&palette) {
        if bits != 8 {
            return Err(ImageError::Unsupported {
                origin: origin.to_owned(),
                what: "BMP below 8 bits with an identity grey palette (Pillow misreads it)".into(),
            });
        }
        PilImage::from_u8(PilMode::L, w, h, first_channel())?
    } else {
        let mut palette = palette;
        let mut index: HashMap<[u8; 3], u8> = HashMap::new();
        for (i, c) in palette.iter().enumerate().take(256) {
            index.entry(*c).or_insert(i as u8);
        }
        let mut idx = Vec::with_capacity(w * h);
        for p in rgb.chunks_exact(3) {
            let c = [p[0], p[1], p[2]];
            let i = match index.get(&c) {
                Some(&i) => i,
                None => {
                    // An index past the palette reads as black (image and Pillow alike).
                    let i = u8::try_from(palette.len()).map_err(|_| ImageError::Corrupt {
                        origin: origin.to_owned(),
                        what: "BMP colour outside a full palette".into(),
                    })?;
                    palette.push(c);
                    index.insert(c, i);
                    i
                }
            };
            idx.push(i);
        }
        PilImage::from_palette(w, h, idx, palette)?
    };
    Ok(Some(img))
}

/// Decodes the first frame of a GIF in Pillow's mode (`L` or `P`).
pub(crate) fn decode_gif(
    bytes: &[u8],
    origin: &str,
    max_pixels: u64,
) -> Result<PilImage, ImageError> {
    let gif_err = |e| ImageError::Gif {
        origin: origin.to_owned(),
        source: e,
    };
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    // The size is checked below, before the frame buffer is allocated.
    options.set_memory_limit(gif::MemoryLimit::Unlimited);
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(gif_err)?;
    let (sw, sh) = (usize::from(decoder.width()), usize::from(decoder.height()));
    let to_palette =
        |p: &[u8]| -> Vec<[u8; 3]> { p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect() };
    let global = decoder.global_palette().map(to_palette);
    let frame = decoder
        .next_frame_info()
        .map_err(gif_err)?
        .ok_or_else(|| ImageError::Corrupt {
            origin: origin.to_owned(),
            what: "GIF without an image".into(),
        })?;
    let (fx, fy) = (usize::from(frame.left), usize::from(frame.top));
    let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
    let transparent = frame.transparent;
    let local = frame.palette.as_deref().map(to_palette);
    // Pillow enlarges the image to a first frame that overflows the logical screen.
    let (w, h) = (sw.max(fx + fw), sh.max(fy + fh));
    check_size(origin, w as u64, h as u64, max_pixels)?;
    let mut buf = vec![0u8; fw * fh];
    decoder.read_into_buffer(&mut buf).map_err(gif_err)?;
    let mut idx = if (fx, fy, fw, fh) == (0, 0, w, h) {
        buf
    } else {
        let mut canvas = vec![transparent.unwrap_or(0); w * h];
        for (r, row) in buf.chunks_exact(fw.max(1)).enumerate() {
            let o = (fy + r) * w + fx;
            canvas[o..o + fw].copy_from_slice(row);
        }
        canvas
    };
    idx.truncate(w * h);
    // A local table that is the identity greys means "no palette" even with a global one.
    let palette = match local {
        Some(p) => Some(p),
        None => global,
    }
    .filter(|p| !identity_greys(p));
    match palette {
        Some(p) => PilImage::from_palette(w, h, idx, p),
        None => PilImage::from_u8(PilMode::L, w, h, idx),
    }
}
