//! transformers 4.57.6's `ChineseCLIPImageProcessor` (the slow class), bit-exact on its f32
//! `pixel_values` with Pillow 13.0.0 and numpy.
//!
//! `convert_to_rgb` (`image.convert("RGB")`, first: unlike open_clip, the resize runs on the RGB
//! image) -> `resize` to exactly `(size["height"], size["width"])` (no aspect kept) with PIL's
//! BICUBIC -> optional `center_crop` to `crop_size` (offsets `(h - ch) // 2`, `(w - cw) // 2`:
//! floor, unlike torchvision's round half to even; a crop larger than the image pads it with
//! zeros, the image at `ceil((ch - h) / 2)`) -> `rescale` (`(u8 as f64 * rescale_factor) as f32`)
//! -> `normalize` (`(x - mean) / std` in f32, mean and std rounded to f32). The float stage is a
//! per-channel function of the uint8 value, computed as a LUT.
//!
//! Greyscale modes (`1`, `L`, `LA`, `I;16`) are resized as one `L` channel and replicated: their
//! RGB conversion has three equal channels, and Pillow resamples each channel with the same
//! integer arithmetic, so the result is the same with a third of the memory and work.
//!
//! One deliberate difference: transformers infers the channel axis of the `(H, W, 3)` array of
//! an image whose height is 1 or 3 as the first one (`infer_channel_dimension_format`). For
//! height 1 the processor then raises (`mean must have 1 elements`); for height 3 it reads the
//! rows as channels and returns a transposed image. This port computes what the processor
//! returns with `input_data_format="channels_last"`, which equals its default output for every
//! other height (the fixture script asserts both).

mod config;
mod geometry;

pub use config::{HfChannels, HfImageProcessorConfig, HfSize};

use super::error::ImageError;
use super::{ImageTransform, PIL_MAX_IMAGE_PIXELS};

/// `PIL.Image.Resampling.BICUBIC`, the only filter ported.
const BICUBIC: u32 = 3;
/// The largest height / width accepted in `size` and `crop_size`.
const MAX_SIDE: usize = 16384;

/// The geometry and float stage of an [`ImageTransform`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pipeline {
    /// open_clip: shortest-side resize in the image's own mode, round-half-even center crop,
    /// then `convert("RGB")`; `ToTensor` (`u8 as f32 / 255`) + `Normalize`.
    OpenClip,
    /// `ChineseCLIPImageProcessor`.
    Hf(HfSteps),
}

/// The steps of a `ChineseCLIPImageProcessor` configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HfSteps {
    /// `do_convert_rgb`: when false, only RGB images are accepted.
    convert_rgb: bool,
    /// `(width, height)` to resize to, `None` without `do_resize`.
    resize: Option<(usize, usize)>,
    /// The square center crop's side, `None` without `do_center_crop`.
    crop: Option<usize>,
    /// `rescale_factor`, `None` without `do_rescale`.
    rescale: Option<f64>,
    /// `do_normalize`.
    normalize: bool,
}

impl HfSteps {
    /// The output of rescale + normalize for the uint8 value `v` of a channel.
    pub(crate) fn float_value(&self, v: u8, mean: f32, std: f32) -> f32 {
        let x = match self.rescale {
            // numpy: `image.astype(np.float64) * scale`, then `.astype(np.float32)`.
            Some(f) => (f64::from(v) * f) as f32,
            None => f32::from(v),
        };
        if self.normalize { (x - mean) / std } else { x }
    }

    /// The size after the resize of a `width x height` image.
    pub(crate) fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        self.resize.unwrap_or((width, height))
    }
}

fn refuse<T>(message: String) -> Result<T, ImageError> {
    Err(ImageError::InvalidConfig(message))
}

fn side(value: usize, what: &str) -> Result<usize, ImageError> {
    if value == 0 || value > MAX_SIDE {
        return refuse(format!("{what} = {value}: must be in 1..={MAX_SIDE}"));
    }
    Ok(value)
}

/// Three per-channel values of `image_mean` / `image_std`, as f64.
fn channels(v: &HfChannels, what: &str) -> Result<[f64; 3], ImageError> {
    let out = match v {
        HfChannels::All(x) => [*x; 3],
        HfChannels::PerChannel(xs) => match xs.as_slice() {
            [a, b, c] => [*a, *b, *c],
            _ => {
                return refuse(format!(
                    "{what} has {} values; an RGB image needs 3 (transformers' normalize raises)",
                    xs.len()
                ));
            }
        },
    };
    Ok(out)
}

impl ImageTransform {
    /// The transform of transformers' slow `ChineseCLIPImageProcessor` with `config` (read
    /// with [`HfImageProcessorConfig::read`]): bit-exact on its f32 `pixel_values` (see the
    /// module docs of `transform::hf`). The output is square: [`ImageTransform::image_size`] is
    /// the crop side with `do_center_crop`, else the resize side. Without `do_normalize`, the
    /// values are those of the rescale (or the uint8 values as f32 without `do_rescale` either,
    /// where the processor returns uint8), and [`ImageTransform::mean`] / [`ImageTransform::std`]
    /// read 0 / 1.
    ///
    /// # Errors
    /// [`ImageError::InvalidConfig`] for what the processor cannot run or this port does not
    /// reproduce: with `do_resize`, a `size` other than `{"height", "width"}` (a
    /// `{"shortest_edge": N}` size, which a bare int `size` also means, makes the slow class's
    /// `resize` raise `KeyError`) or a `resample` other than 3 (BICUBIC); with
    /// `do_center_crop`, a `crop_size` that is not `{"height": N, "width": N}` (square); a
    /// non-square output (no crop and `size` height != width); neither resize nor crop (the
    /// output size would follow the input's); sizes of 0 or above 16384; a non-finite
    /// `rescale_factor`; with `do_normalize`, `image_mean` / `image_std` without 3 values
    /// (or one), not finite, or a std <= 0.
    pub fn from_hf_processor(config: &HfImageProcessorConfig) -> Result<Self, ImageError> {
        let resize = if config.do_resize {
            if config.resample != BICUBIC {
                let name = match config.resample {
                    0 => "NEAREST",
                    1 => "LANCZOS",
                    2 => "BILINEAR",
                    4 => "BOX",
                    5 => "HAMMING",
                    _ => "not a PIL filter",
                };
                return refuse(format!(
                    "resample = {} ({name}): only 3 (BICUBIC) is supported",
                    config.resample
                ));
            }
            match config.size {
                HfSize::HeightWidth { height, width } => {
                    Some((side(width, "size.width")?, side(height, "size.height")?))
                }
                HfSize::ShortestEdge { .. } => {
                    return refuse(format!(
                        "size {} (which a bare int size also means): \
                         ChineseCLIPImageProcessor.resize reads size[\"height\"] and \
                         size[\"width\"] and raises KeyError on it; give size as \
                         {{\"height\": N, \"width\": N}}",
                        config.size
                    ));
                }
                other => {
                    return refuse(format!(
                        "size {other}: ChineseCLIPImageProcessor.resize needs \"height\" and \
                         \"width\" (it raises KeyError)"
                    ));
                }
            }
        } else {
            None
        };
        let crop = if config.do_center_crop {
            match config.crop_size {
                HfSize::HeightWidth { height, width } if height == width => {
                    Some(side(height, "crop_size")?)
                }
                HfSize::HeightWidth { .. } => {
                    return refuse(format!(
                        "crop_size {}: the output must be square",
                        config.crop_size
                    ));
                }
                other => {
                    return refuse(format!(
                        "crop_size {other}: center_crop needs \"height\" and \"width\" \
                         (transformers raises ValueError)"
                    ));
                }
            }
        } else {
            None
        };
        let image_size = match (crop, resize) {
            (Some(c), _) => c,
            (None, Some((w, h))) if w == h => w,
            (None, Some((w, h))) => {
                return refuse(format!(
                    "size {} without do_center_crop gives {h}x{w} images: the output must be square",
                    config.size
                ));
            }
            (None, None) => {
                return refuse(
                    "do_resize and do_center_crop are both false: the output size would be \
                     each input's own"
                        .into(),
                );
            }
        };
        let rescale = if config.do_rescale {
            if !config.rescale_factor.is_finite() {
                return refuse(format!(
                    "rescale_factor = {} must be finite",
                    config.rescale_factor
                ));
            }
            Some(config.rescale_factor)
        } else {
            None
        };
        let (mean, std) = if config.do_normalize {
            let mean = channels(&config.image_mean, "image_mean")?;
            let std = channels(&config.image_std, "image_std")?;
            if std.iter().any(|s| !(s.is_finite() && *s > 0.0))
                || mean.iter().any(|m| !m.is_finite())
            {
                return refuse(format!(
                    "image_mean {mean:?} / image_std {std:?} must be finite, std > 0"
                ));
            }
            (mean, std)
        } else {
            ([0.0; 3], [1.0; 3])
        };
        Ok(Self {
            image_size,
            // numpy: `np.array(mean, dtype=np.float32)` rounds each Python float to nearest.
            mean: mean.map(|v| v as f32),
            std: std.map(|v| v as f32),
            pipeline: Pipeline::Hf(HfSteps {
                convert_rgb: config.do_convert_rgb,
                resize,
                crop,
                rescale,
                normalize: config.do_normalize,
            }),
            max_pixels: 2 * PIL_MAX_IMAGE_PIXELS,
            jpeg_decoder: Default::default(),
            budget: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_stage_follows_numpy() {
        let s = HfSteps {
            convert_rgb: true,
            resize: None,
            crop: Some(1),
            rescale: Some(1.0 / 127.5),
            normalize: false,
        };
        // The rescale is in f64, then cast: for this factor 126 of the 256 values differ from
        // an f32 multiplication (numpy, checked); for 1/255 none does.
        let f32_mul = (0..=255u8)
            .filter(|&v| s.float_value(v, 0.0, 1.0) != f32::from(v) * (1.0 / 127.5f64) as f32)
            .count();
        assert_eq!(f32_mul, 126);
        for v in 0..=255u8 {
            let x = (f64::from(v) / 127.5) as f32;
            assert_eq!(s.float_value(v, 0.0, 1.0).to_bits(), x.to_bits());
            let n = HfSteps {
                normalize: true,
                ..s
            };
            assert_eq!(
                n.float_value(v, 0.5, 0.25).to_bits(),
                ((x - 0.5) / 0.25).to_bits()
            );
        }
        let raw = HfSteps {
            rescale: None,
            normalize: false,
            ..s
        };
        assert_eq!(raw.float_value(200, 0.5, 0.25), 200.0);
    }
}
