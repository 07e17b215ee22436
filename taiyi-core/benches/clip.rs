//! End-to-end `ClipModel::logits` (decode + transform + both towers + logits) for every
//! backend compiled in, on the tiny fixture towers, and on the real weights when
//! `TAIYI_TEXT_MODEL` and `TAIYI_VISION_MODEL` are set (full-size ViT-H-14 + Taiyi BERT).
//!
//! GPU backends run when compiled in and a device opens (else they are skipped with a
//! message): wgpu in f32 and f16, CUDA in f32, f16 and bf16. With `TAIYI_BENCH_FULL=1` they
//! also time the random-weight full-size towers: ViT-H-14 on 32 images and the Taiyi BERT on
//! 64 texts × 64 tokens (far too slow for a software GPU such as lavapipe).
//!
//! ```text
//! cargo bench -p taiyi-core --bench clip                       # flex
//! cargo bench -p taiyi-core --features ndarray --bench clip    # + ndarray
//! cargo bench -p taiyi-core --features wgpu --bench clip       # + wgpu f32/f16
//! TAIYI_BENCH_FULL=1 cargo bench -p taiyi-core --features cuda --bench clip -- cuda
//! ```
//! Tower-level CPU benches: taiyi-text/benches, taiyi-vision/benches; preprocessing:
//! taiyi-preprocess/benches. On a machine without cargo, `taiyi bench` times the towers.

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

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, device: &B::Device) {
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
    match ClipModel::<B>::load(&tiny, &options, device) {
        Ok(model) => {
            c.bench_function(&format!("{name}/logits_tiny_1img_5txt"), |b| {
                b.iter(|| model.logits(&image, &LABELS).map(|o| o.probs()))
            });
        }
        Err(e) => eprintln!("skipping {name} tiny bench: {e}"),
    }
    if std::env::var_os("TAIYI_TEXT_MODEL").is_some()
        && std::env::var_os("TAIYI_VISION_MODEL").is_some()
    {
        match ModelPaths::from_env_or_hub()
            .and_then(|p| ClipModel::<B>::load(&p, &ClipOptions::default(), device))
        {
            Ok(model) => {
                let mut g = c.benchmark_group(format!("{name}/full"));
                g.sample_size(10).measurement_time(Duration::from_secs(60));
                g.bench_function("logits_1img_5txt", |b| {
                    b.iter(|| model.logits(&image, &LABELS).map(|o| o.probs()))
                });
                g.finish();
            }
            Err(e) => eprintln!("skipping {name} full-size bench: {e}"),
        }
    }
}

/// GPU-only parts: probing a device, the random full-size tower benches, and a guard that
/// turns a backend panic (an op or dtype the backend lacks) into a skipped bench.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu {
    use std::panic::AssertUnwindSafe;
    use std::time::Duration;

    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Distribution, Element, Int, Tensor, TensorData};
    use criterion::{Criterion, Throughput};
    use taiyi_text::BertConfig;
    use taiyi_vision::VisionConfig;

    /// Images per forward pass of the full-size image-tower bench.
    const IMAGES: usize = 32;
    /// Texts per forward pass of the full-size text-tower bench.
    const TEXTS: usize = 64;
    /// Tokens per text of the full-size text-tower bench.
    const TOKENS: usize = 64;

    fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string())
    }

    /// Casts every float parameter to `B`'s float type. A device keeps the float dtype of its
    /// first use (here the f32 probe) as the default for new tensors, so random weights built
    /// for `Wgpu<f16>` after the f32 benches would otherwise stay f32.
    struct ToPrecision(DType);

    impl<B: Backend> ModuleMapper<B> for ToPrecision {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let dtype = self.0;
            p.map(|t| if t.dtype() == dtype { t } else { t.cast(dtype) })
        }
    }

    fn to_precision<B: Backend, M: Module<B>>(module: M) -> M {
        module.map(&mut ToPrecision(<B::FloatElem as Element>::dtype()))
    }

    /// Whether `TAIYI_BENCH_FULL=1` asks for the full-size tower benches.
    fn full() -> bool {
        std::env::var("TAIYI_BENCH_FULL").is_ok_and(|v| v == "1")
    }

    /// Whether the command line's criterion filter (if any) selects a bench id.
    fn wanted(id: &str) -> bool {
        let filter: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        filter.is_empty() || filter.iter().any(|f| id.contains(f.as_str()))
    }

    /// The tiny end-to-end bench and, with `TAIYI_BENCH_FULL=1`, the full-size tower benches
    /// on backend `B`; a panic of the backend skips the rest of `B` with a message.
    pub fn run<B: Backend>(c: &mut Criterion, name: &str, device: &B::Device) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            super::bench_backend::<B>(c, name, device);
            if full() {
                towers::<B>(c, name, device);
            } else {
                eprintln!(
                    "{name}: full-size tower benches skipped (set TAIYI_BENCH_FULL=1 to run them)"
                );
            }
        }));
        if let Err(p) = outcome {
            eprintln!(
                "skipping the rest of {name}: the backend panicked: {}",
                panic_message(&*p)
            );
        }
    }

    /// Random full-size towers: ViT-H-14 on `IMAGES` images, Taiyi BERT (masked) on
    /// `TEXTS` × `TOKENS`. Criterion's warm-up absorbs weight materialisation, kernel
    /// compilation and autotune; every iteration ends with a device sync.
    fn towers<B: Backend>(c: &mut Criterion, name: &str, device: &B::Device) {
        let group_name = format!("{name}/towers_random_full");
        let image_id = format!("vit_h_14_{IMAGES}img");
        let text_id = format!("bert_{TEXTS}txt_{TOKENS}tok");
        let mut g = c.benchmark_group(&group_name);
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(5))
            .measurement_time(Duration::from_secs(30));
        if wanted(&format!("{group_name}/{image_id}")) {
            match VisionConfig::vit_h_14().init::<B>(device) {
                Ok(model) => {
                    let model = to_precision::<B, _>(model);
                    let pixels = Tensor::<B, 4>::random(
                        [IMAGES, 3, 224, 224],
                        Distribution::Normal(0.0, 1.0),
                        device,
                    );
                    g.throughput(Throughput::Elements(IMAGES as u64));
                    g.bench_function(&image_id, |b| {
                        b.iter(|| {
                            let out = model.forward(pixels.clone());
                            B::sync(device).map(|_| out)
                        })
                    });
                }
                Err(e) => eprintln!("skipping {group_name}/{image_id}: {e}"),
            }
        }
        if wanted(&format!("{group_name}/{text_id}")) {
            let model = to_precision::<B, _>(BertConfig::taiyi_roberta_large().init::<B>(device));
            // [CLS] ids… [SEP], spread over the vocabulary.
            let ids: Vec<i64> = (0..TEXTS * TOKENS)
                .map(|i| match i % TOKENS {
                    0 => 101,
                    c if c == TOKENS - 1 => 102,
                    _ => 672 + (i as i64 * 7919) % 20000,
                })
                .collect();
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [TEXTS, TOKENS]), device);
            let mask = Tensor::<B, 2, Int>::ones([TEXTS, TOKENS], device);
            g.throughput(Throughput::Elements((TEXTS * TOKENS) as u64));
            g.bench_function(&text_id, |b| {
                b.iter(|| {
                    let out = model.forward(ids.clone(), Some(mask.clone())).pooler_output;
                    B::sync(device).map(|_| out)
                })
            });
        }
        g.finish();
    }
}

#[cfg(feature = "wgpu")]
fn bench_wgpu(c: &mut Criterion) {
    use burn::backend::wgpu::{Wgpu, WgpuDevice};
    let device = WgpuDevice::DefaultDevice;
    match taiyi_core::probe::<Wgpu>(&device) {
        Ok(()) => {
            gpu::run::<Wgpu<f32>>(c, "wgpu-f32", &device);
            gpu::run::<Wgpu<burn::tensor::f16>>(c, "wgpu-f16", &device);
        }
        Err(e) => eprintln!("skipping the wgpu benches: {e}"),
    }
}

#[cfg(feature = "cuda")]
fn bench_cuda(c: &mut Criterion) {
    use burn::backend::cuda::{Cuda, CudaDevice};
    let device = CudaDevice::new(0);
    match taiyi_core::probe::<Cuda>(&device) {
        Ok(()) => {
            gpu::run::<Cuda<f32>>(c, "cuda-f32", &device);
            gpu::run::<Cuda<burn::tensor::f16>>(c, "cuda-f16", &device);
            gpu::run::<Cuda<burn::tensor::bf16>>(c, "cuda-bf16", &device);
        }
        Err(e) => eprintln!("skipping the CUDA benches: {e}"),
    }
}

fn benches(c: &mut Criterion) {
    #[cfg(feature = "flex")]
    bench_backend::<burn::backend::Flex>(c, "flex", &Default::default());
    #[cfg(feature = "ndarray")]
    bench_backend::<burn::backend::NdArray>(c, "ndarray", &Default::default());
    #[cfg(feature = "wgpu")]
    bench_wgpu(c);
    #[cfg(feature = "cuda")]
    bench_cuda(c);
    let _ = c;
}

criterion_group!(clip, benches);
criterion_main!(clip);
