//! A decoded image as Pillow holds it: a mode, a size, the samples (and a palette for `P`).
//!
//! The transform resizes an image in the mode the file was opened in and converts it to RGB
//! only after the crop, as open_clip does, so the decoded mode matters for exactness.

use super::error::ImageError;

/// Pillow image modes that the transform reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PilMode {
    /// `"1"`: bilevel (1-bit greyscale PNG). Samples are stored as 0 or 255.
    Bilevel,
    /// `"L"`: 8-bit greyscale (also 2/4-bit PNG greyscale, scaled by 85 / 17 like Pillow).
    L,
    /// `"LA"`: 8-bit greyscale with alpha, interleaved `L, A`.
    La,
    /// `"P"`: palette indices, with a palette of RGB entries.
    P,
    /// `"RGB"`: 8-bit RGB, interleaved.
    Rgb,
    /// `"RGBA"`: 8-bit RGB with (straight, not premultiplied) alpha, interleaved.
    Rgba,
    /// `"CMYK"`: 8-bit CMYK as Pillow holds it (Adobe JPEG values already inverted).
    Cmyk,
    /// `"I;16"`: 16-bit greyscale (16-bit greyscale PNG).
    I16,
}

impl PilMode {
    /// Number of interleaved samples per pixel.
    pub fn channels(self) -> usize {
        match self {
            PilMode::Bilevel | PilMode::L | PilMode::P | PilMode::I16 => 1,
            PilMode::La => 2,
            PilMode::Rgb => 3,
            PilMode::Rgba | PilMode::Cmyk => 4,
        }
    }

    /// Pillow's name of the mode (`"1"`, `"L"`, `"LA"`, `"P"`, `"RGB"`, `"RGBA"`, `"CMYK"`, `"I;16"`).
    pub fn name(self) -> &'static str {
        match self {
            PilMode::Bilevel => "1",
            PilMode::L => "L",
            PilMode::La => "LA",
            PilMode::P => "P",
            PilMode::Rgb => "RGB",
            PilMode::Rgba => "RGBA",
            PilMode::Cmyk => "CMYK",
            PilMode::I16 => "I;16",
        }
    }
}

/// Sample storage: 8-bit for every mode but `I;16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A decoded image in a Pillow mode, the input of [`super::ImageTransform`].
///
/// Built by the decoders of this module, from an `image::DynamicImage`, or from raw samples with
/// [`PilImage::from_u8`], [`PilImage::from_palette`] or [`PilImage::from_i16`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PilImage {
    pub(crate) mode: PilMode,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) samples: Samples,
    /// RGB palette entries (mode `P` only). Indices past its end read as black, like Pillow.
    pub(crate) palette: Vec<[u8; 3]>,
}

fn check_len(mode: PilMode, width: usize, height: usize, len: usize) -> Result<(), ImageError> {
    let want = width
        .checked_mul(height)
        .and_then(|p| p.checked_mul(mode.channels()))
        .ok_or_else(|| ImageError::InvalidBuffer(format!("{width}x{height} overflows")))?;
    if want != len {
        return Err(ImageError::InvalidBuffer(format!(
            "mode {} {width}x{height} needs {want} samples, got {len}",
            mode.name()
        )));
    }
    Ok(())
}

impl PilImage {
    /// An 8-bit image of mode `1`, `L`, `LA`, `RGB`, `RGBA` or `CMYK` from interleaved samples
    /// (row-major, `width * height * mode.channels()` values). For `1`, any non-zero sample is
    /// white. Use [`PilImage::from_palette`] for `P` and [`PilImage::from_i16`] for `I;16`.
    ///
    /// # Errors
    /// [`ImageError::InvalidBuffer`] if the length does not match or the mode is `P` / `I;16`.
    pub fn from_u8(
        mode: PilMode,
        width: usize,
        height: usize,
        mut data: Vec<u8>,
    ) -> Result<Self, ImageError> {
        if matches!(mode, PilMode::P | PilMode::I16) {
            return Err(ImageError::InvalidBuffer(format!(
                "mode {} needs PilImage::from_palette / from_i16",
                mode.name()
            )));
        }
        check_len(mode, width, height, data.len())?;
        if mode == PilMode::Bilevel {
            for v in &mut data {
                *v = if *v != 0 { 255 } else { 0 };
            }
        }
        Ok(Self {
            mode,
            width,
            height,
            samples: Samples::U8(data),
            palette: Vec::new(),
        })
    }

    /// A palette image (`P`): one index per pixel and up to 256 RGB entries.
    ///
    /// # Errors
    /// [`ImageError::InvalidBuffer`] if the index count does not match or the palette is larger than 256.
    pub fn from_palette(
        width: usize,
        height: usize,
        indices: Vec<u8>,
        palette: Vec<[u8; 3]>,
    ) -> Result<Self, ImageError> {
        check_len(PilMode::P, width, height, indices.len())?;
        if palette.len() > 256 {
            return Err(ImageError::InvalidBuffer(format!(
                "palette of {} entries (max 256)",
                palette.len()
            )));
        }
        Ok(Self {
            mode: PilMode::P,
            width,
            height,
            samples: Samples::U8(indices),
            palette,
        })
    }

    /// A 16-bit greyscale image (`I;16`).
    ///
    /// # Errors
    /// [`ImageError::InvalidBuffer`] if the sample count does not match.
    pub fn from_i16(width: usize, height: usize, data: Vec<u16>) -> Result<Self, ImageError> {
        check_len(PilMode::I16, width, height, data.len())?;
        Ok(Self {
            mode: PilMode::I16,
            width,
            height,
            samples: Samples::U16(data),
            palette: Vec::new(),
        })
    }

    /// The Pillow mode.
    pub fn mode(&self) -> PilMode {
        self.mode
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Converts `rgb` (already cropped, `width*height` pixels) to interleaved RGB like
    /// Pillow's `convert("RGB")`: `L`/`LA` replicate L (alpha dropped), `RGBA` drops alpha,
    /// `P` looks the palette up, `1` maps to 0/255, `I;16` clips to 255,
    /// `CMYK` is `nk - MULDIV255(c, nk)` with `nk = 255 - k`.
    pub(crate) fn to_rgb(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = Vec::with_capacity(n * 3);
        match &self.samples {
            Samples::U16(v) => {
                for &s in v {
                    // Convert.c I16_RGB: high byte non-zero -> 255
                    let g = if s > 255 { 255 } else { s as u8 };
                    out.extend_from_slice(&[g, g, g]);
                }
            }
            Samples::U8(v) => match self.mode {
                PilMode::Bilevel | PilMode::L => {
                    for &g in v {
                        out.extend_from_slice(&[g, g, g]);
                    }
                }
                PilMode::La => {
                    for px in v.chunks_exact(2) {
                        out.extend_from_slice(&[px[0], px[0], px[0]]);
                    }
                }
                PilMode::P => {
                    for &i in v {
                        out.extend_from_slice(
                            &self
                                .palette
                                .get(usize::from(i))
                                .copied()
                                .unwrap_or([0, 0, 0]),
                        );
                    }
                }
                PilMode::Rgb => out.extend_from_slice(v),
                PilMode::Rgba => {
                    for px in v.chunks_exact(4) {
                        out.extend_from_slice(&px[..3]);
                    }
                }
                PilMode::Cmyk => {
                    for px in v.chunks_exact(4) {
                        let nk = 255 - i32::from(px[3]);
                        for &c in &px[..3] {
                            out.push(clip8(nk - muldiv255(i32::from(c), nk)));
                        }
                    }
                }
                PilMode::I16 => {}
            },
        }
        out
    }
}

/// Pillow's `MULDIV255(a, b)`: `a*b/255` rounded, in integers.
#[inline]
pub(crate) fn muldiv255(a: i32, b: i32) -> i32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Pillow's `CLIP8`.
#[inline]
pub(crate) fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}
