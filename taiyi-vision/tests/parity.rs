//! Whole-tensor parity of the image tower against open_clip `encode_image`, for every
//! published checkpoint layout (fixtures from `scripts/fixtures/vision.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{B, TOL, expected, expected_tensor, fixture, max_abs_diff, quickgelu_config};
use taiyi_vision::{AttentionKernel, VisionConfig, VisionTransformer};

fn check(file: &str, features: &str, kernel: AttentionKernel) -> f32 {
    let device = Default::default();
    let loaded =
        VisionTransformer::<B>::load_open_clip(fixture(file), &VisionConfig::tiny(), &device)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    let model = loaded.model.with_attention_kernel(kernel);
    let out = model.try_forward(expected_tensor("pixels")).unwrap();
    let diff = max_abs_diff(out, features);
    println!("{file} ({kernel:?}) vs {features}: max abs diff {diff:e}");
    assert!(diff <= TOL, "{file}: max abs diff {diff} > {TOL}");
    diff
}

fn stored_logit_scale() -> f32 {
    expected("logit_scale").0[0]
}

#[test]
fn full_bin_matches_open_clip() {
    check(
        "open_clip_pytorch_model.bin",
        "features",
        AttentionKernel::Matmul,
    );
    let loaded = VisionTransformer::<B>::load_open_clip(
        fixture("open_clip_pytorch_model.bin"),
        &VisionConfig::tiny(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(loaded.logit_scale, Some(stored_logit_scale()));
}

#[test]
fn full_safetensors_matches_open_clip() {
    check(
        "open_clip_model.safetensors",
        "features",
        AttentionKernel::Matmul,
    );
}

#[test]
fn fused_attention_kernel_matches_open_clip() {
    check(
        "open_clip_model.safetensors",
        "features",
        AttentionKernel::Fused,
    );
}

#[test]
fn visual_only_state_dict_matches_and_has_no_logit_scale() {
    check("visual_only.bin", "features", AttentionKernel::Matmul);
    let loaded = VisionTransformer::<B>::load_open_clip(
        fixture("visual_only.bin"),
        &VisionConfig::tiny(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(loaded.logit_scale, None);
}

#[test]
fn training_checkpoint_with_state_dict_and_module_wrappers_matches() {
    check(
        "training_checkpoint.pt",
        "features",
        AttentionKernel::Matmul,
    );
}

#[test]
fn fp16_checkpoint_is_widened_and_matches() {
    check("fp16.bin", "features_fp16", AttentionKernel::Matmul);
    // The f16 rounding of the weights is visible at this tolerance: the f32 features are
    // further away, so the test really compares against the f16 weights.
    let (a, _) = expected("features");
    let (b, _) = expected("features_fp16");
    let gap = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(gap > 10.0 * TOL, "fixture sanity: fp16 gap {gap}");
}

#[test]
fn bf16_checkpoint_is_widened_and_matches() {
    check("bf16.safetensors", "features_bf16", AttentionKernel::Matmul);
}

#[test]
fn quick_gelu_variant_matches_open_clip() {
    let device = Default::default();
    let loaded = VisionTransformer::<B>::load_open_clip(
        fixture("quickgelu_visual.safetensors"),
        &quickgelu_config(),
        &device,
    )
    .unwrap();
    let out = loaded
        .model
        .try_forward(expected_tensor("quickgelu_pixels"))
        .unwrap();
    let diff = max_abs_diff(out.clone(), "quickgelu_features");
    println!("quickgelu max abs diff {diff:e}");
    assert!(diff <= TOL, "max abs diff {diff}");

    // The same weights with exact GELU give clearly different features: the flag matters.
    let gelu = VisionTransformer::<B>::load_open_clip(
        fixture("quickgelu_visual.safetensors"),
        &quickgelu_config().with_activation(taiyi_vision::Activation::Gelu),
        &device,
    )
    .unwrap();
    let other = gelu.model.forward(expected_tensor("quickgelu_pixels"));
    assert!(max_abs_diff(other, "quickgelu_features") > 100.0 * TOL);
}

#[test]
fn batch_items_are_independent() {
    // Row i of a batch equals the single-image forward of image i.
    let device = Default::default();
    let model = VisionTransformer::<B>::load_open_clip(
        fixture("open_clip_model.safetensors"),
        &VisionConfig::tiny(),
        &device,
    )
    .unwrap()
    .model;
    let pixels = expected_tensor::<4>("pixels");
    let both = model.forward(pixels.clone());
    for i in 0..2 {
        let one = model.forward(pixels.clone().narrow(0, i, 1));
        let row = both.clone().narrow(0, i, 1);
        let d = (one - row).abs().max().into_scalar();
        assert!(d <= 1e-5, "image {i}: batch vs single differ by {d}");
    }
}

#[test]
fn try_forward_rejects_wrong_shapes() {
    let device = Default::default();
    let model = VisionConfig::tiny().init::<B>(&device).unwrap();
    for dims in [
        [1, 3, 223, 224],
        [1, 1, 224, 224],
        [0, 3, 224, 224],
        [2, 3, 224, 112],
    ] {
        let x = burn::tensor::Tensor::<B, 4>::zeros(dims, &device);
        let err = model.try_forward(x).unwrap_err();
        assert!(
            matches!(err, taiyi_vision::VisionError::InputShape { .. }),
            "{dims:?}: {err}"
        );
        assert!(err.to_string().contains("224"), "{err}");
    }
}

#[test]
fn end_to_end_from_png_matches_open_clip() {
    // Image file -> taiyi-preprocess (pixel-exact open_clip transform) -> image tower, against
    // open_clip's encode_image(preprocess(Image.open(file))).
    let device = Default::default();
    let model = VisionTransformer::<B>::load_open_clip(
        fixture("open_clip_model.safetensors"),
        &VisionConfig::tiny(),
        &device,
    )
    .unwrap()
    .model;
    let transform = taiyi_preprocess::ImageTransform::open_clip_vit_h_14();
    for (name, file) in [
        ("gradient", "gradient_300x200.png"),
        ("waves", "waves_grey_100x150.png"),
    ] {
        let pixels = transform.apply_path(fixture(file)).unwrap();
        let pixels = burn::tensor::Tensor::<B, 4>::from_data(
            burn::tensor::TensorData::new(pixels, [1, 3, 224, 224]),
            &device,
        );
        let out = model.try_forward(pixels).unwrap();
        let diff = max_abs_diff(out, &format!("image_{name}_features"));
        println!("{file}: end-to-end max abs diff {diff:e}");
        assert!(diff <= TOL, "{file}: max abs diff {diff}");
    }
}
