//! The image files of a folder, as `taiyi embed-image --images-dir` and the examples embed them.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::ClipError;

/// File extensions taken as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// How [`image_files`] walks a folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Also take hidden files and folders (names starting with `.`, such as macOS `._x.jpg`
    /// resource forks, which are not images). Default: skipped.
    pub include_hidden: bool,
}

/// Every image file under `dir` (recursive), sorted by path.
///
/// - Symbolic links are followed, but each folder is entered once (by device and inode), so a
///   link cycle neither repeats images nor hangs.
/// - Only regular files are taken: a FIFO or device node named `x.png` is skipped (reading one
///   would block or never end).
/// - Hidden entries are skipped unless [`WalkOptions::include_hidden`].
///
/// # Errors
/// [`ClipError::Io`] naming the folder that cannot be read.
pub fn image_files(dir: &Path, options: WalkOptions) -> Result<Vec<PathBuf>, ClipError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClipError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::metadata(&d).map_err(io(&d))?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let mut entries = std::fs::read_dir(&d)
            .map_err(io(&d))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(&d))?;
        // Sorted, so that which of two links to one folder is walked does not depend on the
        // order the file system lists them in (the later one is pushed first, popped last).
        entries.sort_by(|a, b| b.cmp(a));
        for p in entries {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
            if hidden && !options.include_hidden {
                continue;
            }
            // Follows links; a dangling link or an unreadable entry is not an image.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && is_image_name(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`].
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
}
