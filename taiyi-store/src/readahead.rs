//! Reading ahead of a load: the disk streams the tensors a module will take into the page
//! cache while the load copies, transposes and checks the ones before.
//!
//! A load takes tensors in the module's order, which is not the file's (`resblocks.2` follows
//! `resblocks.19` in a sorted safetensors file), and each read waited for the disk while the
//! CPU idled, then the CPU worked while the disk idled: a cold load was the sum of the two.
//! Here a background thread asks the kernel (`posix_fadvise(WILLNEED)`, no copy, no user
//! memory) for every byte range the load will read, in the order the load will take them
//! (file order left 22 of ViT-H-14's 32 blocks to be worked on after the disk had finished:
//! the file holds `resblocks.9` last), neighbours merged, so a cold load takes about the
//! longer of the two. Only where the page cache can hold it all (half of the
//! available memory); elsewhere and off Linux, reads stay as they were.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use burn::module::ParamId;

/// Where a tensor's bytes lie in a file (read as one contiguous range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extent {
    /// The file.
    pub file: Arc<PathBuf>,
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

/// The extents of a checkpoint's tensors, by snapshot id (kept by renames and prefix splits).
pub(crate) type Extents = BTreeMap<ParamId, Extent>;

/// Ranges closer than this are advised as one (the gap is read too).
const MERGE_GAP: u64 = 1 << 20;
/// Bytes per advice call, so that a stop request is seen soon.
const STEP: u64 = 32 << 20;

/// A running read-ahead; dropping it stops the thread (between two advice calls) and waits.
#[derive(Debug)]
pub(crate) struct Readahead {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Readahead {
    /// Start reading `extents` ahead, or do nothing (see the module docs).
    pub(crate) fn start(extents: Vec<Extent>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let total: u64 = extents.iter().map(|e| e.len).sum();
        let thread = (total > 0 && fits_in_cache(total))
            .then(|| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("taiyi-readahead".into())
                    .spawn(move || advise_all(&merge(extents), &stop))
                    .ok()
            })
            .flatten();
        Self { stop, thread }
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The thread only makes advice calls: nothing to report if it failed.
            let _ = t.join();
        }
    }
}

/// The ranges in the order given (the load's), each merged into the one before when they lie
/// within `MERGE_GAP` of each other in the same file (on either side: a module's tensors are
/// stored near each other, not always in the module's order).
pub(crate) fn merge(extents: Vec<Extent>) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::with_capacity(extents.len());
    for e in extents {
        if let Some(last) = out.last_mut()
            && last.file == e.file
            && e.start <= last.start + last.len + MERGE_GAP
            && last.start <= e.start + e.len + MERGE_GAP
        {
            let end = (last.start + last.len).max(e.start + e.len);
            last.start = last.start.min(e.start);
            last.len = end - last.start;
            continue;
        }
        out.push(e);
    }
    out
}

#[cfg(target_os = "linux")]
fn advise_all(ranges: &[Extent], stop: &AtomicBool) {
    use rustix::fs::{Advice, fadvise};
    let mut open: Option<(Arc<PathBuf>, std::fs::File)> = None;
    for r in ranges {
        if open.as_ref().is_none_or(|(p, _)| *p != r.file) {
            open = std::fs::File::open(r.file.as_path())
                .ok()
                .map(|f| (Arc::clone(&r.file), f));
        }
        let Some((_, file)) = &open else { continue };
        let mut at = r.start;
        while at < r.start + r.len {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let n = STEP.min(r.start + r.len - at);
            // Advice only: a refusal changes nothing but speed.
            let _ = fadvise(file, at, std::num::NonZeroU64::new(n), Advice::WillNeed);
            at += n;
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_all(_ranges: &[Extent], _stop: &AtomicBool) {}

/// Whether `bytes` fit in half of the memory Linux reports available.
#[cfg(target_os = "linux")]
fn fits_in_cache(bytes: u64) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .is_some_and(|kb| bytes <= kb.saturating_mul(1024) / 2)
}

#[cfg(not(target_os = "linux"))]
fn fits_in_cache(_bytes: u64) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &Arc<PathBuf>, start: u64, len: u64) -> Extent {
        Extent {
            file: Arc::clone(file),
            start,
            len,
        }
    }

    #[test]
    fn merges_neighbours_in_the_given_order() {
        let a = Arc::new(PathBuf::from("a"));
        let b = Arc::new(PathBuf::from("b"));
        let far = 10 * MERGE_GAP;
        let merged = merge(vec![
            at(&a, far, 8),
            at(&b, 0, 4),
            at(&a, 100, 50),
            // Before the previous range, touching it: merged backwards.
            at(&a, 0, 100),
            at(&a, 150 + MERGE_GAP, 10),
            // Far from the one before: a range of its own, though next to an earlier one.
            at(&a, far + 8, 8),
        ]);
        assert_eq!(
            merged,
            vec![
                at(&a, far, 8),
                at(&b, 0, 4),
                at(&a, 0, 160 + MERGE_GAP),
                at(&a, far + 8, 8)
            ]
        );
    }

    #[test]
    fn starts_and_stops_on_a_real_file() {
        let path = std::env::temp_dir().join(format!("taiyi-readahead-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 1 << 16]).ok();
        let file = Arc::new(path.clone());
        // A thread on Linux (64 KiB fit in any page cache), none for nothing to read; both
        // stop and join on drop.
        let running = Readahead::start(vec![at(&file, 0, 1 << 16)]);
        assert_eq!(running.thread.is_some(), cfg!(target_os = "linux"));
        drop(running);
        assert!(Readahead::start(Vec::new()).thread.is_none());
        std::fs::remove_file(&path).ok();
    }
}
