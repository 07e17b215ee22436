//! Every class of bad input is rejected with its own error, never a panic.

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use taiyi_preprocess::transform::{ImageError, ImageInput, ImageTransform, PilImage, PilMode};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/image/inputs")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

/// A minimal PNG chunk with its CRC (CRC-32/ISO-HDLC, bitwise).
fn chunk(tag: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in tag.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(tag);
    out.extend_from_slice(data);
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

fn png_header(w: u32, h: u32, depth: u8, ctype: u8) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[depth, ctype, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out
}

#[test]
fn missing_path_is_io_error_naming_the_file() {
    let t = ImageTransform::default();
    let err = t
        .apply_path("/nonexistent/dir/cat.png")
        .expect_err("missing");
    assert!(
        matches!(err, ImageError::Io { ref path, .. } if path == Path::new("/nonexistent/dir/cat.png")),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/dir/cat.png"));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn corrupt_png_is_rejected() {
    let t = ImageTransform::default();
    // Flip a byte inside the IDAT data: CRC mismatch / inflate error.
    let mut bytes = read("rgb_640x480.png");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5A;
    let err = t.apply_bytes(&bytes).expect_err("corrupt");
    assert!(matches!(err, ImageError::Png { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    // A bad CRC on IHDR: the message names the chunk, not the decoder's debug struct.
    let mut crc = read("rgb_640x480.png");
    crc[29] ^= 0xFF;
    let err = t.apply_bytes(&crc).expect_err("bad CRC");
    // The whole chain as a CLI prints it: the CRC fact once, with the chunk's name.
    let mut msg = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        msg.push_str(&format!("\n  caused by: {c}"));
        cause = c.source();
    }
    assert!(
        msg.contains("IHDR") && !msg.contains("ChunkType {"),
        "{msg}"
    );
    assert_eq!(msg.matches("CRC").count(), 1, "{msg}");
    // Garbage after a valid signature
    let mut g = b"\x89PNG\r\n\x1a\n".to_vec();
    g.extend_from_slice(&[7u8; 40]);
    assert!(matches!(t.apply_bytes(&g), Err(ImageError::Corrupt { .. })));
    // A corrupt JPEG: valid SOI then junk (libjpeg-turbo's error by default, zune-jpeg's
    // without the `libjpeg` feature)
    let mut j = read("jpeg_baseline_640x480.jpg");
    for b in &mut j[200..2000] {
        *b = 0xFF;
    }
    assert!(
        matches!(
            t.apply_bytes(&j),
            Err(ImageError::Jpeg { .. } | ImageError::Libjpeg { .. })
        ),
        "{:?}",
        t.apply_bytes(&j).err()
    );
}

#[test]
fn truncated_files_are_rejected() {
    let t = ImageTransform::default();
    for name in ["rgb_640x480.png", "rgba8_120x90.png", "l4_adam7_37x29.png"] {
        let bytes = read(name);
        for cut in [bytes.len() / 2, bytes.len() - 13, 30] {
            let err = t.apply_bytes(&bytes[..cut]).expect_err(name);
            assert!(
                matches!(err, ImageError::Png { .. } | ImageError::Corrupt { .. }),
                "{name} cut {cut}: {err}"
            );
        }
    }
    for name in ["jpeg_baseline_640x480.jpg", "jpeg_progressive_333x251.jpg"] {
        let bytes = read(name);
        let err = t.apply_bytes(&bytes[..bytes.len() / 2]).expect_err(name);
        assert!(
            matches!(err, ImageError::Jpeg { .. } | ImageError::Libjpeg { .. }),
            "{name}: {err}"
        );
    }
    assert!(matches!(
        t.apply_bytes(&[]),
        Err(ImageError::Corrupt { .. })
    ));
}

#[test]
fn zero_size_is_rejected() {
    let t = ImageTransform::default();
    let mut png = png_header(0, 10, 8, 2);
    png.extend(chunk(b"IEND", &[]));
    let err = t.apply_bytes(&png).expect_err("zero width");
    assert!(
        matches!(
            err,
            ImageError::ZeroSize {
                width: 0,
                height: 10,
                ..
            }
        ),
        "{err}"
    );
    let empty =
        PilImage::from_u8(PilMode::Rgb, 0, 5, Vec::new()).expect("empty image is representable");
    assert!(matches!(t.apply(&empty), Err(ImageError::ZeroSize { .. })));
    let dynimg = image::DynamicImage::new_rgb8(7, 0);
    assert!(matches!(
        t.apply_dynamic(&dynimg),
        Err(ImageError::ZeroSize { .. })
    ));
}

#[test]
fn unsupported_inputs_are_rejected() {
    let t = ImageTransform::default();
    let err = t
        .apply_bytes(b"hello, this is not an image at all")
        .expect_err("text");
    assert!(matches!(err, ImageError::Unsupported { .. }), "{err}");
    // A PNG colour type / bit depth combination that does not exist (RGB at 4 bits)
    let mut png = png_header(4, 4, 4, 2);
    png.extend(chunk(b"IEND", &[]));
    let err = t.apply_bytes(&png).expect_err("rgb 4-bit");
    assert!(
        matches!(err, ImageError::Png { .. } | ImageError::Unsupported { .. }),
        "{err}"
    );
    // Wrong buffer sizes and configurations
    assert!(matches!(
        PilImage::from_u8(PilMode::Rgb, 2, 2, vec![0; 11]),
        Err(ImageError::InvalidBuffer(_))
    ));
    assert!(matches!(
        PilImage::from_u8(PilMode::P, 2, 2, vec![0; 4]),
        Err(ImageError::InvalidBuffer(_))
    ));
    assert!(matches!(
        ImageTransform::new(0, [0.5; 3], [0.5; 3]),
        Err(ImageError::InvalidConfig(_))
    ));
    assert!(matches!(
        ImageTransform::new(224, [0.5; 3], [0.5, 0.0, 0.5]),
        Err(ImageError::InvalidConfig(_))
    ));
    assert!(matches!(
        t.normalize(&[0u8; 10]),
        Err(ImageError::InvalidBuffer(_))
    ));
}

#[test]
fn decompression_bomb_limit_is_checked_from_the_header() {
    let t = ImageTransform::default().with_max_pixels(640 * 480 - 1);
    for name in ["rgb_640x480.png", "jpeg_baseline_640x480.jpg"] {
        let err = t.apply_path(fixture(name)).expect_err(name);
        match err {
            ImageError::TooManyPixels {
                width: 640,
                height: 480,
                pixels,
                limit,
                ref origin,
            } => {
                assert_eq!((pixels, limit), (307_200, 307_199));
                assert!(origin.ends_with(name));
            }
            other => panic!("{name}: {other}"),
        }
    }
    // At the limit it decodes.
    let ok = ImageTransform::default().with_max_pixels(640 * 480);
    assert!(ok.apply_path(fixture("rgb_640x480.png")).is_ok());
    // Default: Pillow's DecompressionBombError threshold, checked before any allocation
    // (a 100000 x 100000 header with no data).
    assert_eq!(ImageTransform::default().max_pixels(), 2 * 89_478_485);
    let mut png = png_header(100_000, 100_000, 8, 2);
    png.extend(chunk(b"IEND", &[]));
    assert!(matches!(
        ImageTransform::default().apply_bytes(&png),
        Err(ImageError::TooManyPixels { .. })
    ));
}

#[test]
fn empty_and_failing_batches() {
    let t = ImageTransform::default();
    assert!(matches!(t.apply_batch(&[]), Err(ImageError::EmptyBatch)));
    assert!(matches!(
        t.to_tensor::<burn::backend::Flex>(&[], &Default::default()),
        Err(ImageError::EmptyBatch)
    ));
    let good = fixture("rgb_7x5.png");
    let bad: &[u8] = b"nope";
    let err = t
        .apply_batch(&[
            ImageInput::from(&good),
            ImageInput::Bytes(bad),
            ImageInput::from(&good),
        ])
        .expect_err("bad");
    assert!(matches!(err, ImageError::Batch { index: 1, .. }), "{err}");
}
