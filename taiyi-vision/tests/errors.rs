//! Every way a checkpoint can be wrong gives an error (never a panic) that names the file and,
//! where there is one, the offending key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use common::{B, fixture, read_safetensors, scratch, write_safetensors};
use taiyi_store::StoreError;
use taiyi_vision::{VisionConfig, VisionError, VisionTransformer};

fn load(path: &Path, config: &VisionConfig) -> Result<(), VisionError> {
    VisionTransformer::<B>::load_open_clip(path, config, &Default::default()).map(|_| ())
}

fn load_err(path: &Path) -> VisionError {
    match load(path, &VisionConfig::tiny()) {
        Ok(()) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

/// The full safetensors fixture with `edit` applied to its rows, written to a scratch file.
fn edited(
    test: &str,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) -> std::path::PathBuf {
    let mut rows = read_safetensors("open_clip_model.safetensors");
    edit(&mut rows);
    let path = scratch(test).join("open_clip_model.safetensors");
    write_safetensors(&path, &rows);
    path
}

#[test]
fn missing_tensor_is_named() {
    for key in [
        "visual.ln_post.bias",
        "visual.transformer.resblocks.1.attn.in_proj_weight",
        "visual.proj",
    ] {
        let path = edited("missing", |rows| rows.retain(|r| r.0 != key));
        let err = load_err(&path);
        let msg = err.to_string();
        assert!(
            matches!(err, VisionError::Store(StoreError::Missing { .. })),
            "{key}: {msg}"
        );
        // Named in burn's terms: ln_post.beta, ...attn.in_proj.weight, proj.
        let stem = key
            .trim_start_matches("visual.")
            .trim_end_matches(".bias")
            .trim_end_matches("_weight");
        assert!(msg.contains(stem), "{key}: {msg}");
        assert!(msg.contains("open_clip_model.safetensors"), "{msg}");
    }
}

#[test]
fn unexpected_visual_tensor_is_named() {
    let path = edited("unused-visual", |rows| {
        let mut extra = rows[0].clone();
        extra.0 = "visual.attn_pool.query".to_string();
        rows.push(extra);
    });
    let err = load_err(&path);
    assert!(
        matches!(&err, VisionError::Store(StoreError::Unused { keys, .. }) if keys.iter().any(|k| k.contains("attn_pool.query"))),
        "{err}"
    );
}

#[test]
fn unexpected_top_level_tensor_is_named() {
    // Only the text tower's own keys are ignored, nothing else.
    let path = edited("unused-top", |rows| {
        let mut extra = rows[0].clone();
        extra.0 = "logit_bias_typo".to_string();
        rows.push(extra);
    });
    let err = load_err(&path);
    assert!(
        matches!(&err, VisionError::Store(StoreError::Unused { keys, .. }) if keys == &["logit_bias_typo".to_string()]),
        "{err}"
    );
}

#[test]
fn text_tower_extras_are_ignored() {
    // attn_mask and logit_bias are part of some open_clip checkpoints' text side.
    let path = edited("extras", |rows| {
        let one = rows.iter().find(|r| r.0 == "logit_scale").unwrap().clone();
        let mut bias = one.clone();
        bias.0 = "logit_bias".to_string();
        let mut mask = one;
        mask.0 = "attn_mask".to_string();
        rows.push(bias);
        rows.push(mask);
    });
    load(&path, &VisionConfig::tiny()).unwrap();
}

#[test]
fn config_mismatch_is_a_shape_error_naming_the_key() {
    let cases = [
        (
            VisionConfig {
                output_dim: 8,
                ..VisionConfig::tiny()
            },
            "proj",
        ),
        (
            VisionConfig {
                patch_size: 16,
                ..VisionConfig::tiny()
            },
            "conv1.weight",
        ),
        (VisionConfig::tiny().with_mlp_ratio(2.0), "mlp.c_fc"),
    ];
    for (config, key) in cases {
        let err = load(&fixture("open_clip_model.safetensors"), &config).unwrap_err();
        assert!(
            matches!(&err, VisionError::Store(StoreError::Shape { key: k, .. }) if k.contains(key)),
            "{key}: {err}"
        );
    }
}

#[test]
fn misshaped_tensor_in_file_is_named() {
    let path = edited("misshaped", |rows| {
        let row = rows
            .iter_mut()
            .find(|r| r.0 == "visual.class_embedding")
            .unwrap();
        // 24 floats -> 12 pairs of floats: same bytes, wrong shape.
        row.2 = vec![12, 2];
    });
    // A rank change is caught by the store's shape check or as a tensor error; both name it.
    let err = load_err(&path);
    assert!(err.to_string().contains("class_embedding"), "{err}");
}

#[test]
fn wrong_and_unreadable_files_are_errors() {
    let dir = scratch("wrong-files");
    // A PNG renamed to .bin and to .safetensors.
    let png = std::fs::read(fixture("waves_grey_100x150.png")).unwrap();
    for name in ["image.bin", "image.safetensors"] {
        std::fs::write(dir.join(name), &png).unwrap();
        let err = load_err(&dir.join(name));
        assert!(
            matches!(
                err,
                VisionError::Store(StoreError::Pytorch { .. } | StoreError::Safetensors { .. })
            ),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // Unknown extension, missing file, a directory, an empty file.
    std::fs::write(dir.join("weights.txt"), b"hello").unwrap();
    assert!(matches!(
        load_err(&dir.join("weights.txt")),
        VisionError::Store(StoreError::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        load_err(&dir.join("nope.bin")),
        VisionError::Store(StoreError::Open { .. })
    ));
    assert!(matches!(
        load_err(&dir),
        VisionError::Store(StoreError::Open { .. })
    ));
    std::fs::write(dir.join("empty.safetensors"), b"").unwrap();
    let _ = load_err(&dir.join("empty.safetensors"));
}

#[test]
fn truncated_files_are_errors() {
    let dir = scratch("truncated");
    for name in [
        "open_clip_pytorch_model.bin",
        "open_clip_model.safetensors",
        "fp16.bin",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 100, 64] {
            let path = dir.join(name);
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let err = load_err(&path);
            assert!(
                err.to_string().contains(name),
                "{name} cut at {keep}: {err}"
            );
        }
    }
}

#[test]
fn corrupt_tensor_bytes_are_an_error() {
    // A zip whose central directory survives but whose tensor payload is cut: flip the
    // safetensors header length so it points past the end.
    let dir = scratch("corrupt");
    let mut bytes = std::fs::read(fixture("open_clip_model.safetensors")).unwrap();
    bytes[0..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let path = dir.join("open_clip_model.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        load_err(&path),
        VisionError::Store(StoreError::Safetensors { .. })
    ));
}

#[test]
fn checkpoint_without_image_tower_is_rejected() {
    // The text tower alone (what is left of a full checkpoint without visual.*).
    let path = edited("no-visual", |rows| {
        rows.retain(|r| !r.0.starts_with("visual."))
    });
    let err = load_err(&path);
    assert!(matches!(err, VisionError::NoVisualTower { .. }), "{err}");
    // A Hugging Face CLIPModel layout gets a hint.
    let path = edited("hf-layout", |rows| {
        for r in rows.iter_mut() {
            r.0 = r.0.replace("visual.", "vision_model.");
        }
    });
    let err = load_err(&path);
    assert!(err.to_string().contains("Hugging Face"), "{err}");
}

#[test]
fn bad_logit_scale_is_an_error() {
    let path = edited("logit-scale", |rows| {
        let row = rows.iter_mut().find(|r| r.0 == "logit_scale").unwrap();
        row.2 = vec![2];
        row.3 = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    });
    assert!(matches!(load_err(&path), VisionError::LogitScale { .. }));
}

#[test]
fn overflowing_or_absurd_logit_scale_is_an_error() {
    // exp(100) is inf in f32 (all probabilities NaN); exp(20) = 5e8 is no temperature.
    for bad in [100.0f32, 20.0, -20.0] {
        let path = edited(&format!("logit-scale-{bad}"), |rows| {
            let row = rows.iter_mut().find(|r| r.0 == "logit_scale").unwrap();
            row.3 = bad.to_le_bytes().to_vec();
        });
        let err = load_err(&path);
        assert!(
            matches!(err, VisionError::LogitScale { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn non_finite_weight_is_an_error_naming_the_key() {
    let path = edited("nan-weight", |rows| {
        let row = rows
            .iter_mut()
            .find(|r| r.0 == "visual.conv1.weight")
            .unwrap();
        row.3[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    match load_err(&path) {
        VisionError::Store(StoreError::NonFinite { key, index: 1, .. }) => {
            assert_eq!(key, "conv1.weight");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn integer_weight_is_a_typed_error_not_a_crash() {
    let path = edited("int-weight", |rows| {
        let row = rows
            .iter_mut()
            .find(|r| r.0 == "visual.conv1.weight")
            .unwrap();
        row.1 = safetensors::Dtype::I32;
    });
    match load_err(&path) {
        VisionError::Store(StoreError::DType { key, expected, .. }) => {
            assert_eq!((key.as_str(), expected), ("conv1.weight", "float"));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn invalid_configs_are_rejected() {
    let device = Default::default();
    for config in [
        VisionConfig {
            heads: 5,
            ..VisionConfig::tiny()
        },
        VisionConfig {
            patch_size: 0,
            ..VisionConfig::tiny()
        },
        VisionConfig {
            patch_size: 300,
            ..VisionConfig::tiny()
        },
        VisionConfig {
            layers: 0,
            ..VisionConfig::tiny()
        },
        VisionConfig::tiny().with_layer_norm_eps(0.0),
    ] {
        assert!(
            matches!(config.init::<B>(&device), Err(VisionError::Config { .. })),
            "{config:?}"
        );
        assert!(matches!(
            load(&fixture("open_clip_model.safetensors"), &config),
            Err(VisionError::Config { .. })
        ));
    }
}

struct CountInit {
    initialized: usize,
    total: usize,
}

impl<B2: Backend> ModuleVisitor<B2> for CountInit {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B2, D>>) {
        self.total += 1;
        self.initialized += usize::from(param.is_initialized());
    }
}

#[test]
fn parameters_are_lazy_until_loaded() {
    // The random initialiser of a parameter that gets loaded must never run (load time and
    // peak memory of the 2.5 GB tower depend on it).
    let model = VisionConfig::tiny().init::<B>(&Default::default()).unwrap();
    let mut count = CountInit {
        initialized: 0,
        total: 0,
    };
    model.visit(&mut count);
    assert_eq!(count.total, 4 + 2 + 2 * 12 + 2);
    assert_eq!(count.initialized, 0, "parameters initialised eagerly");
}
