//! The transformer pieces that both Taiyi towers (the BERT text tower in `taiyi-text`, the
//! open_clip ViT in `taiyi-vision`) share, so each idea has one home:
//!
//! - [`AttentionKernel`] and [`sdpa`]: how `softmax(q kᵀ · scale + bias) v` is computed;
//!   [`split_heads`], [`split_qkv`] and [`merge_heads`] move between token rows and heads.
//! - [`Dense`]: the linear layer (burn `Linear`'s parameters), f32 or with its weight prepacked
//!   in bf16 for the CPU kernels ([`bf16`]: the layout and the kernel chosen by CPU features);
//!   [`linear_rows`] applies it over `[batch, tokens, in]` as one gemm.
//! - [`Activation`]: the MLP activations (exact GELU, QuickGELU).
//!
//! The towers keep their checkpoint-shaped modules (field names follow the checkpoint keys);
//! only these functions are shared. burn-nn's `MultiHeadAttention` is not used: it masks with
//! -1e4 instead of the dtype's minimum, carries dropout and has no fused `in_proj`.

mod activation;
mod attention;
pub mod bf16;
mod dense;
#[cfg(feature = "flex")]
mod flex;
mod linear;

pub use activation::Activation;
pub use attention::{
    AttentionKernel, attend, attend_packed, has_packed_kernel, merge_heads, sdpa, split_heads,
    split_qkv,
};
pub use bf16::{CpuKernel, KernelError};
pub use dense::{Dense, DenseConfig, DenseFormat};
pub use linear::{linear_rows, linear_rows_then};
