//! JPEG / GIF / palette-BMP decoding against Pillow 13.0.0 (fixtures/jpeg, made by
//! scripts/fixtures/jpeg.py): 0 differing values with libjpeg-turbo (feature `libjpeg`), and the
//! pure-Rust fallback's difference measured and bounded.

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::Value;
use taiyi_preprocess::transform::{ImageError, ImageTransform, JpegDecoder};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/jpeg")
}

fn cases(format: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let doc: Value = serde_json::from_str(&text).expect("json");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["format"] == format)
        .cloned()
        .collect()
}

fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str().unwrap_or_else(|| panic!("{k} in {c}"))
}

/// The raw samples of a fixture PNG (L, RGB, or RGBA holding CMYK).
fn png_samples(rel: &str) -> Vec<u8> {
    image::open(dir().join(rel)).expect(rel).into_bytes()
}

/// torch's ToTensor + Normalize of Pillow's uint8 image (fixtures/image/normalize_lut.npy is
/// checked bit-exact against torch there; here the same f32 formula, sub then div).
fn normalized(rgb: &[u8], t: &ImageTransform) -> Vec<f32> {
    t.normalize(rgb).expect("normalize")
}

#[cfg(feature = "libjpeg")]
fn differing<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Decodes `case` with `t` and checks it against Pillow; returns the u8 differences after the
/// transform (Resize + CenterCrop + RGB).
fn after_transform(t: &ImageTransform, c: &Value) -> Result<Vec<i32>, ImageError> {
    let img = t.decode_path(dir().join(s(c, "file")))?;
    assert_eq!(img.mode().name(), s(c, "pil_mode"), "{}", s(c, "name"));
    let rgb = t.crop_rgb(&img)?;
    let want = png_samples(s(c, "expected"));
    Ok(rgb
        .iter()
        .zip(&want)
        .map(|(&a, &b)| i32::from(a) - i32::from(b))
        .collect())
}

#[cfg(feature = "libjpeg")]
#[test]
fn libjpeg_is_pixel_identical_to_pillow() {
    let t = ImageTransform::default();
    assert_eq!(t.jpeg_decoder(), JpegDecoder::Libjpeg);
    let all = cases("jpeg");
    assert_eq!(all.len(), 22);
    for c in &all {
        let name = s(c, "name");
        let path = dir().join(s(c, "file"));
        let img: taiyi_preprocess::transform::PilImage = t
            .decode_path(&path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.mode().name(), s(c, "pil_mode"), "{name}");
        let decoded = png_samples(s(c, "decoded"));
        let got = img.samples_u8().expect("u8");
        assert_eq!(
            differing(got, &decoded),
            0,
            "{name}: decoded samples differ from Pillow"
        );
        let want = png_samples(s(c, "expected"));
        let rgb = t.crop_rgb(&img).expect("crop");
        assert_eq!(differing(&rgb, &want), 0, "{name}: transformed u8 differ");
        let f = t.apply_path(&path).expect("apply");
        let fwant = normalized(&want, &t);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            differing(&bits(&f), &bits(&fwant)),
            0,
            "{name}: float output differs"
        );
        println!(
            "{name:32} {:30} {:5} 0 differing values",
            s(c, "encoder"),
            s(c, "pil_mode")
        );
    }
}

#[test]
fn zune_fallback_difference_is_measured_and_bounded() {
    let t = ImageTransform::default().with_jpeg_decoder(JpegDecoder::Zune);
    let mut rows = Vec::new();
    for c in &cases("jpeg") {
        let name = s(c, "name");
        match after_transform(&t, c) {
            Ok(d) => {
                let max = d.iter().map(|v| v.abs()).max().unwrap_or(0);
                let mean = d.iter().map(|v| f64::from(v.abs())).sum::<f64>() / d.len() as f64;
                let nz = d.iter().filter(|&&v| v != 0).count();
                println!(
                    "zune {name:32} max |du8| {max}, mean {mean:.4}, {nz}/{} values differ",
                    d.len()
                );
                rows.push((name.to_owned(), max, mean));
            }
            // zune-jpeg reads neither YCCK nor arithmetic coding.
            Err(ImageError::Unsupported { what, .. }) if name.contains("ycck") => {
                println!("zune {name:32} unsupported: {what}");
            }
            Err(e @ ImageError::Jpeg { .. }) if name.contains("arith") => {
                println!("zune {name:32} error: {e}");
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!(rows.len(), 20);
    // Measured on these fixtures (after the transform): max 5 u8 levels, mean <= 0.41 (see
    // `transform::jpeg`); 1 u8 level is 1/255/std <= 0.0150 after Normalize.
    for (name, max, mean) in &rows {
        assert!(*max <= 5, "{name}: max {max}");
        assert!(*mean < 0.45, "{name}: mean {mean}");
    }
    assert!(
        rows.iter().any(|r| r.1 > 0),
        "the fallback is expected to differ somewhere"
    );
}

#[test]
fn gif_and_palette_bmp_follow_pillow_modes_exactly() {
    let t = ImageTransform::default();
    let mut n = 0;
    for c in cases("bmp").iter().chain(&cases("gif")) {
        let name = s(c, "name");
        let d = after_transform(&t, c).unwrap_or_else(|e| panic!("{name}: {e}"));
        let nz = d.iter().filter(|&&v| v != 0).count();
        assert_eq!(nz, 0, "{name}: {nz} values differ from Pillow");
        let path = dir().join(s(c, "file"));
        let f = t.apply_path(&path).expect("apply");
        let want = normalized(&png_samples(s(c, "expected")), &t);
        assert_eq!(f, want, "{name}");
        n += 1;
    }
    assert_eq!(n, 7);
}
