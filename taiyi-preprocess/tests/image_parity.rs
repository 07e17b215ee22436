//! Parity of the image transform with open_clip 3.3.0 / Pillow 13.0.0 / torch 2.15
//! (fixtures from scripts/fixtures/image.py, see fixtures/image/cases.json).

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use serde_json::Value;
use taiyi_preprocess::transform::{ImageInput, ImageTransform, PilImage, PilMode};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/image")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let doc: Value = serde_json::from_str(&text).expect("json");
    doc["cases"].as_array().expect("cases").clone()
}

fn s<'a>(c: &'a Value, k: &str) -> &'a str {
    c[k].as_str().unwrap_or_else(|| panic!("case field {k}"))
}

/// Decodes a fixture PNG with the `png` crate into (width, height, channels, bytes / u16s).
fn read_png(path: &Path) -> (usize, usize, usize, Vec<u8>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut r = dec.read_info().expect("png info");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type.samples(),
        buf,
    )
}

/// A float32 .npy file (little-endian, C order): (shape, values).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).expect("header");
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    let shape_s = &header[header.find("'shape': (").expect("shape") + 10..];
    let shape: Vec<usize> = shape_s[..shape_s.find(')').expect(")")]
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse().expect("dim"))
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// torch's ToTensor+Normalize output for every u8 value, per channel ([3][256]).
fn lut() -> Vec<f32> {
    let (shape, v) = read_npy_f32(&dir().join("normalize_lut.npy"));
    assert_eq!(shape, vec![3, 256]);
    v
}

/// The expected float tensor (CHW) of an expected uint8 RGB image, through torch's LUT.
fn expected_float(rgb: &[u8], lut: &[f32]) -> Vec<f32> {
    let n = rgb.len() / 3;
    let mut out = vec![0f32; 3 * n];
    for c in 0..3 {
        for i in 0..n {
            out[c * n + i] = lut[c * 256 + usize::from(rgb[i * 3 + c])];
        }
    }
    out
}

fn count_diff<T: PartialEq>(a: Option<&[T]>, b: Option<&[T]>) -> usize {
    let (a, b) = (a.expect("samples"), b.expect("samples"));
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn bits_differ(a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}

#[test]
fn normalize_is_bit_exact_with_torch_for_every_value() {
    let t = ImageTransform::open_clip_vit_h_14();
    let lut = lut();
    // A 224x224 image cycling through every value on every channel.
    let rgb: Vec<u8> = (0..224 * 224 * 3)
        .map(|i| ((i / 3 + 7 * (i % 3)) % 256) as u8)
        .collect();
    let got = t.normalize(&rgb).expect("normalize");
    let want = expected_float(&rgb, &lut);
    assert_eq!(bits_differ(&got, &want), 0);
}

#[test]
fn png_cases_are_pixel_exact() {
    let t = ImageTransform::open_clip_vit_h_14();
    let lut = lut();
    let (mut n, mut exact, mut differing, mut total) = (0usize, 0usize, 0usize, 0usize);
    for c in cases().iter().filter(|c| s(c, "format") == "png") {
        let name = s(c, "name");
        let img = t
            .decode_path(dir().join(s(c, "file")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.mode().name(), s(c, "pil_mode"), "{name}: mode");
        let rgb = t.crop_rgb(&img).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h, ch, want) = read_png(&dir().join(s(c, "expected")));
        assert_eq!((w, h, ch), (224, 224, 3));
        let d = rgb.iter().zip(&want).filter(|(a, b)| a != b).count();
        // float stage: whole tensor, bit for bit, against torch's per-value output
        let f = t.apply(&img).expect("apply");
        let df = bits_differ(&f, &expected_float(&want, &lut));
        if d + df > 0 {
            eprintln!("{name}: {d} differing u8 values, {df} differing floats");
        }
        n += 1;
        exact += usize::from(d + df == 0);
        differing += d + df;
        total += rgb.len() + f.len();
    }
    println!(
        "image parity: {exact}/{n} PNG cases pixel-exact, {differing} differing values (of {total} u8+f32 values)"
    );
    assert!(n >= 40, "only {n} PNG cases");
    assert_eq!(differing, 0);
    assert_eq!(exact, n);
}

#[test]
fn full_float_tensors_match_open_clip_preprocess() {
    let t = ImageTransform::open_clip_vit_h_14();
    let mut n = 0;
    for c in cases().iter().filter(|c| c.get("full").is_some()) {
        let (shape, want) = read_npy_f32(&dir().join(s(c, "full")));
        assert_eq!(shape, vec![3, 224, 224]);
        let got = t.apply_path(dir().join(s(c, "file"))).expect("apply");
        assert_eq!(bits_differ(&got, &want), 0, "{}", s(c, "name"));
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn resized_debug_images_match_pillow() {
    let t = ImageTransform::open_clip_vit_h_14();
    let mut n = 0;
    for c in cases().iter().filter(|c| c.get("resized").is_some()) {
        let name = s(c, "name");
        // JPEG: start from Pillow's decoded pixels, to test the resize and not the decoder.
        let img = match c.get("decoded").and_then(Value::as_str) {
            Some(dec) => {
                let (w, h, ch, px) = read_png(&dir().join(dec));
                assert_eq!(ch, 4, "{name}: only the CMYK JPEG has a resized fixture");
                PilImage::from_u8(PilMode::Cmyk, w, h, px).expect("pil")
            }
            None => t.decode_path(dir().join(s(c, "file"))).expect("decode"),
        };
        assert_eq!(img.mode().name(), s(c, "resized_mode"), "{name}");
        let resized = t.resize(&img);
        let size = c["resized_size"].as_array().expect("size");
        assert_eq!(
            resized.width() as u64,
            size[0].as_u64().expect("w"),
            "{name}"
        );
        assert_eq!(
            resized.height() as u64,
            size[1].as_u64().expect("h"),
            "{name}"
        );
        // The debug PNG is saved in the resized image's own mode (CMYK as a 4-channel PNG);
        // decode it with the same Pillow-mode decoder and compare the raw samples.
        let want = t
            .decode_path(dir().join(s(c, "resized")))
            .expect("decode resized");
        let differing = match resized.mode() {
            PilMode::I16 => count_diff(resized.samples_u16(), want.samples_u16()),
            PilMode::Cmyk => count_diff(resized.samples_u8(), want.samples_u8()),
            m => {
                assert_eq!(want.mode(), m, "{name}");
                if m == PilMode::P {
                    assert_eq!(
                        resized.palette()[..want.palette().len()],
                        *want.palette(),
                        "{name}"
                    );
                }
                count_diff(resized.samples_u8(), want.samples_u8())
            }
        };
        assert_eq!(
            differing, 0,
            "{name}: {differing} samples differ after Resize"
        );
        n += 1;
    }
    assert!(n >= 6);
}

#[test]
fn jpeg_cases_within_decoder_tolerance() {
    let t = ImageTransform::open_clip_vit_h_14();
    let mut n = 0;
    for c in cases().iter().filter(|c| s(c, "format") == "jpeg") {
        let name = s(c, "name");
        let img = t
            .decode_path(dir().join(s(c, "file")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.mode().name(), s(c, "pil_mode"), "{name}");
        let rgb = t.crop_rgb(&img).expect("crop");
        let (_, _, _, want) = read_png(&dir().join(s(c, "expected")));
        let diffs: Vec<i32> = rgb
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .collect();
        let max = diffs.iter().copied().max().unwrap_or(0);
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let nz = diffs.iter().filter(|&&d| d != 0).count();
        let f = t.apply(&img).expect("apply");
        let fwant = expected_float(&want, &lut());
        let fmax = f
            .iter()
            .zip(&fwant)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "jpeg {name}: zune-jpeg vs libjpeg-turbo after the transform: max |du8| = {max}, mean = {mean:.4}, \
             {nz}/{} values differ, max |dfloat| = {fmax:.5}",
            diffs.len()
        );
        // Decoder differences only (IDCT / chroma upsampling rounding): a few levels at most.
        // Measured max 4 (4:2:0 progressive), bound 5 u8 levels = 5/255/min(std) = 0.075 after Normalize.
        assert!(max <= 5, "{name}: max u8 difference {max}");
        assert!(mean < 0.5, "{name}: mean u8 difference {mean}");
        assert!(fmax <= 5.0 / 255.0 / 0.2613 + 1e-5, "{name}: {fmax}");

        // With Pillow's own decoded pixels, the transform is exact.
        if let Some(dec) = c.get("decoded").and_then(Value::as_str) {
            let (w, h, ch, px) = read_png(&dir().join(dec));
            let mode = match (img.mode(), ch) {
                (PilMode::Cmyk, 4) => PilMode::Cmyk,
                (PilMode::L, 1) => PilMode::L,
                (PilMode::Rgb, 3) => PilMode::Rgb,
                other => panic!("{name}: {other:?}"),
            };
            let pil = PilImage::from_u8(mode, w, h, px).expect("pil");
            let exact = t.crop_rgb(&pil).expect("crop");
            assert_eq!(exact, want, "{name}: transform of Pillow's decoded pixels");
            let fe = t.apply(&pil).expect("apply");
            assert_eq!(bits_differ(&fe, &fwant), 0, "{name}");
        }
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn dynamic_image_and_bytes_inputs_match() {
    let t = ImageTransform::default();
    let lut = lut();
    for name in [
        "rgb_640x480",
        "rgba8_120x90",
        "l8_333x250",
        "i16_90x60",
        "rgb16_70x50",
    ] {
        let path = dir().join(format!("inputs/{name}.png"));
        let dynimg = image::open(&path).expect("image::open");
        let (_, _, _, want) = read_png(&dir().join(format!("expected/{name}.png")));
        let want = expected_float(&want, &lut);
        assert_eq!(
            bits_differ(&t.apply_dynamic(&dynimg).expect("dyn"), &want),
            0,
            "{name} (DynamicImage)"
        );
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(
            bits_differ(&t.apply_bytes(&bytes).expect("bytes"), &want),
            0,
            "{name} (bytes)"
        );
    }
}

#[test]
fn batch_tensor_keeps_order_and_values() {
    let t = ImageTransform::default();
    let names = [
        "rgb_640x480",
        "p8_100x77",
        "la8_110x70",
        "rgb_1x50",
        "jpeg_grey_250x333",
        "rgb_3000x2000",
    ];
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let c = cases()
                .into_iter()
                .find(|c| s(c, "name") == *n)
                .expect("case");
            dir().join(s(&c, "file"))
        })
        .collect();
    let bytes = std::fs::read(&paths[1]).expect("read");
    let mut inputs: Vec<ImageInput<'_>> = paths.iter().map(ImageInput::from).collect();
    inputs[1] = ImageInput::from(&bytes);
    let x = t
        .to_tensor::<Flex>(&inputs, &Default::default())
        .expect("batch");
    assert_eq!(x.dims(), [names.len(), 3, 224, 224]);
    let data = x.into_data().to_vec::<f32>().expect("f32");
    for (i, p) in paths.iter().enumerate() {
        let one = t.apply_path(p).expect("one");
        let part = &data[i * one.len()..(i + 1) * one.len()];
        assert_eq!(bits_differ(part, &one), 0, "{}", names[i]);
    }
}
