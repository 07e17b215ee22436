//! `preprocessor_config.json` of transformers' `ChineseCLIPImageProcessor`, read as the class's
//! `__init__` reads it (`get_size_dict` for `size` / `crop_size`, the same defaults).

use std::path::Path;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::transform::error::ImageError;
use crate::transform::{OPENAI_DATASET_MEAN, OPENAI_DATASET_STD};

/// A size entry (`size`, `crop_size`) of an image processor config, in the forms of
/// transformers' size dicts (`VALID_SIZE_DICT_KEYS`; any other key set is refused when the
/// config is read, as `get_size_dict` raises).
///
/// A bare integer is read as `get_size_dict` reads it in `ChineseCLIPImageProcessor.__init__`:
/// `size: N` is `{"shortest_edge": N}` and `crop_size: N` is `{"height": N, "width": N}`; a
/// list `[h, w]` is `{"height": h, "width": w}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfSize {
    /// `{"height": h, "width": w}`.
    HeightWidth {
        /// `"height"`.
        height: usize,
        /// `"width"`.
        width: usize,
    },
    /// `{"shortest_edge": n}`, optionally with `"longest_edge"`.
    ShortestEdge {
        /// `"shortest_edge"`.
        shortest_edge: usize,
        /// `"longest_edge"`, when given.
        longest_edge: Option<usize>,
    },
    /// `{"longest_edge": n}`.
    LongestEdge {
        /// `"longest_edge"`.
        longest_edge: usize,
    },
    /// `{"max_height": h, "max_width": w}`.
    MaxHeightWidth {
        /// `"max_height"`.
        max_height: usize,
        /// `"max_width"`.
        max_width: usize,
    },
}

impl std::fmt::Display for HfSize {
    /// The size dict as JSON, e.g. `{"shortest_edge": 224}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HfSize::HeightWidth { height, width } => {
                write!(f, r#"{{"height": {height}, "width": {width}}}"#)
            }
            HfSize::ShortestEdge {
                shortest_edge,
                longest_edge: None,
            } => write!(f, r#"{{"shortest_edge": {shortest_edge}}}"#),
            HfSize::ShortestEdge {
                shortest_edge,
                longest_edge: Some(l),
            } => write!(
                f,
                r#"{{"shortest_edge": {shortest_edge}, "longest_edge": {l}}}"#
            ),
            HfSize::LongestEdge { longest_edge } => {
                write!(f, r#"{{"longest_edge": {longest_edge}}}"#)
            }
            HfSize::MaxHeightWidth {
                max_height,
                max_width,
            } => write!(
                f,
                r#"{{"max_height": {max_height}, "max_width": {max_width}}}"#
            ),
        }
    }
}

/// `image_mean` / `image_std`: one value for every channel (a bare number) or a list with one
/// value per channel (which must hold 3 values for an RGB image, or transformers' `normalize`
/// raises).
#[derive(Debug, Clone, PartialEq)]
pub enum HfChannels {
    /// A bare number, used for every channel.
    All(f64),
    /// A list, one value per channel.
    PerChannel(Vec<f64>),
}

/// The `preprocessor_config.json` of a `ChineseCLIPImageProcessor` (or of the older
/// `ChineseCLIPFeatureExtractor`): the fields the slow processor uses, with the defaults of its
/// `__init__` for missing ones (and for `null` `size`, `crop_size`, `image_mean`, `image_std`,
/// which `__init__` also replaces by its defaults). Other fields (`image_processor_type`,
/// `feature_extractor_type`, `processor_class`, ...) are ignored. A `null` boolean, `resample`
/// or `rescale_factor` is refused (transformers would read it as "off" or fail).
///
/// [`Default`] is the class's default, which [`ImageTransform::from_hf_processor`] refuses
/// (its `size` is `{"shortest_edge": 224}`, which the slow class's `resize` cannot use); the
/// published OFA-Sys configs give `size` as `{"height": N, "width": N}`.
///
/// [`ImageTransform::from_hf_processor`]: crate::transform::ImageTransform::from_hf_processor
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct HfImageProcessorConfig {
    /// `do_resize` (default true).
    pub do_resize: bool,
    /// `size` (default `{"shortest_edge": 224}`).
    #[serde(deserialize_with = "size_field")]
    pub size: HfSize,
    /// `resample`, a `PIL.Image.Resampling` value (default 3, BICUBIC).
    pub resample: u32,
    /// `do_center_crop` (default true).
    pub do_center_crop: bool,
    /// `crop_size` (default `{"height": 224, "width": 224}`).
    #[serde(deserialize_with = "crop_size_field")]
    pub crop_size: HfSize,
    /// `do_rescale` (default true).
    pub do_rescale: bool,
    /// `rescale_factor` (default `1 / 255`).
    pub rescale_factor: f64,
    /// `do_normalize` (default true).
    pub do_normalize: bool,
    /// `image_mean` (default `OPENAI_CLIP_MEAN`, [`OPENAI_DATASET_MEAN`]).
    #[serde(deserialize_with = "mean_field")]
    pub image_mean: HfChannels,
    /// `image_std` (default `OPENAI_CLIP_STD`, [`OPENAI_DATASET_STD`]).
    #[serde(deserialize_with = "std_field")]
    pub image_std: HfChannels,
    /// `do_convert_rgb` (default true).
    pub do_convert_rgb: bool,
}

impl Default for HfImageProcessorConfig {
    /// The defaults of `ChineseCLIPImageProcessor.__init__`.
    fn default() -> Self {
        Self {
            do_resize: true,
            size: HfSize::ShortestEdge {
                shortest_edge: 224,
                longest_edge: None,
            },
            resample: 3,
            do_center_crop: true,
            crop_size: HfSize::HeightWidth {
                height: 224,
                width: 224,
            },
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: HfChannels::PerChannel(OPENAI_DATASET_MEAN.to_vec()),
            image_std: HfChannels::PerChannel(OPENAI_DATASET_STD.to_vec()),
            do_convert_rgb: true,
        }
    }
}

impl HfImageProcessorConfig {
    /// Parses the text of a `preprocessor_config.json`.
    ///
    /// # Errors
    /// [`ImageError::ConfigJson`] (origin `<json>`) for invalid JSON, a root that is not an
    /// object, or a field of the wrong type or form.
    pub fn from_json(text: &str) -> Result<Self, ImageError> {
        Self::parse(text, "<json>")
    }

    /// Reads a `preprocessor_config.json` through [`taiyi_store::input`] (a regular file of at
    /// most [`taiyi_store::input::JSON_MAX_BYTES`]).
    ///
    /// # Errors
    /// [`ImageError::ConfigRead`] if the file cannot be read; [`ImageError::ConfigJson`] (naming
    /// the file) as [`HfImageProcessorConfig::from_json`].
    pub fn read(path: &Path) -> Result<Self, ImageError> {
        let kind = taiyi_store::input::InputKind::JSON_CONFIG;
        let text = taiyi_store::input::read_input_to_string(path, kind).map_err(|source| {
            ImageError::ConfigRead {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Self, ImageError> {
        let err = |source| ImageError::ConfigJson {
            origin: origin.to_owned(),
            source,
        };
        // serde would also take a list for a struct; transformers needs an object (`cls(**d)`).
        // Parsed twice (a config is small) so that field errors keep their line and column.
        let root: Value = serde_json::from_str(text).map_err(err)?;
        if !root.is_object() {
            return Err(err(serde_json::Error::custom(format!(
                "expected a JSON object, found {}",
                match root {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ))));
        }
        serde_json::from_str(text).map_err(err)
    }
}

/// A non-negative integer of a size dict or list.
fn size_int<E: serde::de::Error>(v: &Value, what: &str) -> Result<usize, E> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            E::custom(format!(
                "{what}: expected a non-negative integer, found {v}"
            ))
        })
}

/// `get_size_dict(value, default_to_square=...)` of transformers, for one field.
fn parse_size<E: serde::de::Error>(
    v: &Value,
    field: &str,
    default_to_square: bool,
) -> Result<HfSize, E> {
    match v {
        Value::Number(_) => {
            let n = size_int(v, field)?;
            Ok(if default_to_square {
                HfSize::HeightWidth {
                    height: n,
                    width: n,
                }
            } else {
                HfSize::ShortestEdge {
                    shortest_edge: n,
                    longest_edge: None,
                }
            })
        }
        Value::Array(a) if a.len() == 2 => Ok(HfSize::HeightWidth {
            height: size_int(&a[0], field)?,
            width: size_int(&a[1], field)?,
        }),
        Value::Object(m) => parse_size_dict(m, field),
        other => Err(E::custom(format!(
            "{field}: expected an integer, a [height, width] list or a size dict, found {other}"
        ))),
    }
}

fn parse_size_dict<E: serde::de::Error>(m: &Map<String, Value>, field: &str) -> Result<HfSize, E> {
    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let get = |k: &str| -> Result<usize, E> {
        match m.get(k) {
            Some(v) => size_int(v, &format!("{field}.{k}")),
            None => Err(E::custom(format!("{field}: missing {k}"))),
        }
    };
    match keys.as_slice() {
        ["height", "width"] => Ok(HfSize::HeightWidth {
            height: get("height")?,
            width: get("width")?,
        }),
        ["shortest_edge"] => Ok(HfSize::ShortestEdge {
            shortest_edge: get("shortest_edge")?,
            longest_edge: None,
        }),
        ["longest_edge", "shortest_edge"] => Ok(HfSize::ShortestEdge {
            shortest_edge: get("shortest_edge")?,
            longest_edge: Some(get("longest_edge")?),
        }),
        ["longest_edge"] => Ok(HfSize::LongestEdge {
            longest_edge: get("longest_edge")?,
        }),
        ["max_height", "max_width"] => Ok(HfSize::MaxHeightWidth {
            max_height: get("max_height")?,
            max_width: get("max_width")?,
        }),
        other => Err(E::custom(format!(
            "{field} must have one of the key sets {{height, width}}, {{shortest_edge}}, \
             {{shortest_edge, longest_edge}}, {{longest_edge}}, {{max_height, max_width}} \
             (as transformers' get_size_dict requires), got {other:?}"
        ))),
    }
}

fn size_field<'de, D: Deserializer<'de>>(d: D) -> Result<HfSize, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(HfImageProcessorConfig::default().size),
        v => parse_size(&v, "size", false),
    }
}

fn crop_size_field<'de, D: Deserializer<'de>>(d: D) -> Result<HfSize, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(HfImageProcessorConfig::default().crop_size),
        v => parse_size(&v, "crop_size", true),
    }
}

fn parse_channels<E: serde::de::Error>(
    v: Value,
    field: &str,
    default: [f64; 3],
) -> Result<HfChannels, E> {
    let num = |x: &Value| {
        x.as_f64()
            .ok_or_else(|| E::custom(format!("{field}: expected a number, found {x}")))
    };
    match v {
        Value::Null => Ok(HfChannels::PerChannel(default.to_vec())),
        Value::Number(_) => Ok(HfChannels::All(num(&v)?)),
        Value::Array(a) => Ok(HfChannels::PerChannel(
            a.iter().map(num).collect::<Result<_, E>>()?,
        )),
        other => Err(E::custom(format!(
            "{field}: expected a number or a list of numbers, found {other}"
        ))),
    }
}

fn mean_field<'de, D: Deserializer<'de>>(d: D) -> Result<HfChannels, D::Error> {
    parse_channels(Value::deserialize(d)?, "image_mean", OPENAI_DATASET_MEAN)
}

fn std_field<'de, D: Deserializer<'de>>(d: D) -> Result<HfChannels, D::Error> {
    parse_channels(Value::deserialize(d)?, "image_std", OPENAI_DATASET_STD)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_forms() {
        let c = HfImageProcessorConfig::from_json("{}").unwrap();
        assert_eq!(c, HfImageProcessorConfig::default());
        let c = HfImageProcessorConfig::from_json(
            r#"{"size": 336, "crop_size": 300, "image_mean": 0.5, "image_std": null,
                "feature_extractor_type": "ChineseCLIPFeatureExtractor"}"#,
        )
        .unwrap();
        assert_eq!(
            c.size,
            HfSize::ShortestEdge {
                shortest_edge: 336,
                longest_edge: None
            }
        );
        assert_eq!(
            c.crop_size,
            HfSize::HeightWidth {
                height: 300,
                width: 300
            }
        );
        assert_eq!(c.image_mean, HfChannels::All(0.5));
        assert_eq!(c.image_std, HfImageProcessorConfig::default().image_std);
        let c = HfImageProcessorConfig::from_json(r#"{"size": [256, 250]}"#).unwrap();
        assert_eq!(
            c.size,
            HfSize::HeightWidth {
                height: 256,
                width: 250
            }
        );
        assert_eq!(c.size.to_string(), r#"{"height": 256, "width": 250}"#);
    }

    #[test]
    fn bad_forms_are_refused() {
        for text in [
            r#"{"size": {"height": 224}}"#,
            r#"{"size": {"height": 224, "width": 224, "shortest_edge": 1}}"#,
            r#"{"size": {"height": 224.0, "width": 224}}"#,
            r#"{"size": [224]}"#,
            r#"{"crop_size": -1}"#,
            r#"{"do_resize": null}"#,
            r#"{"resample": "bicubic"}"#,
            r#"{"image_mean": [0.5, "x", 0.5]}"#,
            "[]",
        ] {
            let e = HfImageProcessorConfig::from_json(text).unwrap_err();
            assert!(matches!(e, ImageError::ConfigJson { .. }), "{text}: {e:?}");
        }
    }
}
