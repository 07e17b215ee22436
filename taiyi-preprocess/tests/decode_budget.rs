//! The decode memory budget: parallel batches wait instead of exceeding it, an image larger
//! than the budget still decodes alone, results are unchanged.

// Tests fail by panicking: unwrap/expect/panic are the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use taiyi_preprocess::transform::{DecodeBudget, ImageInput, ImageTransform};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(rel),
    )
    .expect("fixture")
}

fn run(t: &ImageTransform, inputs: &[ImageInput<'_>]) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(6)
        .build()
        .expect("pool");
    pool.install(|| t.apply_batch(inputs)).expect("batch")
}

#[test]
fn parallel_decodes_stay_within_the_budget() {
    let files: Vec<Vec<u8>> = [
        "jpeg/pil_420_300x200.jpg",
        "jpeg/cjpeg_420_299x201.jpg",
        "jpeg/pil_progressive_257x181.jpg",
        "image/inputs/rgb_640x480.png",
        "jpeg/gif_p_131x97.gif",
        "jpeg/bmp_p8_131x97.bmp",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    let batch: Vec<&Vec<u8>> = files.iter().cycle().take(24).collect();
    let inputs: Vec<ImageInput<'_>> = batch.iter().map(|b| ImageInput::from(*b)).collect();
    let plain = ImageTransform::default();
    let want = run(&plain, &inputs);

    let need: Vec<u64> = files.iter().map(|b| plain.decode_estimate(b)).collect();
    // 640x480 RGB PNG: 8 bytes per pixel plus the file.
    assert_eq!(need[3], 640 * 480 * 8 + files[3].len() as u64);
    assert!(need[0] >= 300 * 200 * 8);
    let biggest = need.iter().copied().max().unwrap_or(0);

    // Room for about two decodes: never more in flight than the limit allows.
    let limit = 2 * biggest;
    let budget = Arc::new(DecodeBudget::new(limit));
    let t = plain.clone().with_decode_budget(budget.clone());
    assert_eq!(run(&t, &inputs), want);
    assert!(
        budget.peak_in_use() <= limit,
        "{} > {limit}",
        budget.peak_in_use()
    );
    assert!(budget.peak_holders() >= 1);
    assert_eq!(budget.in_use(), 0);

    // A budget below every single image: one decode at a time, each still decodes.
    let tiny = Arc::new(DecodeBudget::new(1));
    let t = plain.clone().with_decode_budget(tiny.clone());
    assert_eq!(run(&t, &inputs), want);
    assert_eq!(tiny.peak_holders(), 1);
    assert_eq!(tiny.peak_in_use(), biggest);
    assert_eq!(tiny.in_use(), 0);

    // Without a cap worth the name, the same batch holds several decodes at once (so the two
    // runs above did wait).
    let wide = Arc::new(DecodeBudget::new(u64::MAX));
    let t = plain.with_decode_budget(wide.clone());
    for _ in 0..5 {
        assert_eq!(run(&t, &inputs), want);
    }
    assert!(wide.peak_holders() > 1, "no concurrency observed");
}

#[test]
fn failing_decodes_return_their_reservation() {
    let budget = Arc::new(DecodeBudget::new(1 << 20));
    let t = ImageTransform::default().with_decode_budget(budget.clone());
    let mut bad = fixture("jpeg/pil_420_300x200.jpg");
    bad.truncate(bad.len() / 2);
    assert!(t.apply_bytes(&bad).is_err());
    assert!(t.apply_path("/nonexistent/x.jpg").is_err());
    assert_eq!(budget.in_use(), 0);
    assert!(budget.peak_in_use() > 0);
}
