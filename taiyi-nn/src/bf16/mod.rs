//! bf16 weights for the CPU: the packed layout ([`PackedBf16`]) and the choice of matmul kernel
//! ([`CpuKernel`]), made once per process from the CPU's features.
//!
//! A [`crate::Dense`] layer prepacked for bf16 multiplies f32 rows by its bf16 weight: the rows
//! are rounded to bf16 (round to nearest even, as PyTorch's `.to(torch.bfloat16)`), every product
//! is accumulated in f32, the output is f32. The kernels (feature `flex`) live in
//! `crate::flex::bf16`.

mod pack;

use std::fmt;
use std::sync::OnceLock;

pub use pack::{Line, PANEL, PackedBf16, bf16_bits, bf16_value};

/// The environment variable that forces a kernel: `avx512bf16`, `amx` or `f32`.
pub const KERNEL_ENV: &str = "TAIYI_CPU_KERNEL";

/// The matmul kernel of bf16-prepacked layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuKernel {
    /// `vdpbf16ps`: 32 bf16 products per instruction, f32 accumulation (AMD Zen 4/5, Intel
    /// Cooper Lake, Sapphire Rapids and later).
    Avx512Bf16,
    /// Every CPU: the bf16 weight is widened to f32 and multiplied by the f32 gemm (exact
    /// products of the bf16-rounded inputs, f32 accumulation; correct, not faster than f32).
    F32,
}

impl CpuKernel {
    /// The name `TAIYI_CPU_KERNEL` takes and reports print.
    pub fn name(self) -> &'static str {
        match self {
            CpuKernel::Avx512Bf16 => "avx512bf16",
            CpuKernel::F32 => "f32",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            CpuKernel::Avx512Bf16 => avx512bf16_detected(),
            CpuKernel::F32 => true,
        }
    }

    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        if CpuKernel::Avx512Bf16.supported() {
            CpuKernel::Avx512Bf16
        } else {
            CpuKernel::F32
        }
    }

    /// The kernel for `forced` (a `TAIYI_CPU_KERNEL` value; `None` or empty: detect).
    ///
    /// # Errors
    /// An unknown name, `amx` (no AMX kernel in this build), or a kernel this CPU lacks.
    pub fn choose(forced: Option<&str>) -> Result<Self, KernelError> {
        let name = match forced.map(str::trim) {
            None | Some("") => return Ok(Self::detect()),
            Some(name) => name.to_ascii_lowercase(),
        };
        let kernel = match name.as_str() {
            "avx512bf16" | "avx512_bf16" => CpuKernel::Avx512Bf16,
            "f32" => CpuKernel::F32,
            "amx" => {
                return Err(KernelError::Unavailable {
                    kernel: name,
                    reason: "this build has no AMX kernel (avx512bf16 runs on AMX CPUs)",
                });
            }
            _ => return Err(KernelError::Unknown { name }),
        };
        if kernel.supported() {
            Ok(kernel)
        } else {
            Err(KernelError::Unavailable {
                kernel: name,
                reason: "this CPU lacks the instructions (no avx512_bf16 in its flags)",
            })
        }
    }

    /// The process's kernel: [`CpuKernel::choose`] with `TAIYI_CPU_KERNEL`, read once.
    ///
    /// # Errors
    /// As [`CpuKernel::choose`], every time it is asked.
    pub fn selected() -> Result<Self, KernelError> {
        static SELECTED: OnceLock<Result<CpuKernel, KernelError>> = OnceLock::new();
        SELECTED
            .get_or_init(|| CpuKernel::choose(std::env::var(KERNEL_ENV).ok().as_deref()))
            .clone()
    }
}

impl fmt::Display for CpuKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bf16 kernel that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// `TAIYI_CPU_KERNEL` names no kernel.
    #[error("{KERNEL_ENV}={name:?} names no kernel (expected avx512bf16, amx or f32)")]
    Unknown {
        /// The value given.
        name: String,
    },
    /// The kernel exists by name but cannot run here.
    #[error("{KERNEL_ENV}={kernel}: {reason}")]
    Unavailable {
        /// The kernel asked for.
        kernel: String,
        /// Why it cannot run.
        reason: &'static str,
    },
    /// bf16 prepacking needs the `Flex` CPU backend.
    #[error("bf16 weights are prepacked on burn's Flex CPU backend only")]
    NotFlex,
    /// A weight that is not a 2-D float tensor of the layer's shape.
    #[error("the layer's weight cannot be packed: {what}")]
    BadWeight {
        /// What is wrong with it.
        what: String,
    },
}

#[cfg(target_arch = "x86_64")]
fn avx512bf16_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512bf16_detected() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::{CpuKernel, KernelError};

    #[test]
    fn choice_by_name() {
        assert_eq!(CpuKernel::choose(Some("f32")), Ok(CpuKernel::F32));
        assert_eq!(CpuKernel::choose(None), Ok(CpuKernel::detect()));
        assert_eq!(CpuKernel::choose(Some(" ")), Ok(CpuKernel::detect()));
        assert!(matches!(
            CpuKernel::choose(Some("fast")),
            Err(KernelError::Unknown { .. })
        ));
        assert!(matches!(
            CpuKernel::choose(Some("amx")),
            Err(KernelError::Unavailable { .. })
        ));
        let avx = CpuKernel::choose(Some("AVX512BF16"));
        if CpuKernel::Avx512Bf16.supported() {
            assert_eq!(avx, Ok(CpuKernel::Avx512Bf16));
        } else {
            assert!(matches!(avx, Err(KernelError::Unavailable { .. })));
        }
    }
}
