//! Opening a GPU device without letting its runtime panic through, and its kernel caches.

use burn::tensor::backend::Backend;

use super::cache::cache_dir;

/// Point CubeCL's autotune and kernel caches at [`cache_dir`] (CubeCL's own default is the
/// `target/` folder of any Cargo project above the working directory, so the cache moved with
/// the directory a command ran from). Keeps everything else of CubeCL's configuration
/// (`cubecl.toml`, `CUBECL_*` variables); does nothing when the configuration was already
/// fixed by an earlier use of a GPU backend in this process.
///
/// # Errors
/// [`crate::ClipError::NoCacheDir`] when the environment names no cache folder.
pub(super) fn configure_kernel_cache() -> Result<(), crate::ClipError> {
    use burn::cubecl::config::cache::CacheConfig;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut state = CubeClRuntimeConfig::storage().lock();
    if state.is_some() {
        return Ok(());
    }
    let config = catch_panic(CubeClRuntimeConfig::from_current_dir).unwrap_or_default();
    let mut config = config.override_from_env();
    let dir = cache_dir()?;
    config.autotune.cache = CacheConfig::File(dir.clone());
    config.compilation.cache = Some(CacheConfig::File(dir));
    *state = Some(std::sync::Arc::new(config));
    Ok(())
}

/// Open the device and run one tiny op on it. GPU runtimes panic when no adapter or driver is
/// present; turn that into an error message.
///
/// The probe is the first use of the device in the process, so it also fixes the device's
/// default float dtype to `B::FloatElem` (burn keeps one default per device, shared by
/// `Wgpu<f32>` and `Wgpu<f16>`): host data (pixels, ids, masks) then becomes tensors of the
/// backend's precision. The towers also cast their inputs to their weights' dtype, so a device
/// first used at another precision still runs.
pub fn probe<B: Backend>(device: &B::Device) -> Result<(), String> {
    let device = device.clone();
    catch_panic(move || {
        let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
        t.sum().into_scalar();
    })
    .map_err(|msg| format!("the device could not be opened: {msg}"))
}

/// Serialises the swaps of the process-wide panic hook in [`catch_panic`]: two threads probing
/// at once would otherwise restore each other's silent hook and lose the user's.
static PANIC_HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run `f`, turning a panic into its message (GPU runtimes report a missing device by
/// panicking). The panic hook is silenced meanwhile, one caller at a time.
fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let _guard = PANIC_HOOK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
pub(super) fn cuda_driver(index: usize) -> Result<(), String> {
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
