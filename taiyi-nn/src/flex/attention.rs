//! Multi-head attention read straight from token rows, one rayon task per (image/text, head).

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::elementwise::from_vec;
use super::gemm::{Mat, matmul_into};

/// Where row `t`, column `c` of item `b` of a `[batch, tokens, width]` view lives.
#[derive(Clone, Copy)]
struct Rows {
    batch_stride: usize,
    token_stride: usize,
    offset: usize,
}

impl Rows {
    /// The view's strides when its columns are adjacent and no stride is negative.
    fn of(x: &FlexTensor) -> Option<Self> {
        let layout = x.layout();
        match *layout.strides() {
            [b, t, 1] if b >= 0 && t >= 0 => Some(Self {
                batch_stride: b as usize,
                token_stride: t as usize,
                offset: layout.start_offset(),
            }),
            _ => None,
        }
    }

    /// Element offset of token row `t` of item `b`.
    fn row(&self, b: usize, t: usize) -> usize {
        self.offset + b * self.batch_stride + t * self.token_stride
    }

    /// Head `h` (columns `h·d .. (h+1)·d`) of the `tokens` rows starting at element `start`
    /// of `x` as a `[tokens, d]` matrix, or its transpose `[d, tokens]`.
    fn head<'a>(
        &self,
        x: &'a FlexTensor,
        start: usize,
        h: usize,
        tokens: usize,
        d: usize,
        transposed: bool,
    ) -> Mat<'a> {
        let (rows, cols, row_stride, col_stride) = if transposed {
            (d, tokens, 1, self.token_stride)
        } else {
            (tokens, d, self.token_stride, 1)
        };
        Mat {
            data: x.storage::<f32>(),
            offset: start + h * d,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }
}

/// One sequence's attention: its first query and key rows (row indices of the views, item 0
/// of a batch or row `start` of a packed matrix), how many of each, where its output rows
/// start, and which item of the bias it reads.
#[derive(Clone, Copy)]
struct Item {
    q_row: (usize, usize),
    kv_row: (usize, usize),
    queries: usize,
    keys: usize,
    out_row: usize,
    bias_item: usize,
}

/// An additive bias `[batch | 1, heads | 1, queries | 1, keys]`, contiguous, with the step of
/// each broadcast dimension (0 where it has size 1).
struct Bias {
    values: FlexTensor,
    steps: [usize; 3],
    keys: usize,
}

impl Bias {
    fn of(
        bias: FlexTensor,
        batch: usize,
        heads: usize,
        queries: usize,
        keys: usize,
    ) -> Option<Self> {
        let [b, h, q, k] = match *bias.layout().shape().as_slice() {
            [b, h, q, k] => [b, h, q, k],
            _ => return None,
        };
        let fits = |n: usize, full: usize| n == 1 || n == full;
        if k != keys || !fits(b, batch) || !fits(h, heads) || !fits(q, queries) {
            return None;
        }
        let step = |n: usize, stride: usize| if n == 1 { 0 } else { stride };
        Some(Self {
            values: bias.to_contiguous(),
            steps: [step(b, h * q * k), step(h, q * k), step(q, k)],
            keys,
        })
    }

    fn row(&self, b: usize, h: usize, i: usize) -> &[f32] {
        let start = b * self.steps[0] + h * self.steps[1] + i * self.steps[2];
        &self.values.storage::<f32>()[start..start + self.keys]
    }
}

/// `softmax(q kᵀ · scale + bias) v` per head, heads read from and written to token rows.
///
/// Returns `None` (touching nothing) when a view's columns are not adjacent or the bias does not
/// broadcast; the caller then takes the generic path.
///
/// # Shapes
/// `q`: `[batch, queries, width]`, `k`, `v`: `[batch, keys, width]` (any non-negative strides,
/// adjacent columns), `bias`: `[batch | 1, heads | 1, queries | 1, keys]` →
/// `[batch, queries, width]` (contiguous).
pub(crate) fn attend(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    heads: usize,
    bias: Option<FlexTensor>,
) -> Option<FlexTensor> {
    let [batch, queries, width] = dims3(q)?;
    let [_, keys, _] = dims3(k)?;
    if dims3(k)? != [batch, keys, width] || dims3(v)? != [batch, keys, width] {
        return None;
    }
    let bias = match bias {
        Some(b) => Some(Bias::of(b, batch, heads, queries, keys)?),
        None => None,
    };
    let items: Vec<Item> = (0..batch)
        .map(|b| Item {
            q_row: (b, 0),
            kv_row: (b, 0),
            queries,
            keys,
            out_row: b * queries,
            bias_item: b,
        })
        .collect();
    let out = run(q, k, v, heads, &items, batch * queries, bias.as_ref())?;
    Some(from_vec(out, vec![batch, queries, width]))
}

/// Attention of packed sequences: rows `offsets[i] .. offsets[i + 1]` of `q`, `k`, `v` are
/// sequence `i`, and each sequence attends to its own rows only (no mask, no padding). Every
/// sequence's arithmetic is the one it gets alone: the same products over the same rows.
///
/// Returns `None` (touching nothing) when a view's columns are not adjacent or the offsets do
/// not cover the rows.
///
/// # Shapes
/// `q`, `k`, `v`: `[1, total, width]` (adjacent columns), `offsets`: ascending, `0` first,
/// `total` last → `[1, total, width]` (contiguous).
pub(crate) fn attend_packed(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    heads: usize,
    offsets: &[usize],
) -> Option<FlexTensor> {
    let [one, total, width] = dims3(q)?;
    if one != 1
        || dims3(k)? != [1, total, width]
        || dims3(v)? != [1, total, width]
        || offsets.first() != Some(&0)
        || offsets.last() != Some(&total)
        || offsets.windows(2).any(|w| w[0] > w[1])
    {
        return None;
    }
    let items: Vec<Item> = offsets
        .windows(2)
        .map(|w| Item {
            q_row: (0, w[0]),
            kv_row: (0, w[0]),
            queries: w[1] - w[0],
            keys: w[1] - w[0],
            out_row: w[0],
            bias_item: 0,
        })
        .collect();
    let out = run(q, k, v, heads, &items, total, None)?;
    Some(from_vec(out, vec![1, total, width]))
}

/// The attention of every item, one rayon task per (item, head), written into a contiguous
/// `[out_rows, width]` buffer.
fn run(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    heads: usize,
    items: &[Item],
    out_rows: usize,
    bias: Option<&Bias>,
) -> Option<Vec<f32>> {
    let [_, _, width] = dims3(q)?;
    let (qr, kr, vr) = (Rows::of(q)?, Rows::of(k)?, Rows::of(v)?);
    if heads == 0 || width % heads != 0 {
        return None;
    }
    let d = width / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let contexts: Vec<Vec<f32>> = (0..items.len() * heads)
        .into_par_iter()
        .map(|ih| {
            let (item, h) = (items[ih / heads], ih % heads);
            let (queries, keys) = (item.queries, item.keys);
            let (qb, qt) = item.q_row;
            let (kb, kt) = item.kv_row;
            let mut scores = vec![0.0f32; queries * keys];
            matmul_into(
                &mut scores,
                qr.head(q, qr.row(qb, qt), h, queries, d, false),
                kr.head(k, kr.row(kb, kt), h, keys, d, true),
            )?;
            pulp::Arch::new().dispatch(Softmax {
                scores: &mut scores,
                keys,
                scale,
                bias: |i| bias.map(|bias| bias.row(item.bias_item, h, i)),
            });
            let weights = Mat {
                data: &scores,
                offset: 0,
                rows: queries,
                cols: keys,
                row_stride: keys,
                col_stride: 1,
            };
            let mut context = vec![0.0f32; queries * d];
            matmul_into(
                &mut context,
                weights,
                vr.head(v, vr.row(kb, kt), h, keys, d, false),
            )?;
            Some(context)
        })
        .collect::<Option<_>>()?;
    // Which item each output row belongs to (items cover disjoint row ranges).
    let mut owner = vec![usize::MAX; out_rows];
    for (i, item) in items.iter().enumerate() {
        owner
            .get_mut(item.out_row..item.out_row + item.queries)?
            .fill(i);
    }
    let mut out = vec![0.0f32; out_rows * width];
    out.par_chunks_mut(width)
        .zip(owner.par_iter())
        .enumerate()
        .for_each(|(row, (dst, &i))| {
            let Some(item) = items.get(i) else { return };
            let r = row - item.out_row;
            for (h, cols) in dst.chunks_exact_mut(d).enumerate() {
                cols.copy_from_slice(&contexts[i * heads + h][r * d..(r + 1) * d]);
            }
        });
    Some(out)
}

/// The dimensions of a rank-3 tensor.
fn dims3(x: &FlexTensor) -> Option<[usize; 3]> {
    match *x.layout().shape().as_slice() {
        [a, b, c] => Some([a, b, c]),
        _ => None,
    }
}

/// Every row of `scores` (rows of `keys`) → attention weights, in place, as a pulp operation:
/// the loops are compiled for the running CPU's widest vectors (as GELU's, `gelu.rs`).
struct Softmax<'a, F> {
    scores: &'a mut [f32],
    keys: usize,
    scale: f32,
    /// The additive bias of row `i`, if any.
    bias: F,
}

impl<'b, F: Fn(usize) -> Option<&'b [f32]>> pulp::WithSimd for Softmax<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        if self.keys == 0 {
            return;
        }
        for (i, row) in self.scores.chunks_exact_mut(self.keys).enumerate() {
            softmax_row(row, self.scale, (self.bias)(i));
        }
    }
}

/// Lanes of the sum: independent partial sums the compiler keeps in one vector register.
const LANES: usize = 16;

/// One row of scores → attention weights, in place: `softmax(row · scale + bias)`, with
/// `exp` in a branch-free form (Cephes', within 2 ulp; `gelu.rs`) and the sum in 16 lanes, so
/// that every loop vectorises. Scores more than 87 below the row's maximum weigh exactly 0 (as
/// a masked key must), NaN stays NaN.
#[inline(always)]
fn softmax_row(row: &mut [f32], scale: f32, bias: Option<&[f32]>) {
    let mut max = f32::NEG_INFINITY;
    match bias {
        Some(bias) => {
            for (x, b) in row.iter_mut().zip(bias) {
                *x = *x * scale + b;
                max = max.max(*x);
            }
        }
        None => {
            for x in row.iter_mut() {
                *x *= scale;
                max = max.max(*x);
            }
        }
    }
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (x, lane) in chunk.iter_mut().zip(&mut lanes) {
            *x = exp_shifted(*x - max);
            *lane += *x;
        }
    }
    let mut sum = 0.0f32;
    for x in chunks.into_remainder() {
        *x = exp_shifted(*x - max);
        sum += *x;
    }
    let sum = lanes.iter().sum::<f32>() + sum;
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `exp(x)` for `x ≤ 0` (a score minus its row's maximum): 0 below −87, NaN for NaN.
#[inline(always)]
fn exp_shifted(x: f32) -> f32 {
    let e = super::gelu::exp_nonpositive(x);
    let e = if x < -87.0 { 0.0 } else { e };
    if x.is_nan() { x } else { e }
}
