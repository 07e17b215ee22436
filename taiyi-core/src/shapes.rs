//! Shape buckets: pad batches to a few fixed shapes so that GPU backends compile and autotune
//! their kernels once per bucket instead of once per input shape.
//!
//! CubeCL backends (wgpu, CUDA) specialise and autotune kernels by tensor shape: without
//! buckets every new text length or batch size compiles new kernels on the first call. With
//! [`ShapeBuckets::GPU`] a text of 23 tokens runs padded (and masked) to 32, a batch of 5
//! images runs as 8 (the extra rows are dropped from the result). Padding never changes a
//! result beyond float rounding: masked positions contribute exactly zero attention and rows of
//! a batch are independent. On CPU backends buckets only cost time, so they are off by default.

/// How sequence lengths and batch sizes are rounded up before a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeBuckets {
    /// Text lengths are rounded up to a multiple of this (capped at the model's positions).
    /// Applies to [`TextMode::Masked`](taiyi_text::TextMode::Masked) only: the other modes fix
    /// their padding by definition (77, or the longest text of the call). 1 = no rounding.
    pub seq_multiple: usize,
    /// Batches are rounded up to a power of two (capped at the encoder's batch size).
    pub batch_pow2: bool,
}

impl ShapeBuckets {
    /// No padding beyond what the text mode requires: every shape runs as it comes (the CPU
    /// default).
    pub const NONE: Self = Self {
        seq_multiple: 1,
        batch_pow2: false,
    };
    /// Lengths in multiples of 16, batches in powers of two (the GPU default).
    pub const GPU: Self = Self {
        seq_multiple: 16,
        batch_pow2: true,
    };

    /// Whether this rounds anything.
    pub fn is_enabled(&self) -> bool {
        self.seq_multiple > 1 || self.batch_pow2
    }

    /// The padded length for a longest text of `len` tokens, at most `max` (never below `len`).
    pub fn seq(&self, len: usize, max: usize) -> usize {
        let m = self.seq_multiple.max(1);
        len.div_ceil(m).saturating_mul(m).min(max).max(len)
    }

    /// The padded row count for `n` rows, at most `max_batch` (never below `n`).
    pub fn batch(&self, n: usize, max_batch: usize) -> usize {
        if self.batch_pow2 {
            n.checked_next_power_of_two()
                .unwrap_or(n)
                .min(max_batch)
                .max(n)
        } else {
            n
        }
    }

    /// Every padded length up to `max_len` (what [`ShapeBuckets::seq`] can return for texts of
    /// 2..=`max_len` tokens): the shapes a warm-up has to run.
    pub fn seq_buckets(&self, max_len: usize) -> Vec<usize> {
        let mut out: Vec<usize> = (2..=max_len.max(2))
            .map(|len| self.seq(len, max_len.max(2)))
            .collect();
        out.dedup();
        out
    }

    /// Every padded batch size for batches of 1..=`max_batch` rows.
    pub fn batch_buckets(&self, max_batch: usize) -> Vec<usize> {
        let mut out: Vec<usize> = (1..=max_batch.max(1))
            .map(|n| self.batch(n, max_batch.max(1)))
            .collect();
        out.dedup();
        out
    }
}

impl Default for ShapeBuckets {
    fn default() -> Self {
        Self::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_lengths_and_batches() {
        let b = ShapeBuckets::GPU;
        assert_eq!(b.seq(2, 512), 16);
        assert_eq!(b.seq(16, 512), 16);
        assert_eq!(b.seq(17, 512), 32);
        assert_eq!(b.seq(510, 512), 512);
        assert_eq!(b.seq(20, 20), 20, "capped at the model's positions");
        assert_eq!(b.batch(1, 64), 1);
        assert_eq!(b.batch(5, 64), 8);
        assert_eq!(b.batch(33, 48), 48, "capped at the batch size");
        assert_eq!(ShapeBuckets::NONE.seq(23, 512), 23);
        assert_eq!(ShapeBuckets::NONE.batch(5, 64), 5);
    }

    #[test]
    fn lists_the_buckets() {
        let b = ShapeBuckets::GPU;
        assert_eq!(b.seq_buckets(64), vec![16, 32, 48, 64]);
        assert_eq!(b.seq_buckets(40), vec![16, 32, 40]);
        assert_eq!(b.batch_buckets(32), vec![1, 2, 4, 8, 16, 32]);
        assert_eq!(b.batch_buckets(24), vec![1, 2, 4, 8, 16, 24]);
        assert_eq!(ShapeBuckets::NONE.batch_buckets(3), vec![1, 2, 3]);
        // 20 different lengths fall into 2 buckets.
        let lens: std::collections::BTreeSet<usize> = (5..25).map(|l| b.seq(l, 512)).collect();
        assert_eq!(lens.len(), 2);
    }
}
