//! End-to-end `ClipModel::logits` (decode + transform + both towers + logits) for every CPU
//! backend compiled in, on the tiny fixture towers, and on the real weights when
//! `TAIYI_TEXT_MODEL` and `TAIYI_VISION_MODEL` are set (full-size ViT-H-14 + Taiyi BERT).
//!
//! ```text
//! cargo bench -p taiyi-core --bench clip                       # flex
//! cargo bench -p taiyi-core --features ndarray --bench clip    # + ndarray
//! ```
//! Tower-level benches: taiyi-text/benches, taiyi-vision/benches; preprocessing:
//! taiyi-preprocess/benches.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use burn::tensor::backend::Backend;
use criterion::{Criterion, criterion_group, criterion_main};
use taiyi_core::{ClipModel, ClipOptions, ImageSource, ModelPaths, VisionConfig};

const LABELS: [&str; 5] = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str) {
    let device = B::Device::default();
    let image = [ImageSource::from(
        root().join("examples/data/chelsea_cat.png"),
    )];
    let tiny = ModelPaths {
        text_dir: root().join("fixtures/text/tiny"),
        vision_file: root().join("fixtures/vision/open_clip_model.safetensors"),
    };
    let options = ClipOptions {
        vision: VisionConfig::tiny(),
        ..ClipOptions::default()
    };
    match ClipModel::<B>::load(&tiny, &options, &device) {
        Ok(model) => {
            c.bench_function(&format!("{name}/logits_tiny_1img_5txt"), |b| {
                b.iter(|| model.logits(&image, &LABELS).map(|o| o.probs()))
            });
        }
        Err(e) => eprintln!("skipping tiny bench: {e}"),
    }
    if std::env::var_os("TAIYI_TEXT_MODEL").is_some()
        && std::env::var_os("TAIYI_VISION_MODEL").is_some()
    {
        match ModelPaths::from_env_or_hub()
            .and_then(|p| ClipModel::<B>::load(&p, &ClipOptions::default(), &device))
        {
            Ok(model) => {
                let mut g = c.benchmark_group(format!("{name}/full"));
                g.sample_size(10).measurement_time(Duration::from_secs(60));
                g.bench_function("logits_1img_5txt", |b| {
                    b.iter(|| model.logits(&image, &LABELS).map(|o| o.probs()))
                });
                g.finish();
            }
            Err(e) => eprintln!("skipping full-size bench: {e}"),
        }
    }
}

fn benches(c: &mut Criterion) {
    #[cfg(feature = "flex")]
    bench_backend::<burn::backend::Flex>(c, "flex");
    #[cfg(feature = "ndarray")]
    bench_backend::<burn::backend::NdArray>(c, "ndarray");
    let _ = c;
}

criterion_group!(clip, benches);
criterion_main!(clip);
