//! Where the GPU backends keep their caches.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::ClipError;

/// The environment variables that name the kernel cache, in order of precedence (macOS:
/// `HOME` gives `~/Library/Caches`; Windows: `LOCALAPPDATA`).
const KERNEL_CACHE_VARIABLES: &str = "TAIYI_CACHE_DIR, XDG_CACHE_HOME, HOME, LOCALAPPDATA";

/// Where taiyi keeps the GPU backends' autotune results and compiled kernels:
/// `$TAIYI_CACHE_DIR`, else `taiyi` in the user cache directory (`$XDG_CACHE_HOME` or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows). Empty
/// values count as unset.
///
/// # Errors
/// [`ClipError::NoCacheDir`] when none of `TAIYI_CACHE_DIR`, `XDG_CACHE_HOME`, `HOME`,
/// `LOCALAPPDATA` is set (the working directory is never used instead).
pub fn cache_dir() -> Result<PathBuf, ClipError> {
    let var = |name: &str| std::env::var_os(name);
    kernel_cache_dir(
        var("TAIYI_CACHE_DIR").as_deref(),
        var("XDG_CACHE_HOME").as_deref(),
        var("HOME").as_deref(),
        var("LOCALAPPDATA").as_deref(),
    )
    .ok_or(ClipError::NoCacheDir {
        what: "GPU kernel cache",
        variables: KERNEL_CACHE_VARIABLES,
    })
}

/// [`cache_dir`] from the variables' values.
fn kernel_cache_dir(
    taiyi_cache_dir: Option<&OsStr>,
    xdg_cache_home: Option<&OsStr>,
    home: Option<&OsStr>,
    local_app_data: Option<&OsStr>,
) -> Option<PathBuf> {
    let set = |v: Option<&OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(taiyi_cache_dir) {
        return Some(dir);
    }
    let user_cache = set(xdg_cache_home)
        .or_else(|| {
            set(home).map(|home| {
                if cfg!(target_os = "macos") {
                    home.join("Library/Caches")
                } else {
                    home.join(".cache")
                }
            })
        })
        .or_else(|| set(local_app_data));
    user_cache.map(|d| d.join("taiyi"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_variable_means_no_kernel_cache() {
        let (t, h) = (OsStr::new("/t"), OsStr::new("/h"));
        assert_eq!(
            kernel_cache_dir(Some(t), None, Some(h), None),
            Some(t.into())
        );
        assert_eq!(
            kernel_cache_dir(Some(OsStr::new("")), Some(OsStr::new("/x")), Some(h), None),
            Some(PathBuf::from("/x/taiyi"))
        );
        assert_eq!(kernel_cache_dir(None, None, None, None), None);
        assert_eq!(
            kernel_cache_dir(None, Some(OsStr::new("")), Some(OsStr::new("")), None),
            None
        );
    }
}
