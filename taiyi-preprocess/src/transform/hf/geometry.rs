//! The geometry of `ChineseCLIPImageProcessor`: `convert_to_rgb`, the resize to a fixed
//! height and width, transformers' `center_crop` (floor offsets, zero padding).

use std::borrow::Cow;

use super::HfSteps;
use crate::transform::ImageTransform;
use crate::transform::error::ImageError;
use crate::transform::pil::{PilImage, PilMode, Samples};
use crate::transform::resample::{self, Window};

/// One axis of transformers' `center_crop`: the part of the resized image kept and where it
/// lands in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CropAxis {
    /// First index kept in the resized image.
    src: usize,
    /// Number of indices kept.
    len: usize,
    /// Where they start in the output (zero padding before and after).
    dst: usize,
}

/// `center_crop` on one axis of length `dim` to `crop`: `(dim - crop) // 2` when the image is
/// large enough; otherwise the image is padded to `crop`, placed at `ceil((crop - dim) / 2)`.
fn crop_axis(dim: usize, crop: usize) -> CropAxis {
    if dim >= crop {
        CropAxis {
            src: (dim - crop) / 2,
            len: crop,
            dst: 0,
        }
    } else {
        CropAxis {
            src: 0,
            len: dim,
            dst: (crop - dim).div_ceil(2),
        }
    }
}

impl ImageTransform {
    /// The HF resize alone, on the whole image, after `convert("RGB")`: an RGB image.
    pub(crate) fn hf_resize(
        &self,
        steps: &HfSteps,
        img: &PilImage,
    ) -> Result<PilImage, ImageError> {
        let src = convert(img, steps.convert_rgb)?;
        let (rw, rh) = steps.resized_size(img.width, img.height);
        let out = resample::resize_window(
            &src,
            rw,
            rh,
            &Window {
                xs: 0..rw,
                ys: 0..rh,
            },
        );
        Ok(match out.mode {
            PilMode::Rgb => out,
            _ => PilImage {
                mode: PilMode::Rgb,
                samples: Samples::U8(out.to_rgb()),
                palette: Vec::new(),
                ..out
            },
        })
    }

    /// convert + resize + center crop: the interleaved RGB uint8 image (`[size, size, 3]`) that
    /// rescale + normalize receive.
    pub(crate) fn hf_crop_rgb(
        &self,
        steps: &HfSteps,
        img: &PilImage,
    ) -> Result<Vec<u8>, ImageError> {
        let src = convert(img, steps.convert_rgb)?;
        let (rw, rh) = steps.resized_size(img.width, img.height);
        let s = self.image_size;
        let (ax, ay) = match steps.crop {
            Some(c) => (crop_axis(rw, c), crop_axis(rh, c)),
            // No crop: from_hf_processor made sure the resize is to s x s.
            None => (crop_axis(rw, rw), crop_axis(rh, rh)),
        };
        let win = Window {
            xs: ax.src..ax.src + ax.len,
            ys: ay.src..ay.src + ay.len,
        };
        // Same size: Pillow's resize returns a copy, and so does `resize_window` (L / RGB).
        let rgb = resample::resize_window(&src, rw, rh, &win).to_rgb();
        if ax.len == s && ay.len == s {
            return Ok(rgb);
        }
        let mut out = vec![0u8; s * s * 3];
        for (r, row) in rgb.chunks_exact(ax.len * 3).enumerate() {
            let o = ((r + ay.dst) * s + ax.dst) * 3;
            out[o..o + row.len()].copy_from_slice(row);
        }
        Ok(out)
    }
}

/// `convert_to_rgb`: the image as RGB, or as `L` for the greyscale modes (whose RGB form is
/// `L` replicated; see the module docs).
fn convert(img: &PilImage, convert_rgb: bool) -> Result<Cow<'_, PilImage>, ImageError> {
    if img.width == 0 || img.height == 0 {
        return Err(ImageError::ZeroSize {
            origin: "<image>".into(),
            width: img.width as u64,
            height: img.height as u64,
        });
    }
    if img.mode == PilMode::Rgb {
        return Ok(Cow::Borrowed(img));
    }
    if !convert_rgb {
        return Err(ImageError::Unsupported {
            origin: "<image>".into(),
            what: format!(
                "mode {} with do_convert_rgb false (ChineseCLIPImageProcessor then only \
                 processes RGB images)",
                img.mode.name()
            ),
        });
    }
    let with = |mode: PilMode, samples: Vec<u8>| PilImage {
        mode,
        width: img.width,
        height: img.height,
        samples: Samples::U8(samples),
        palette: Vec::new(),
    };
    Ok(match (&img.samples, img.mode) {
        (Samples::U8(_), PilMode::L) => Cow::Borrowed(img),
        // `1` holds 0 / 255 (resized as L, with BICUBIC: Pillow's NEAREST for `1` does not
        // apply after the conversion).
        (Samples::U8(v), PilMode::Bilevel) => Cow::Owned(with(PilMode::L, v.clone())),
        (Samples::U8(v), PilMode::La) => {
            Cow::Owned(with(PilMode::L, v.iter().step_by(2).copied().collect()))
        }
        // Convert.c I16_RGB: a non-zero high byte reads 255.
        (Samples::U16(v), _) => Cow::Owned(with(
            PilMode::L,
            v.iter().map(|&s| u8::try_from(s).unwrap_or(255)).collect(),
        )),
        // P, RGBA, CMYK.
        _ => Cow::Owned(with(PilMode::Rgb, img.to_rgb())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_axis_floors_and_pads() {
        let c = |src, len, dst| CropAxis { src, len, dst };
        assert_eq!(crop_axis(224, 224), c(0, 224, 0));
        // (255 - 224) // 2 = 15 where torchvision's round(15.5) is 16.
        assert_eq!(crop_axis(255, 224), c(15, 224, 0));
        assert_eq!(crop_axis(259, 224), c(17, 224, 0));
        assert_eq!(crop_axis(226, 224), c(1, 224, 0));
        // Pad: ceil((224 - 201) / 2) = 12 zeros before.
        assert_eq!(crop_axis(201, 224), c(0, 201, 12));
        assert_eq!(crop_axis(1, 4), c(0, 1, 2));
        assert_eq!(crop_axis(2, 4), c(0, 2, 1));
    }
}
