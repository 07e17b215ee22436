//! Choosing a backend and device at run time.
//!
//! Library users who know their backend at compile time simply pick a burn backend type
//! (`ClipModel::<burn::backend::Flex>::…`). Programs that let their user choose (like the
//! `taiyi` CLI) parse a [`DeviceSpec`] (`cpu`, `wgpu`, `wgpu:1`, `cuda`, `cuda:0`) and a
//! [`Precision`], then hand a [`BackendTask`] to [`DeviceSpec::run`], which monomorphises the
//! task for the backend that was compiled in. Asking for a backend that was not compiled in,
//! or whose device cannot be opened (no GPU, no driver), is an error, not a panic.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
#[cfg(feature = "cuda")]
use burn::tensor::bf16;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
use burn::tensor::f16;

use crate::ClipError;

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub use gpu::probe;
mod cache;
pub use cache::cache_dir;

/// Which device to run on, as a user writes it: `cpu`, `wgpu[:N]`, `cuda[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU backend compiled in (flex by default, ndarray with the `ndarray` feature only).
    #[default]
    Cpu,
    /// A wgpu adapter (Vulkan/Metal/DX12/GL); `None` = the default adapter, `Some(n)` = the
    /// n-th discrete GPU.
    Wgpu(Option<usize>),
    /// A CUDA GPU by index.
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = ClipError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ClipError::InvalidDevice {
            spec: s.to_string(),
            reason: "expected cpu, wgpu, wgpu:N, cuda or cuda:N".to_string(),
        };
        let lower = s.trim().to_ascii_lowercase();
        let (name, index) = match lower.split_once(':') {
            Some((n, i)) => (n, Some(i.parse::<usize>().map_err(|_| bad())?)),
            None => (lower.as_str(), None),
        };
        match (name, index) {
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("wgpu", i) => Ok(DeviceSpec::Wgpu(i)),
            ("cuda", i) => Ok(DeviceSpec::Cuda(i.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

/// Floating-point precision of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats (the reference precision).
    #[default]
    F32,
    /// IEEE half precision (GPU backends).
    F16,
    /// bfloat16: on GPUs the backend's float type; on the CPU (flex) the linear weights held
    /// in bf16 and multiplied by bf16 kernels with f32 accumulation, everything else in f32
    /// ([`DeviceSpec::dense_format`]).
    Bf16,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = ClipError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(ClipError::InvalidPrecision {
                spec: s.to_string(),
            }),
        }
    }
}

/// Work that is generic over the backend, run by [`DeviceSpec::run`] on the backend chosen at
/// run time.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// The task's error type; backend selection failures arrive as [`ClipError`].
    type Error: From<ClipError>;
    /// Run on backend `B` and `device`.
    fn run<B: Backend>(self, device: B::Device) -> Result<Self::Output, Self::Error>;
}

/// The CPU backend type compiled in: flex when the `flex` feature is on, else ndarray.
#[cfg(feature = "flex")]
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend type compiled in: flex when the `flex` feature is on, else ndarray.
#[cfg(all(not(feature = "flex"), feature = "ndarray"))]
pub type CpuBackend = burn::backend::NdArray;

impl DeviceSpec {
    /// How the towers hold their linear weights at `precision` on this device: prepacked bf16
    /// on the CPU at [`Precision::Bf16`] (the backend stays f32), else the backend's float type.
    pub fn dense_format(self, precision: Precision) -> taiyi_nn::DenseFormat {
        match (self, precision) {
            (DeviceSpec::Cpu, Precision::Bf16) => taiyi_nn::DenseFormat::PackedBf16,
            _ => taiyi_nn::DenseFormat::Float,
        }
    }

    /// Run `task` on this device with `precision`, choosing the burn backend type at run time.
    ///
    /// Errors when the backend was not compiled in, when the precision is not offered by it,
    /// or when the device cannot be opened.
    pub fn run<T: BackendTask>(self, precision: Precision, task: T) -> Result<T::Output, T::Error> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if self != DeviceSpec::Cpu {
            gpu::configure_kernel_cache()?;
        }
        #[cfg(feature = "wgpu")]
        use burn::backend::wgpu::{Wgpu, WgpuDevice};
        #[cfg(feature = "wgpu")]
        let wgpu_device = |index: Option<usize>| match index {
            None => WgpuDevice::DefaultDevice,
            Some(n) => WgpuDevice::DiscreteGpu(n),
        };
        #[cfg(feature = "cuda")]
        use burn::backend::cuda::{Cuda, CudaDevice};
        match (self, precision) {
            #[cfg(any(feature = "flex", feature = "ndarray"))]
            (DeviceSpec::Cpu, Precision::F32) => task.run::<CpuBackend>(Default::default()),
            // The backend stays f32: the task loads its towers with `dense_format`, which
            // reads the linear weights as bf16 and prepacks them for the bf16 kernels.
            #[cfg(feature = "flex")]
            (DeviceSpec::Cpu, Precision::Bf16) => {
                taiyi_nn::CpuKernel::selected()
                    .map_err(|e| self.unavailable(precision, &crate::error_chain(&e).join(": ")))?;
                task.run::<CpuBackend>(Default::default())
            }
            #[cfg(feature = "wgpu")]
            (DeviceSpec::Wgpu(index), Precision::F32) => {
                self.open::<Wgpu<f32>, T>(precision, wgpu_device(index), task)
            }
            #[cfg(feature = "wgpu")]
            (DeviceSpec::Wgpu(index), Precision::F16) => {
                self.open::<Wgpu<f16>, T>(precision, wgpu_device(index), task)
            }
            #[cfg(feature = "cuda")]
            (DeviceSpec::Cuda(index), Precision::F32) => {
                self.open::<Cuda<f32>, T>(precision, CudaDevice::new(index), task)
            }
            #[cfg(feature = "cuda")]
            (DeviceSpec::Cuda(index), Precision::F16) => {
                self.open::<Cuda<f16>, T>(precision, CudaDevice::new(index), task)
            }
            #[cfg(feature = "cuda")]
            (DeviceSpec::Cuda(index), Precision::Bf16) => {
                self.open::<Cuda<bf16>, T>(precision, CudaDevice::new(index), task)
            }
            _ => Err(self.unavailable(precision, self.why_unavailable()).into()),
        }
    }

    /// Why this build cannot run `self` at a precision the `match` of [`DeviceSpec::run`]
    /// has no arm for.
    fn why_unavailable(self) -> &'static str {
        match self {
            DeviceSpec::Cpu if cfg!(feature = "flex") => {
                "the CPU backend runs f32 or bf16; use --precision f32 or bf16"
            }
            DeviceSpec::Cpu if cfg!(feature = "ndarray") => {
                "the ndarray CPU backend runs in f32 only (bf16 needs the `flex` feature); use \
                 --precision f32"
            }
            DeviceSpec::Cpu => {
                "no CPU backend compiled in (enable the `flex` or `ndarray` feature of taiyi-core)"
            }
            DeviceSpec::Wgpu(_) if cfg!(feature = "wgpu") => {
                "wgpu has no bf16 support; use f16 or f32"
            }
            DeviceSpec::Wgpu(_) => {
                "this build has no wgpu backend (rebuild with the `wgpu` feature)"
            }
            DeviceSpec::Cuda(_) => {
                "this build has no CUDA backend (rebuild with the `cuda` feature)"
            }
        }
    }

    fn unavailable(self, precision: Precision, reason: &str) -> ClipError {
        ClipError::BackendUnavailable {
            device: self.to_string(),
            precision: precision.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Open `device` for backend `B` (the backend of the requested precision, so that the
    /// device's default float dtype — which burn fixes on first use, per device and not per
    /// backend type — is `B`'s), then run the task. CUDA: the driver and the GPU index are
    /// checked first, before cubecl's device thread would panic on them.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn open<B: Backend, T: BackendTask>(
        self,
        precision: Precision,
        device: B::Device,
        task: T,
    ) -> Result<T::Output, T::Error> {
        #[cfg(feature = "cuda")]
        if let DeviceSpec::Cuda(index) = self {
            gpu::cuda_driver(index).map_err(|reason| self.unavailable(precision, &reason))?;
        }
        gpu::probe::<B>(&device).map_err(|reason| self.unavailable(precision, &reason))?;
        task.run::<B>(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_specs() -> Result<(), ClipError> {
        assert_eq!("cpu".parse::<DeviceSpec>()?, DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>()?, DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>()?, DeviceSpec::Cuda(3));
        assert_eq!("wgpu".parse::<DeviceSpec>()?, DeviceSpec::Wgpu(None));
        assert_eq!("wgpu:1".parse::<DeviceSpec>()?, DeviceSpec::Wgpu(Some(1)));
        for bad in ["gpu", "cuda:x", "cpu:1", "", "metal"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad} should not parse");
        }
        assert_eq!("bf16".parse::<Precision>()?, Precision::Bf16);
        assert!("f8".parse::<Precision>().is_err());
        Ok(())
    }

    struct Sum;
    impl BackendTask for Sum {
        type Output = f32;
        type Error = ClipError;
        fn run<B: Backend>(self, device: B::Device) -> Result<f32, ClipError> {
            let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.5], &device);
            Ok(t.sum().into_scalar().elem())
        }
    }
    use burn::tensor::ElementConversion;

    #[test]
    fn runs_a_task_on_the_cpu() -> Result<(), ClipError> {
        assert_eq!(DeviceSpec::Cpu.run(Precision::F32, Sum)?, 3.5);
        assert!(DeviceSpec::Cpu.run(Precision::F16, Sum).is_err());
        // bf16 on the CPU: the f32 backend, the linear weights prepacked by the loaders.
        #[cfg(feature = "flex")]
        assert_eq!(DeviceSpec::Cpu.run(Precision::Bf16, Sum)?, 3.5);
        assert_eq!(
            DeviceSpec::Cpu.dense_format(Precision::Bf16),
            taiyi_nn::DenseFormat::PackedBf16
        );
        assert_eq!(
            DeviceSpec::Cpu.dense_format(Precision::F32),
            taiyi_nn::DenseFormat::Float
        );
        assert_eq!(
            DeviceSpec::Cuda(0).dense_format(Precision::Bf16),
            taiyi_nn::DenseFormat::Float
        );
        Ok(())
    }

    /// Without an NVIDIA driver or GPU (CI), asking for CUDA is a clear error, not a panic or
    /// an opaque `RecvError`; with one, the task runs. A GPU index past the end is an error.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_without_a_gpu_is_a_clear_error() {
        match DeviceSpec::Cuda(0).run(Precision::F32, Sum) {
            Ok(v) => assert_eq!(v, 3.5),
            Err(e) => {
                let msg = e.to_string();
                assert!(matches!(e, ClipError::BackendUnavailable { .. }), "{msg}");
                assert!(msg.contains("CUDA"), "{msg}");
                assert!(!msg.contains("RecvError"), "{msg}");
            }
        }
        let err = DeviceSpec::Cuda(999).run(Precision::F32, Sum);
        assert!(matches!(err, Err(ClipError::BackendUnavailable { .. })));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_is_an_error() {
        let err = DeviceSpec::Cuda(0).run(Precision::F32, Sum);
        assert!(matches!(err, Err(ClipError::BackendUnavailable { .. })));
    }
}
