//! Forward time of the full-size (random-init) Taiyi text tower on the CPU backends.
//!
//! ```text
//! cargo bench -p taiyi-text --bench text_tower                 # everything
//! cargo bench -p taiyi-text --bench text_tower -- flex/explicit/32x16   # one case
//! ```
//! Cases: `{flex,ndarray}/{explicit,fused}/{1x16,32x16,8x77}` (attention kernel, batch × tokens;
//! no attention mask, the model-card path). Criterion reports time per forward; tokens/s =
//! batch × tokens / time. Compare with `scripts/bench_text_torch.py` (PyTorch, 2 threads) on the
//! same machine.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use taiyi_text::{AttentionKernel, BertConfig};

const SHAPES: [(usize, usize); 3] = [(1, 16), (32, 16), (8, 77)];

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str) {
    let device = B::Device::default();
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
    let cases: Vec<(AttentionKernel, (usize, usize))> =
        [AttentionKernel::Matmul, AttentionKernel::Fused]
            .into_iter()
            .flat_map(|k| SHAPES.map(|s| (k, s)))
            .filter(|(k, (b, s))| wanted(&format!("{}/{b}x{s}", k.name())))
            .collect();
    if cases.is_empty() {
        return;
    }
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    let mut model = BertConfig::taiyi_roberta_large().init::<B>(&device);
    for (kernel, (batch, seq)) in cases {
        model = model.with_attention_kernel(kernel);
        let ids =
            Tensor::<B, 2, Int>::random([batch, seq], Distribution::Uniform(0.0, 21128.0), &device);
        // Materialise the lazy random weights (and warm up) outside the measurement.
        let _ = model.forward(ids.clone(), None).pooler_output.into_data();
        group.throughput(Throughput::Elements((batch * seq) as u64));
        group.bench_with_input(
            BenchmarkId::new(kernel.name(), format!("{batch}x{seq}")),
            &ids,
            |b, ids| b.iter(|| model.forward(ids.clone(), None).pooler_output.into_data()),
        );
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_backend::<Flex>(c, "flex");
    bench_backend::<NdArray>(c, "ndarray");
}

criterion_group!(text, benches);
criterion_main!(text);
