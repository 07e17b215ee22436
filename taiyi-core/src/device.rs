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

use crate::ClipError;

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
    /// 32-bit floats (the reference precision; the only one on CPU backends).
    #[default]
    F32,
    /// IEEE half precision (GPU backends).
    F16,
    /// bfloat16 (GPU backends).
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
    /// Run `task` on this device with `precision`, choosing the burn backend type at run time.
    ///
    /// Errors when the backend was not compiled in, when the precision is not offered by it,
    /// or when the device cannot be opened.
    pub fn run<T: BackendTask>(self, precision: Precision, task: T) -> Result<T::Output, T::Error> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if self != DeviceSpec::Cpu {
            configure_kernel_cache();
        }
        match self {
            DeviceSpec::Cpu => self.run_cpu(precision, task),
            DeviceSpec::Wgpu(index) => self.run_wgpu(index, precision, task),
            DeviceSpec::Cuda(index) => self.run_cuda(index, precision, task),
        }
    }

    fn unsupported(self, precision: Precision, reason: &str) -> ClipError {
        ClipError::BackendUnavailable {
            device: self.to_string(),
            precision: precision.to_string(),
            reason: reason.to_string(),
        }
    }

    #[cfg(any(feature = "flex", feature = "ndarray"))]
    fn run_cpu<T: BackendTask>(self, precision: Precision, task: T) -> Result<T::Output, T::Error> {
        match precision {
            Precision::F32 => task.run::<CpuBackend>(Default::default()),
            _ => Err(self
                .unsupported(
                    precision,
                    "the CPU backends run in f32 only; use --precision f32",
                )
                .into()),
        }
    }

    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    fn run_cpu<T: BackendTask>(
        self,
        precision: Precision,
        _task: T,
    ) -> Result<T::Output, T::Error> {
        Err(self
            .unsupported(
                precision,
                "no CPU backend compiled in (enable the `flex` or `ndarray` feature of taiyi-core)",
            )
            .into())
    }

    #[cfg(feature = "wgpu")]
    fn run_wgpu<T: BackendTask>(
        self,
        index: Option<usize>,
        precision: Precision,
        task: T,
    ) -> Result<T::Output, T::Error> {
        use burn::backend::wgpu::{Wgpu, WgpuDevice};
        let device = match index {
            None => WgpuDevice::DefaultDevice,
            Some(n) => WgpuDevice::DiscreteGpu(n),
        };
        match precision {
            Precision::F32 => self.open::<Wgpu<f32>, T>(precision, device, task),
            Precision::F16 => self.open::<Wgpu<burn::tensor::f16>, T>(precision, device, task),
            Precision::Bf16 => Err(self
                .unsupported(precision, "wgpu has no bf16 support; use f16 or f32")
                .into()),
        }
    }

    #[cfg(not(feature = "wgpu"))]
    fn run_wgpu<T: BackendTask>(
        self,
        _index: Option<usize>,
        precision: Precision,
        _task: T,
    ) -> Result<T::Output, T::Error> {
        Err(self
            .unsupported(
                precision,
                "this build has no wgpu backend (rebuild with the `wgpu` feature)",
            )
            .into())
    }

    #[cfg(feature = "cuda")]
    fn run_cuda<T: BackendTask>(
        self,
        index: usize,
        precision: Precision,
        task: T,
    ) -> Result<T::Output, T::Error> {
        use burn::backend::cuda::{Cuda, CudaDevice};
        cuda_driver(index).map_err(|reason| self.unsupported(precision, &reason))?;
        let device = CudaDevice::new(index);
        match precision {
            Precision::F32 => self.open::<Cuda<f32>, T>(precision, device, task),
            Precision::F16 => self.open::<Cuda<burn::tensor::f16>, T>(precision, device, task),
            Precision::Bf16 => self.open::<Cuda<burn::tensor::bf16>, T>(precision, device, task),
        }
    }

    /// Open `device` for backend `B` (the backend of the requested precision, so that the
    /// device's default float dtype — which burn fixes on first use, per device and not per
    /// backend type — is `B`'s), then run the task.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn open<B: Backend, T: BackendTask>(
        self,
        precision: Precision,
        device: B::Device,
        task: T,
    ) -> Result<T::Output, T::Error> {
        probe::<B>(&device).map_err(|reason| self.unsupported(precision, &reason))?;
        task.run::<B>(device)
    }

    #[cfg(not(feature = "cuda"))]
    fn run_cuda<T: BackendTask>(
        self,
        _index: usize,
        precision: Precision,
        _task: T,
    ) -> Result<T::Output, T::Error> {
        Err(self
            .unsupported(
                precision,
                "this build has no CUDA backend (rebuild with the `cuda` feature)",
            )
            .into())
    }
}

/// Where taiyi keeps the GPU backends' autotune results and compiled kernels:
/// `$TAIYI_CACHE_DIR`, else `taiyi` in the user cache directory (`$XDG_CACHE_HOME` or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), else
/// `.taiyi-cache` in the working directory.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("TAIYI_CACHE_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let user_cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").filter(|d| !d.is_empty())?;
            let home = std::path::PathBuf::from(home);
            Some(if cfg!(target_os = "macos") {
                home.join("Library/Caches")
            } else {
                home.join(".cache")
            })
        })
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(std::path::PathBuf::from));
    user_cache.map_or_else(|| ".taiyi-cache".into(), |d| d.join("taiyi"))
}

/// Point CubeCL's autotune and kernel caches at [`cache_dir`] (CubeCL's own default is the
/// `target/` folder of any Cargo project above the working directory, so the cache moved with
/// the directory a command ran from). Keeps everything else of CubeCL's configuration
/// (`cubecl.toml`, `CUBECL_*` variables); does nothing when the configuration was already
/// fixed by an earlier use of a GPU backend in this process.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn configure_kernel_cache() {
    use burn::cubecl::config::cache::CacheConfig;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut state = CubeClRuntimeConfig::storage().lock();
    if state.is_some() {
        return;
    }
    let config = catch_panic(CubeClRuntimeConfig::from_current_dir).unwrap_or_default();
    let mut config = config.override_from_env();
    let dir = cache_dir();
    config.autotune.cache = CacheConfig::File(dir.clone());
    config.compilation.cache = Some(CacheConfig::File(dir));
    *state = Some(std::sync::Arc::new(config));
}

/// Open the device and run one tiny op on it. GPU runtimes panic when no adapter or driver is
/// present; turn that into an error message.
///
/// The probe is the first use of the device in the process, so it also fixes the device's
/// default float dtype to `B::FloatElem` (burn keeps one default per device, shared by
/// `Wgpu<f32>` and `Wgpu<f16>`): host data (pixels, ids, masks) then becomes tensors of the
/// backend's precision. The towers also cast their inputs to their weights' dtype, so a device
/// first used at another precision still runs.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn probe<B: Backend>(device: &B::Device) -> Result<(), String> {
    let device = device.clone();
    catch_panic(move || {
        let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
        t.sum().into_scalar();
    })
    .map_err(|msg| format!("the device could not be opened: {msg}"))
}

/// Run `f`, turning a panic into its message (GPU runtimes report a missing device by panicking).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".to_string())
    })
}

/// Check that the CUDA driver library loads and that GPU `index` exists, before cubecl's
/// device thread would panic on it (which surfaced as an opaque `RecvError`).
#[cfg(feature = "cuda")]
fn cuda_driver(index: usize) -> Result<(), String> {
    use cudarc::driver::result;
    let init = catch_panic(result::init).map_err(|_| {
        "no CUDA driver: the NVIDIA driver library (libcuda.so) could not be loaded; \
         is an NVIDIA GPU with its driver installed?"
            .to_string()
    })?;
    init.map_err(|e| {
        format!("the CUDA driver could not be initialised ({e:?}): no usable NVIDIA GPU")
    })?;
    let count = result::device::get_count()
        .map_err(|e| format!("the CUDA driver could not count GPUs ({e:?})"))?;
    let count = usize::try_from(count).unwrap_or(0);
    if index >= count {
        return Err(format!(
            "no CUDA device {index}: the driver reports {count} GPU(s)"
        ));
    }
    Ok(())
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
