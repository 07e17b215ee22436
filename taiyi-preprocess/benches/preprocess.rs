//! Image preprocessing throughput (images/s): decode + open_clip ViT-H-14 transform.
//!
//! Inputs: `fixtures/image/inputs/jpeg_baseline_640x480.jpg` and `rgb_640x480.png`.
//! `single/*` runs one image at a time on one thread (per-core rate); `batch16/*` runs
//! [`ImageTransform::apply_batch`] on 16 copies (rayon, all cores).
//! `scripts/bench_preprocess.py` times Pillow + open_clip on the same files.
//!
//! `cargo bench -p taiyi-preprocess --bench preprocess`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taiyi_preprocess::transform::{ImageInput, ImageTransform};

fn input(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/image/inputs")
        .join(name)
}

fn bench(c: &mut Criterion) {
    let t = ImageTransform::open_clip_vit_h_14();
    for name in ["jpeg_baseline_640x480.jpg", "rgb_640x480.png"] {
        let path = input(name);
        if t.apply_path(&path).is_err() {
            eprintln!("skipping {name}: cannot preprocess {}", path.display());
            continue;
        }
        let mut g = c.benchmark_group("single");
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| black_box(t.apply_path(black_box(&path))))
        });
        g.finish();

        let paths = vec![path.clone(); 16];
        let inputs: Vec<ImageInput<'_>> = paths.iter().map(ImageInput::from).collect();
        let mut g = c.benchmark_group("batch16");
        g.throughput(Throughput::Elements(16));
        g.bench_function(name, |b| {
            b.iter(|| black_box(t.apply_batch(black_box(&inputs))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
