//! Scaled dot-product attention and the moves between token rows and heads.

use burn::config::Config;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

/// How [`sdpa`] computes `softmax(q kᵀ / √d + bias) v`. Both give the same result up to float
/// rounding; which is faster depends on the backend, so each tower's config picks its default
/// by measurement (BENCHMARKS.md): the text tower [`AttentionKernel::Matmul`] (the eager
/// PyTorch reference's order of operations), the image tower [`AttentionKernel::Fused`]
/// (burn-flex's generic ops: ViT-H-14 batch 1 4.36 s fused vs 4.92 s matmul; ndarray the other
/// way round). On `Flex` with f32 data and the `flex` feature, [`attend`] runs taiyi-nn's own
/// parallel kernel instead, whichever is named: the choice then matters for the other backends,
/// f16/bf16, and direct [`sdpa`] calls.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// Written out with burn tensor ops: two batched matmuls around an explicit softmax, like
    /// PyTorch's eager attention (`attn_implementation="eager"`).
    Matmul,
    /// `burn::tensor::module::attention`, the backend's fused scaled-dot-product op (flash
    /// attention on CubeCL backends with autotune); a mask is passed as an additive bias.
    Fused,
}

impl AttentionKernel {
    /// The kernel's name as benchmarks and logs print it: `matmul`, `fused`.
    pub fn name(&self) -> &'static str {
        match self {
            AttentionKernel::Matmul => "matmul",
            AttentionKernel::Fused => "fused",
        }
    }
}

/// Scaled dot-product attention with the scale `1 / √head_dim`.
///
/// `bias` is added to the scaled scores before the softmax (a padding mask is `0` for keys to
/// attend to and the dtype's most negative finite value for the others, as transformers builds
/// it); it broadcasts over heads and queries.
///
/// # Shapes
/// - `q`: `[batch, heads, queries, head_dim]`, `k` and `v`: `[batch, heads, keys, head_dim]`
/// - `bias`: `[batch, 1, 1, keys]` (or any shape that expands to `[batch, heads, queries, keys]`)
/// - returns `[batch, heads, queries, head_dim]`
pub fn sdpa<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    bias: Option<Tensor<B, 4>>,
    kernel: AttentionKernel,
) -> Tensor<B, 4> {
    let [batch, heads, queries, head_dim] = q.dims();
    let [_, _, keys, _] = k.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    match kernel {
        AttentionKernel::Matmul => {
            let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
            let scores = match bias {
                Some(bias) => scores + bias,
                None => scores,
            };
            softmax(scores, 3).matmul(v)
        }
        AttentionKernel::Fused => attention(
            q,
            k,
            v,
            None::<Tensor<B, 4, Bool>>,
            bias.map(|b| b.expand([batch, heads, queries, keys])),
            AttentionModuleOptions {
                scale: Some(scale),
                softcap: None,
                is_causal: false,
            },
        ),
    }
}

/// Split the width of token rows into heads.
///
/// # Shapes
/// `x`: `[batch, tokens, heads * head_dim]` → `[batch, heads, tokens, head_dim]`.
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, tokens, width] = x.dims();
    x.reshape([batch, tokens, heads, width / heads])
        .swap_dims(1, 2)
}

/// Split a fused `q, k, v` projection (open_clip's `in_proj`, columns q, k, v in that order)
/// into three views of token rows (no copy), ready for [`attend`].
///
/// # Shapes
/// `qkv`: `[batch, tokens, 3 * width]` → three `[batch, tokens, width]`.
pub fn split_qkv<B: Backend>(qkv: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>) {
    let [_, _, width3] = qkv.dims();
    let width = width3 / 3;
    let part = |i: usize| qkv.clone().narrow(2, i * width, width);
    (part(0), part(1), part(2))
}

/// Multi-head attention on token rows: [`split_heads`] of `q`, `k`, `v`, [`sdpa`] with
/// `kernel`, [`merge_heads`]. On burn's `Flex` backend with f32 data (feature `flex`) the heads
/// are read from and written to the rows in place, one rayon task per (item, head), whichever
/// `kernel` is named; every other backend and dtype takes `kernel`.
///
/// # Shapes
/// `q`: `[batch, queries, width]`, `k`, `v`: `[batch, keys, width]` (views such as
/// [`split_qkv`]'s are fine), `bias`: broadcastable to `[batch, heads, queries, keys]` →
/// `[batch, queries, width]`.
pub fn attend<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    bias: Option<Tensor<B, 4>>,
    kernel: AttentionKernel,
) -> Tensor<B, 3> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::attend_rows(&q, &k, &v, heads, bias.as_ref()) {
        return out;
    }
    let (q, k, v) = (
        split_heads(q, heads),
        split_heads(k, heads),
        split_heads(v, heads),
    );
    merge_heads(sdpa(q, k, v, bias, kernel))
}

/// Multi-head attention of packed sequences (no padding): rows `offsets[i] .. offsets[i + 1]`
/// of `q`, `k`, `v` are sequence `i`, which attends to its own rows only. A sequence's rows
/// are computed as if it were alone, whatever else is packed with it. On burn's `Flex` backend
/// with f32 data (feature `flex`) one rayon task per (sequence, head) reads the heads from the
/// rows in place ([`has_packed_kernel`]); elsewhere each sequence runs [`attend`] on its slice
/// of rows with `kernel` and the results are concatenated.
///
/// # Shapes
/// `q`, `k`, `v`: `[1, total, width]`, `offsets`: `n + 1` ascending row indices, `0` first and
/// `total` last → `[1, total, width]`.
pub fn attend_packed<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
    offsets: &[usize],
    kernel: AttentionKernel,
) -> Tensor<B, 3> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::attend_packed_rows(&q, &k, &v, heads, offsets) {
        return out;
    }
    let parts: Vec<Tensor<B, 3>> = offsets
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| {
            let rows = |x: &Tensor<B, 3>| x.clone().narrow(1, w[0], w[1] - w[0]);
            attend(rows(&q), rows(&k), rows(&v), heads, None, kernel)
        })
        .collect();
    if parts.is_empty() {
        return q;
    }
    Tensor::cat(parts, 1)
}

/// Whether [`attend_packed`] has a kernel of its own on backend `B` (burn's `Flex`, feature
/// `flex`): there a packed batch is one pass over all sequences; elsewhere it is one attention
/// call per sequence, and padding to the longest with a mask is usually faster on GPUs.
pub fn has_packed_kernel<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    return crate::flex::is_flex::<B>();
    #[cfg(not(feature = "flex"))]
    false
}

/// Merge heads back into token rows (the inverse of [`split_heads`]).
///
/// # Shapes
/// `x`: `[batch, heads, tokens, head_dim]` → `[batch, tokens, heads * head_dim]`.
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, tokens, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim])
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Tensor, TensorData, Tolerance};

    use super::*;

    type B = Flex;

    fn close<const D: usize>(got: Tensor<B, D>, want: Tensor<B, D>) {
        got.into_data()
            .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6));
    }

    /// One head, two queries, three keys with `v` rows 1, 2, 3 (times a column pattern). A
    /// zero query attends uniformly (mean of `v`); a key masked with the finite minimum gets
    /// no weight; a query aligned with a key of large dot product picks that key.
    #[test]
    fn known_values_for_both_kernels() {
        let device = Default::default();
        let q = Tensor::<B, 4>::from_floats([[[[0.0, 0.0], [40.0, 0.0]]]], &device);
        let k = Tensor::<B, 4>::from_floats([[[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]], &device);
        let v = Tensor::<B, 4>::from_floats([[[[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]]], &device);
        let bias = Tensor::<B, 4>::from_floats([[[[0.0, 0.0, f32::MIN]]]], &device);
        for kernel in [AttentionKernel::Matmul, AttentionKernel::Fused] {
            let plain = sdpa(q.clone(), k.clone(), v.clone(), None, kernel);
            // Query 1: scores 40/√2 ≈ 28.3 vs 0, 0: weight 1 - 2e-12 on key 0.
            let want = Tensor::<B, 4>::from_floats([[[[2.0, -2.0], [1.0, -1.0]]]], &device);
            close(plain, want);
            let masked = sdpa(q.clone(), k.clone(), v.clone(), Some(bias.clone()), kernel);
            let want = Tensor::<B, 4>::from_floats([[[[1.5, -1.5], [1.0, -1.0]]]], &device);
            close(masked, want);
        }
    }

    /// Backends without the packed kernel (here ndarray) run each sequence alone and
    /// concatenate: the same values as `attend` on each sequence's rows.
    #[test]
    fn packed_attention_without_the_kernel_is_attention_per_sequence() {
        use burn::backend::NdArray;
        use burn::tensor::Distribution;
        type N = NdArray;
        assert!(!has_packed_kernel::<N>());
        let device = Default::default();
        let random = || Tensor::<N, 3>::random([1, 9, 8], Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v) = (random(), random(), random());
        let got = attend_packed(
            q.clone(),
            k.clone(),
            v.clone(),
            2,
            &[0, 4, 9],
            AttentionKernel::Matmul,
        );
        for (start, len) in [(0, 4), (4, 5)] {
            let rows = |x: &Tensor<N, 3>| x.clone().narrow(1, start, len);
            let want = attend(
                rows(&q),
                rows(&k),
                rows(&v),
                2,
                None,
                AttentionKernel::Matmul,
            );
            rows(&got)
                .into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn heads_split_and_merge_by_width() {
        let device = Default::default();
        // [batch 1, tokens 2, width 4] with value = 10 * token + column.
        let x = Tensor::<B, 3>::from_floats(
            [[[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]]],
            &device,
        );
        let heads = split_heads(x.clone(), 2);
        assert_eq!(heads.dims(), [1, 2, 2, 2]);
        // Head 1 holds columns 2..4 of every token.
        let want = Tensor::<B, 4>::from_floats(
            [[[[0.0, 1.0], [10.0, 11.0]], [[2.0, 3.0], [12.0, 13.0]]]],
            &device,
        );
        close(heads.clone(), want);
        close(merge_heads(heads), x);
    }

    #[test]
    fn fused_projection_splits_into_q_k_v() {
        let device = Default::default();
        // width 2, 1 head: q = columns 0..2, k = 2..4, v = 4..6.
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let qkv = Tensor::<B, 3>::from_data(TensorData::new(values, [1, 2, 6]), &device);
        let (q, k, v) = split_qkv(qkv);
        let t = |a: [[f32; 2]; 2]| Tensor::<B, 2>::from_floats(a, &device).unsqueeze::<3>();
        close(q, t([[0.0, 1.0], [6.0, 7.0]]));
        close(k, t([[2.0, 3.0], [8.0, 9.0]]));
        close(v, t([[4.0, 5.0], [10.0, 11.0]]));
    }
}
