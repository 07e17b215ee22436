//! Any bytes as an image file through decode + the ViT-H-14 transform (resize, crop,
//! normalise): an error or exactly 3 × 224 × 224 finite values, never a panic. The pixel budget
//! is lowered so that a fuzzer-made header cannot make one run allocate gigabytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taiyi_preprocess::ImageTransform;

fuzz_target!(|data: &[u8]| {
    let t = ImageTransform::open_clip_vit_h_14().with_max_pixels(1 << 22);
    if let Ok(pixels) = t.apply_bytes(data) {
        assert_eq!(pixels.len(), t.output_len());
        assert!(pixels.iter().all(|v| v.is_finite()));
    }
});
