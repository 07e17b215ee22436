//! Where the GPU backends keep their caches.

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
