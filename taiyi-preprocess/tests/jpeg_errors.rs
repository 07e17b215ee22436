//! Corrupt, truncated and oversized JPEGs through libjpeg-turbo: errors naming the file, never a
//! panic, an abort or libjpeg's exit(); the pixel limit checked from the header.

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "libjpeg")]

use std::path::PathBuf;

use taiyi_preprocess::transform::{ImageError, ImageTransform, JpegDecoder};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/jpeg")
        .join(name);
    std::fs::read(&p).expect("fixture")
}

/// Every prefix (step `step`) of the file is an error, like Pillow's "image file is truncated"
/// (Pillow also refuses a file that lacks only its EOI marker).
#[test]
fn every_truncation_is_an_error_not_a_crash() {
    let t = ImageTransform::default();
    assert_eq!(t.jpeg_decoder(), JpegDecoder::Libjpeg);
    for name in [
        "pil_420_300x200.jpg",
        "pil_progressive_257x181.jpg",
        "cjpeg_arith_150x110.jpg",
        "pil_restart_rows_180x120.jpg",
        "libjpeg_ycck_150x110.jpg",
    ] {
        let full = fixture(name);
        assert!(t.decode_bytes(&full).is_ok(), "{name}");
        let mut cuts: Vec<usize> = (3..full.len()).step_by(97).collect();
        cuts.extend([full.len() - 2, full.len() - 1]);
        for cut in cuts {
            match t.decode_bytes(&full[..cut]) {
                Err(
                    ImageError::Libjpeg { origin, .. }
                    | ImageError::Corrupt { origin, .. }
                    | ImageError::Jpeg { origin, .. },
                ) => assert_eq!(origin, "<bytes>"),
                other => panic!("{name} cut at {cut}/{}: {other:?}", full.len()),
            }
        }
        // Bytes after EOI are ignored, as by Pillow.
        let mut longer = full.clone();
        longer.extend_from_slice(b"trailing garbage");
        assert!(t.decode_bytes(&longer).is_ok(), "{name} + trailing bytes");
    }
}

#[test]
fn corrupt_data_is_a_libjpeg_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("taiyi-jpeg-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let t = ImageTransform::default();
    let good = fixture("pil_420_300x200.jpg");
    // A bad marker right after the header, a scan with a Huffman table index out of range,
    // a frame header with 0 components.
    let mut bad_marker = good[..20].to_vec();
    bad_marker.extend_from_slice(&[0xFF, 0x01, 0x00, 0x04, 0, 0, 0xFF, 0xD9]);
    let sof = good
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    let mut no_components = good.clone();
    no_components[sof + 9] = 0;
    let mut scrambled = good.clone();
    let sos = good
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("SOS");
    scrambled[sos + 6] = 0xEE; // table selectors of the first component
    for (i, bytes) in [bad_marker, no_components, scrambled].iter().enumerate() {
        let path = dir.join(format!("bad{i}.jpg"));
        std::fs::write(&path, bytes).expect("write");
        let err = t.apply_path(&path).expect_err("corrupt JPEG");
        let text = err.to_string();
        assert!(text.contains(&*path.to_string_lossy()), "{i}: {text}");
        if let ImageError::Libjpeg { source, .. } = &err {
            assert!(!source.0.is_empty(), "{i}: empty libjpeg message");
        }
    }
    // A decoder error inside a rayon batch stays an error of that image.
    let ok = dir.join("ok.jpg");
    std::fs::write(&ok, &good).expect("write");
    let bad = dir.join("bad2.jpg");
    let err = t
        .apply_batch(&[(&ok).into(), (&bad).into()])
        .expect_err("batch");
    assert!(matches!(err, ImageError::Batch { index: 1, .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pixel_limit_is_checked_from_the_header_before_decoding() {
    // A 65000x65000 baseline frame header with no data: only the header is ever read.
    let good = fixture("pil_420_300x200.jpg");
    let sof = good
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    let mut huge = good.clone();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    let t = ImageTransform::default();
    match t.decode_bytes(&huge) {
        Err(ImageError::TooManyPixels { width, height, .. }) => {
            assert_eq!((width, height), (65000, 65000));
        }
        other => panic!("{other:?}"),
    }
    let small = ImageTransform::default().with_max_pixels(300 * 200 - 1);
    assert!(matches!(
        small.decode_bytes(&good),
        Err(ImageError::TooManyPixels { .. })
    ));
    assert!(
        ImageTransform::default()
            .with_max_pixels(300 * 200)
            .decode_bytes(&good)
            .is_ok()
    );
}
