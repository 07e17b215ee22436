//! Forward time of a full-size (random-init) ViT-H-14 on the CPU backends.
//!
//! ```text
//! cargo bench -p taiyi-vision --bench vision_tower              # everything
//! cargo bench -p taiyi-vision --bench vision_tower -- flex/b1    # one case (criterion filter)
//! ```
//! Cases: `{flex,ndarray}/{matmul,fused}/b{1,4}` (attention kernel, batch size). Compare with
//! `scripts/bench_vision_torch.py` (PyTorch, 2 threads) on the same machine.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use taiyi_vision::{AttentionKernel, VisionConfig};

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str) {
    let device = B::Device::default();
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    // Only build the 2.5 GB model when a case of this backend is selected.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |id: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| format!("{name}/{id}").contains(f.as_str()))
    };
    let cases: Vec<(AttentionKernel, usize)> = [AttentionKernel::Matmul, AttentionKernel::Fused]
        .into_iter()
        .flat_map(|k| [(k, 1), (k, 4)])
        .filter(|(k, b)| wanted(&format!("{}/b{b}", k.name())))
        .collect();
    if cases.is_empty() {
        return;
    }
    let mut model = VisionConfig::vit_h_14().init::<B>(&device).unwrap();
    for (kernel, batch) in cases {
        model = model.with_attention_kernel(kernel);
        let pixels = Tensor::<B, 4>::random(
            [batch, 3, 224, 224],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // Materialise the lazy random weights outside the measurement.
        let _ = model.forward(pixels.clone()).into_data();
        group.bench_with_input(
            BenchmarkId::new(kernel.name(), format!("b{batch}")),
            &pixels,
            |b, px| b.iter(|| model.forward(px.clone()).into_data()),
        );
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_backend::<Flex>(c, "flex");
    bench_backend::<NdArray>(c, "ndarray");
}

criterion_group!(vision, benches);
criterion_main!(vision);
