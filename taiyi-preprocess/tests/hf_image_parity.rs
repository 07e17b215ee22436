//! Parity of `ImageTransform::from_hf_processor` with transformers 4.57.6's slow
//! `ChineseCLIPImageProcessor` on Pillow 13.0.0 (fixtures from
//! scripts/fixtures/chinese_clip_image.py, see fixtures/chinese_clip/image/cases.json), and the
//! configurations it refuses.

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use serde_json::Value;
use taiyi_preprocess::transform::{
    HfChannels, HfImageProcessorConfig, HfSize, ImageError, ImageInput, ImageTransform, PilImage,
    PilMode,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dir() -> PathBuf {
    repo().join("fixtures/chinese_clip/image")
}

fn doc() -> Value {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("json")
}

fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str().unwrap_or_else(|| panic!("field {k}"))
}

/// The float32 tensors of the gzip-compressed safetensors file: key -> (shape, values).
fn expected() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let f = std::fs::File::open(dir().join("expected.safetensors.gz")).expect("expected");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut bytes)
        .expect("gunzip");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (key, t) in header.as_object().expect("object") {
        if key == "__metadata__" {
            continue;
        }
        assert_eq!(t["dtype"], "F32", "{key}");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let off = t["data_offsets"].as_array().expect("offsets");
        let (a, b) = (
            off[0].as_u64().expect("a") as usize,
            off[1].as_u64().expect("b") as usize,
        );
        let values: Vec<f32> = data[a..b]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values.len(), shape.iter().product::<usize>(), "{key}");
        out.insert(key.clone(), (shape, values));
    }
    out
}

fn config(name: &str) -> HfImageProcessorConfig {
    HfImageProcessorConfig::read(&dir().join(format!("configs/{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn transform(name: &str) -> ImageTransform {
    ImageTransform::from_hf_processor(&config(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `None` when bit-equal, else (count, max abs diff, first differing index).
fn compare(got: &[f32], want: &[f32]) -> Option<(usize, f32, usize)> {
    assert_eq!(got.len(), want.len());
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    let first = *bad.first()?;
    let max = bad
        .iter()
        .map(|&i| (got[i] - want[i]).abs())
        .fold(0f32, f32::max);
    Some((bad.len(), max, first))
}

#[test]
fn every_case_is_bit_exact() {
    let doc = doc();
    let want = expected();
    let cases = doc["cases"].as_array().expect("cases");
    let mut transforms = HashMap::new();
    let (mut n, mut skipped, mut failures) = (0usize, 0usize, Vec::new());
    for c in cases {
        let key = s(c, "key");
        let file = s(c, "file");
        if file.ends_with(".jpg") && !cfg!(feature = "libjpeg") {
            // zune-jpeg decodes up to 5 levels off Pillow (see `transform::jpeg`).
            skipped += 1;
            continue;
        }
        let t = transforms
            .entry(s(c, "config").to_owned())
            .or_insert_with(|| transform(s(c, "config")));
        let img = t.decode_path(repo().join(file)).expect("decode");
        assert_eq!(img.mode().name(), s(c, "pil_mode"), "{key}");
        let got = t.apply(&img).unwrap_or_else(|e| panic!("{key}: {e}"));
        let (shape, values) = want.get(key).unwrap_or_else(|| panic!("{key} missing"));
        let side = t.image_size();
        assert_eq!(shape, &vec![3, side, side], "{key}");
        assert_eq!(got.len(), t.output_len(), "{key}");
        if let Some((count, max, first)) = compare(&got, values) {
            failures.push(format!(
                "{key}: {count} differing values, max abs diff {max:e}, first at index {first} \
                 (got {}, want {})",
                got[first], values[first]
            ));
        }
        n += 1;
    }
    println!(
        "hf image parity: {}/{n} cases bit-exact ({skipped} skipped)",
        n - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(n + skipped, cases.len());
    assert!(n >= 15, "only {n} cases ran");
}

#[test]
fn batch_and_tensor_paths_match() {
    let doc = doc();
    let want = expected();
    let t = transform("published_224");
    let cases: Vec<&Value> = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| s(c, "config") == "published_224" && s(c, "file").ends_with(".png"))
        .take(3)
        .collect();
    let paths: Vec<PathBuf> = cases.iter().map(|c| repo().join(s(c, "file"))).collect();
    let inputs: Vec<ImageInput<'_>> = paths.iter().map(ImageInput::from).collect();
    let x = t
        .to_tensor::<Flex>(&inputs, &Default::default())
        .expect("tensor");
    assert_eq!(x.dims(), [cases.len(), 3, 224, 224]);
    let flat: Vec<f32> = x.into_data().to_vec().expect("f32");
    for (i, c) in cases.iter().enumerate() {
        let w = &want[s(c, "key")].1;
        let got = &flat[i * w.len()..(i + 1) * w.len()];
        assert_eq!(compare(got, w), None, "{}", s(c, "key"));
        let single = t.apply_path(&paths[i]).expect("apply_path");
        assert_eq!(compare(&single, w), None, "{}", s(c, "key"));
    }
}

#[test]
fn published_config_reads_as_python() {
    let c = config("published_224");
    assert!(c.do_resize && !c.do_center_crop && c.do_convert_rgb);
    assert_eq!(
        c.size,
        HfSize::HeightWidth {
            height: 224,
            width: 224
        }
    );
    assert_eq!(c.resample, 3);
    assert_eq!(c.rescale_factor, 1.0 / 255.0);
    assert_eq!(
        c.image_std,
        HfChannels::PerChannel(vec![0.26862954, 0.26130258, 0.27577711])
    );
    let t = ImageTransform::from_hf_processor(&c).expect("transform");
    assert_eq!(t.image_size(), 224);
    assert_eq!(t.output_len(), 3 * 224 * 224);
    assert_eq!(t.mean(), [0.48145466f32, 0.4578275, 0.40821073]);
    assert_eq!(t.resized_size(640, 480), (224, 224));
    // The old FeatureExtractor form: crop_size as a bare int is N x N; rescale defaults.
    let old = config("crop_pad");
    assert_eq!(
        old.crop_size,
        HfSize::HeightWidth {
            height: 224,
            width: 224
        }
    );
    assert!(old.do_rescale);
    assert_eq!(transform("crop_pad").resized_size(10, 10), (229, 201));
    assert_eq!(transform("size_336").image_size(), 336);
}

fn refusal(json: &str) -> String {
    let c = HfImageProcessorConfig::from_json(json).expect("parses");
    match ImageTransform::from_hf_processor(&c) {
        Err(ImageError::InvalidConfig(m)) => m,
        other => panic!("{json}: expected InvalidConfig, got {other:?}"),
    }
}

const SQUARE: &str = r#""size": {"height": 224, "width": 224}, "do_center_crop": false"#;

#[test]
fn refusals() {
    let m = refusal(r#"{"size": {"shortest_edge": 224}}"#);
    assert!(m.contains("shortest_edge") && m.contains("KeyError"), "{m}");
    // A bare int size is {"shortest_edge": N} (get_size_dict with default_to_square=False).
    let m = refusal(r#"{"size": 224, "do_center_crop": false}"#);
    assert!(m.contains("shortest_edge") && m.contains("bare int"), "{m}");
    // The class's own defaults (size {"shortest_edge": 224}) cannot run either.
    assert!(ImageTransform::from_hf_processor(&HfImageProcessorConfig::default()).is_err());
    let m = refusal(&format!(r#"{{{SQUARE}, "resample": 2}}"#));
    assert!(m.contains("BILINEAR") && m.contains("BICUBIC"), "{m}");
    let m = refusal(r#"{"size": {"height": 224, "width": 256}, "do_center_crop": false}"#);
    assert!(m.contains("square"), "{m}");
    let m = refusal(r#"{"size": [256, 256], "crop_size": {"height": 224, "width": 200}}"#);
    assert!(m.contains("square"), "{m}");
    let m = refusal(r#"{"size": [256, 256], "crop_size": {"shortest_edge": 224}}"#);
    assert!(m.contains("center_crop"), "{m}");
    let m = refusal(r#"{"do_resize": false, "do_center_crop": false}"#);
    assert!(m.contains("both false"), "{m}");
    let m = refusal(&format!(r#"{{{SQUARE}, "image_mean": [0.5, 0.5]}}"#));
    assert!(m.contains("image_mean has 2 values"), "{m}");
    let m = refusal(&format!(r#"{{{SQUARE}, "image_std": [0.5, 0.0, 0.5]}}"#));
    assert!(m.contains("std > 0"), "{m}");
    let m = refusal(r#"{"size": {"height": 0, "width": 0}, "do_center_crop": false}"#);
    assert!(m.contains("size.width = 0"), "{m}");
    // What is not used is not checked: shortest_edge and resample 2 without do_resize.
    let c = HfImageProcessorConfig::from_json(
        r#"{"do_resize": false, "size": 224, "resample": 2, "crop_size": 8,
            "do_normalize": false, "image_mean": [1]}"#,
    )
    .expect("parses");
    let t = ImageTransform::from_hf_processor(&c).expect("crop only");
    assert_eq!((t.image_size(), t.mean(), t.std()), (8, [0.0; 3], [1.0; 3]));
}

#[test]
fn config_file_errors() {
    let d = std::env::temp_dir().join(format!("taiyi-hf-config-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    let missing = HfImageProcessorConfig::read(&d.join("none.json")).unwrap_err();
    assert!(
        matches!(missing, ImageError::ConfigRead { .. }),
        "{missing:?}"
    );
    let bad = d.join("bad.json");
    std::fs::write(&bad, r#"{"size": {"height": 224}}"#).expect("write");
    let e = HfImageProcessorConfig::read(&bad).unwrap_err();
    match &e {
        ImageError::ConfigJson { origin, .. } => assert!(origin.ends_with("bad.json")),
        other => panic!("{other:?}"),
    }
    let chain = std::error::Error::source(&e).expect("source").to_string();
    assert!(
        chain.contains("size must have one of the key sets"),
        "{chain}"
    );
    std::fs::remove_dir_all(&d).expect("cleanup");
}

/// An RGB image whose pixel (x, y) is (x, y, 7).
fn coords(w: usize, h: usize) -> PilImage {
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[x as u8, y as u8, 7]);
        }
    }
    PilImage::from_u8(PilMode::Rgb, w, h, v).expect("image")
}

fn crop_only(side: usize) -> ImageTransform {
    let c = HfImageProcessorConfig::from_json(&format!(
        r#"{{"do_resize": false, "crop_size": {side}}}"#
    ))
    .expect("parses");
    ImageTransform::from_hf_processor(&c).expect("transform")
}

#[test]
fn center_crop_offsets_are_floored() {
    // 9 x 5 to 2 x 2: left (9 - 2) // 2 = 3, top (5 - 2) // 2 = 1, where torchvision rounds
    // 3.5 and 1.5 half to even, to 4 and 2.
    let rgb = crop_only(2).crop_rgb(&coords(9, 5)).expect("crop");
    assert_eq!(rgb, [3, 1, 7, 4, 1, 7, 3, 2, 7, 4, 2, 7]);
    // Through a resize to the image's own size (a copy, as in Pillow): the same.
    let c = HfImageProcessorConfig::from_json(
        r#"{"size": {"height": 5, "width": 9}, "crop_size": {"height": 2, "width": 2}}"#,
    )
    .expect("parses");
    let t = ImageTransform::from_hf_processor(&c).expect("transform");
    assert_eq!(t.crop_rgb(&coords(9, 5)).expect("crop"), rgb);
}

#[test]
fn center_crop_pads_with_zeros_like_transformers() {
    // 6 x 2 to 3 x 3: width cropped from (6 - 3) // 2 = 1; height padded, the image at row
    // ceil((3 - 2) / 2) = 1.
    let rgb = crop_only(3).crop_rgb(&coords(6, 2)).expect("crop");
    #[rustfmt::skip]
    let want = [
        0, 0, 0,  0, 0, 0,  0, 0, 0,
        1, 0, 7,  2, 0, 7,  3, 0, 7,
        1, 1, 7,  2, 1, 7,  3, 1, 7,
    ];
    assert_eq!(rgb, want);
    // 1 x 1 to 4 x 4: at (2, 2).
    let rgb = crop_only(4).crop_rgb(&coords(1, 1)).expect("crop");
    let lit: Vec<usize> = (0..16).filter(|&i| rgb[i * 3 + 2] == 7).collect();
    assert_eq!(lit, [2 * 4 + 2]);
    // The zeros are uint8 zeros, normalised like any 0.
    let t = crop_only(4);
    let f = t.apply(&coords(1, 1)).expect("apply");
    let zero = ((0f64 / 255.0) as f32 - t.mean()[0]) / t.std()[0];
    assert_eq!(f[0].to_bits(), zero.to_bits());
}

#[test]
fn convert_rgb_off_takes_only_rgb() {
    let json = r#"{"do_resize": false, "crop_size": 2, "do_convert_rgb": false}"#;
    let off = ImageTransform::from_hf_processor(&HfImageProcessorConfig::from_json(json).unwrap())
        .unwrap();
    let on = crop_only(2);
    let rgb = coords(4, 4);
    assert_eq!(off.apply(&rgb).unwrap(), on.apply(&rgb).unwrap());
    let grey = PilImage::from_u8(PilMode::L, 4, 4, vec![9; 16]).unwrap();
    let e = off.apply(&grey).unwrap_err();
    assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
    assert_eq!(on.crop_rgb(&grey).unwrap(), vec![9; 12]);
}

#[test]
fn transform_settings_apply() {
    let t = transform("published_224").with_max_pixels(100);
    let e = t
        .apply_path(repo().join("fixtures/image/inputs/rgb_640x480.png"))
        .unwrap_err();
    assert!(matches!(e, ImageError::TooManyPixels { .. }), "{e:?}");
    let empty = PilImage::from_u8(PilMode::Rgb, 0, 3, Vec::new()).unwrap();
    assert!(matches!(t.apply(&empty), Err(ImageError::ZeroSize { .. })));
    let resized = transform("crop_floor").resize(&coords(9, 5));
    assert_eq!(
        (resized.mode(), resized.width(), resized.height()),
        (PilMode::Rgb, 259, 255)
    );
}
