//! Image-tower architectures by open_clip name or open_clip model-config JSON.

use serde::Deserialize;
use taiyi_vision::VisionConfig;

use crate::ClipError;

fn bad(spec: &str, reason: impl Into<String>) -> ClipError {
    ClipError::Architecture {
        spec: format!("'{spec}'"),
        reason: reason.into(),
    }
}

/// A preset by open_clip model name: `ViT-H-14` (Taiyi's), `ViT-L-14`, `ViT-B-16`, `ViT-B-32`,
/// each optionally with `-quickgelu`, or `tiny` (the test fixtures' model). Case-insensitive.
pub fn vision_config_by_name(name: &str) -> Result<VisionConfig, ClipError> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, quick) = match lower.strip_suffix("-quickgelu") {
        Some(b) => (b, true),
        None => (lower.as_str(), false),
    };
    let config = match base {
        "vit-h-14" => VisionConfig::vit_h_14(),
        "vit-l-14" => VisionConfig::vit_l_14(),
        "vit-b-16" => VisionConfig::vit_b_16(),
        "vit-b-32" => VisionConfig::vit_b_32(),
        "tiny" => VisionConfig::tiny(),
        // The published Chinese-CLIP image towers (QuickGELU already).
        other if crate::family::ChineseClipPreset::find(other).is_some() => {
            return crate::family::ChineseClipPreset::find(other)
                .map(|p| p.vision_config())
                .ok_or_else(|| bad(name, "unknown name"));
        }
        _ => {
            return Err(bad(
                name,
                "unknown name (ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32, optionally -quickgelu, \
                 a Chinese-CLIP name such as chinese-clip-vit-base-patch16, or tiny)",
            ));
        }
    };
    Ok(if quick { config.quick_gelu() } else { config })
}

#[derive(Deserialize)]
struct OpenClipJson {
    embed_dim: usize,
    #[serde(default)]
    quick_gelu: bool,
    vision_cfg: VisionCfgJson,
}

#[derive(Deserialize)]
struct VisionCfgJson {
    image_size: usize,
    layers: usize,
    width: usize,
    #[serde(default = "default_head_width")]
    head_width: usize,
    patch_size: usize,
    #[serde(default = "default_mlp_ratio")]
    mlp_ratio: f64,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

fn default_head_width() -> usize {
    64
}

fn default_mlp_ratio() -> f64 {
    4.0
}

/// Parse an open_clip model config (`model_configs/ViT-H-14.json` format: `embed_dim`,
/// `quick_gelu`, `vision_cfg.{image_size, layers, width, head_width, patch_size, mlp_ratio}`).
/// Options this port does not implement (attentional pooling, layer scale, …) are rejected.
pub fn vision_config_from_open_clip_json(json: &str) -> Result<VisionConfig, ClipError> {
    let cfg: OpenClipJson =
        serde_json::from_str(json).map_err(|e| bad("<json>", format!("invalid config: {e}")))?;
    let v = cfg.vision_cfg;
    for (key, value) in &v.other {
        let harmless = match key.as_str() {
            "pool_type" => value.as_str() == Some("tok"),
            "no_ln_pre" | "final_ln_after_pool" | "attentional_pool" | "output_tokens" => {
                value.as_bool() == Some(false)
            }
            "ls_init_value" | "timm_model_name" => value.is_null(),
            "patch_dropout" | "emb_dropout" => true,
            _ => false,
        };
        if !harmless {
            return Err(bad(
                "<json>",
                format!("vision_cfg.{key} = {value} is not supported"),
            ));
        }
    }
    if v.head_width == 0 || !v.width.is_multiple_of(v.head_width) {
        return Err(bad(
            "<json>",
            format!(
                "width {} is not a multiple of head_width {}",
                v.width, v.head_width
            ),
        ));
    }
    let config = VisionConfig::new(
        v.image_size,
        v.patch_size,
        v.width,
        v.layers,
        v.width / v.head_width,
        cfg.embed_dim,
    )
    .with_mlp_ratio(v.mlp_ratio);
    config.validate()?;
    Ok(if cfg.quick_gelu {
        config.quick_gelu()
    } else {
        config
    })
}

/// [`vision_config_by_name`], or [`vision_config_from_open_clip_json`] for a `.json` path.
pub fn vision_config(spec: &str) -> Result<VisionConfig, ClipError> {
    if spec.to_ascii_lowercase().ends_with(".json") {
        let path = std::path::Path::new(spec);
        let kind = crate::input::InputKind::JSON_CONFIG;
        let text =
            crate::input::read_input_to_string(path, kind).map_err(|source| ClipError::Read {
                what: "vision architecture",
                path: path.to_path_buf(),
                source,
            })?;
        return vision_config_from_open_clip_json(&text).map_err(|e| match e {
            ClipError::Architecture { reason, .. } => ClipError::Architecture {
                spec: path.display().to_string(),
                reason,
            },
            other => other,
        });
    }
    vision_config_by_name(spec)
}

/// The shape of the image tower a checkpoint holds: `(image_size, patch_size, width, layers)`,
/// read from its `conv1.weight`, `positional_embedding` and block keys (no tensor is read).
fn checkpoint_shape(ckpt: &taiyi_store::Checkpoint) -> Option<(usize, usize, usize, usize)> {
    let conv = ckpt
        .keys()
        .filter(|k| k.ends_with("conv1.weight"))
        .min_by_key(|k| k.len())?
        .to_string();
    let prefix = conv.strip_suffix("conv1.weight")?;
    let [width, _, patch, _] = ckpt.shape(&conv)?[..] else {
        return None;
    };
    let tokens = ckpt.shape(&format!("{prefix}positional_embedding"))?[0];
    let grid = (tokens.saturating_sub(1) as f64).sqrt().round() as usize;
    let blocks = format!("{prefix}transformer.resblocks.");
    let layers = ckpt
        .keys()
        .filter_map(|k| {
            k.strip_prefix(&blocks)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |n| n + 1);
    Some((grid * patch, patch, width, layers))
}

/// The preset names tried by [`check_checkpoint`] for a hint.
const PRESETS: &[&str] = &["ViT-H-14", "ViT-L-14", "ViT-B-16", "ViT-B-32", "tiny"];

/// Refuse, before loading, a checkpoint whose image tower is not `config`'s architecture,
/// naming the preset that fits when one does (a ViT-L-14 file loaded with the default
/// ViT-H-14 would otherwise fail with a list of mis-shaped tensors).
///
/// # Errors
/// [`ClipError::Architecture`] with the checkpoint's shape and the preset to use.
pub fn check_checkpoint(
    ckpt: &taiyi_store::Checkpoint,
    config: &VisionConfig,
) -> Result<(), ClipError> {
    let Some(found) = checkpoint_shape(ckpt) else {
        return Ok(()); // Not an open_clip layout we can read: the loader reports it.
    };
    let (image, patch, width, layers) = found;
    let wanted = (
        config.image_size,
        config.patch_size,
        config.width,
        config.layers,
    );
    if found == wanted {
        return Ok(());
    }
    let fits = PRESETS.iter().find(|name| {
        vision_config_by_name(name)
            .is_ok_and(|c| (c.image_size, c.patch_size, c.width, c.layers) == found)
    });
    let hint = match fits {
        Some(name) => format!(": it is a {name} (`--vision-arch {name}` on the command line)"),
        None => ": give its open_clip model config (`--vision-arch FILE.json`)".to_string(),
    };
    Err(ClipError::Architecture {
        spec: format!(
            "(width {}, {} layers, patch {}, {} px)",
            config.width, config.layers, config.patch_size, config.image_size
        ),
        reason: format!(
            "{} holds a ViT of width {width}, {layers} layers, patch {patch}, {image} px{hint}",
            ckpt.source().display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_json_agree() -> Result<(), ClipError> {
        // open_clip's model_configs/ViT-H-14.json
        let h14 = r#"{"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 32,
            "width": 1280, "head_width": 80, "patch_size": 14},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}"#;
        assert_eq!(
            vision_config_from_open_clip_json(h14)?,
            VisionConfig::vit_h_14()
        );
        assert_eq!(vision_config_by_name("ViT-H-14")?, VisionConfig::vit_h_14());
        assert_eq!(
            vision_config_by_name("vit-b-32-quickgelu")?,
            VisionConfig::vit_b_32().quick_gelu()
        );
        assert!(vision_config_by_name("ViT-g-14").is_err());
        let ls = r#"{"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 2,
            "width": 24, "head_width": 8, "patch_size": 14, "ls_init_value": 0.1}}"#;
        assert!(vision_config_from_open_clip_json(ls).is_err());
        assert!(vision_config_from_open_clip_json("{").is_err());
        Ok(())
    }
}
