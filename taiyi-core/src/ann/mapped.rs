//! The memory maps of an ANN search: the float32 rows of the `.npy` (read for the exact
//! re-rank) and the graph of the `.ann` file (handed to usearch as a view). All `unsafe` of
//! the ANN index lives here.
//!
//! A memory map is only sound while nobody changes the file under it. taiyi never does: every
//! index file it writes is written to a temporary file and renamed over the old one, so a map
//! keeps the old inode, complete and unchanged, until it is dropped. Another program that
//! truncates or rewrites an index file in place while a search runs is outside what a map can
//! defend against (the process would see changed values or a `SIGBUS`), as for every
//! memory-mapped index (usearch `view`, faiss `IO_FLAG_MMAP`, numpy `mmap_mode`).
#![allow(unsafe_code)]

use std::path::Path;

use memmap2::Mmap;
use ndarray::ArrayView2;

use crate::ClipError;

/// The `[rows, dim]` float32 data of a `.npy`, memory-mapped (the exact scan) and open for
/// positioned reads (single rows: the re-rank).
pub(crate) struct MappedRows {
    file: crate::input::InputFile,
    map: Mmap,
    start: usize,
    rows: usize,
    dim: usize,
}

impl MappedRows {
    /// Map the float32 `.npy` at `path` (header and length checked by [`crate::npy`]).
    ///
    /// # Errors
    /// The `.npy` reader's errors; [`ClipError::Npy`] for an array that is not `[n, d]` with
    /// `d ≥ 1`, or data that is not 4-byte aligned in the file; [`ClipError::Io`] if the map
    /// fails.
    pub(crate) fn open(path: &Path) -> Result<Self, ClipError> {
        let (file, start, shape) = crate::npy::open_for_map(path)?;
        let npy_err = |message: String| ClipError::Npy {
            path: path.to_path_buf(),
            message,
        };
        let (rows, dim) = match shape[..] {
            [n, d] if d >= 1 => (n, d),
            _ => {
                return Err(npy_err(format!(
                    "expected a 2-D [n, d] array with d ≥ 1, found shape {shape:?}"
                )));
            }
        };
        if start % 4 != 0 || cfg!(target_endian = "big") {
            return Err(npy_err(format!(
                "its data starts at byte {start}: float32 rows must start at a multiple of 4 on \
                 a little-endian machine to be mapped"
            )));
        }
        // SAFETY: the map is read-only and lives in this struct; the file is not changed in
        // place by taiyi (module docs). Its length was checked against the header: start +
        // rows × dim × 4 bytes.
        let map = unsafe { Mmap::map(file.file()) }.map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // The map is read front to back (a build, an exact scan; single rows are read with
        // `read_row`): read ahead. Advice only; a refusal is harmless.
        let _ = map.advise(memmap2::Advice::Sequential);
        if map.len() < start + rows * dim * 4 {
            return Err(npy_err(format!(
                "the map holds {} bytes, the header declares {}",
                map.len(),
                start + rows * dim * 4
            )));
        }
        Ok(Self {
            file,
            map,
            start,
            rows,
            dim,
        })
    }

    /// Rows `first..first + out.len() / dim` into `out` by one positioned read, not through
    /// the map: rows read this way leave the process's memory as it was, where touching the
    /// map faulted in whole neighbourhoods of rows (the kernel's fault-around: ~2 GB over 1000
    /// queries on a 1M-row index), and the mapped pages of a build's pass counted in its RSS.
    ///
    /// # Errors
    /// [`ClipError::Io`] if the read fails; [`ClipError::Mismatch`] for rows past the end or a
    /// buffer that is not whole rows.
    pub(crate) fn read_rows(
        &self,
        first: usize,
        out: &mut [f32],
        bytes: &mut Vec<u8>,
    ) -> Result<(), ClipError> {
        let count = out.len() / self.dim;
        if !out.len().is_multiple_of(self.dim) || first.saturating_add(count) > self.rows {
            return Err(ClipError::Mismatch {
                message: format!(
                    "rows {first}.. of {} (width {} into {} values)",
                    self.rows,
                    self.dim,
                    out.len()
                ),
            });
        }
        let at = self.start + first * self.dim * 4;
        bytes.resize(out.len() * 4, 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file
                .file()
                .read_exact_at(bytes, at as u64)
                .map_err(|source| ClipError::Io {
                    path: self.file.path().to_path_buf(),
                    source,
                })?;
        }
        #[cfg(not(unix))]
        bytes.copy_from_slice(&self.map[at..at + out.len() * 4]);
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(())
    }

    /// The rows, `[rows, dim]`.
    pub(crate) fn view(&self) -> Result<ArrayView2<'_, f32>, ClipError> {
        let bytes = &self.map[self.start..self.start + self.rows * self.dim * 4];
        // SAFETY: `bytes` lies inside the map (checked in `open`); the map is page-aligned and
        // `start` a multiple of 4, so the pointer is aligned for f32; every bit pattern is a
        // valid f32; the slice borrows `self`, so the map outlives it; the data is
        // little-endian like the machine (checked in `open`).
        let values: &[f32] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) };
        ArrayView2::from_shape((self.rows, self.dim), values).map_err(|e| ClipError::Mismatch {
            message: format!("mapped rows: {e}"),
        })
    }
}

/// A usearch graph viewing the bytes of a memory-mapped `.ann` file.
pub(crate) struct MappedGraph {
    // Field order is drop order: the graph, which points into the map, goes first.
    graph: usearch::Index,
    map: Mmap,
    /// Where the graph starts in the map.
    offset: usize,
    /// Searches running now, at most `contexts` (usearch holds one search context per
    /// concurrent search and fails a search when all are taken: callers wait here instead).
    running: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    contexts: usize,
}

impl MappedGraph {
    /// View the usearch index stored in `file` from byte `offset` on, with `options` (which
    /// must be those it was built with: the header of the file records them).
    ///
    /// # Errors
    /// [`ClipError::Io`] if the map fails; [`ClipError::Ann`] if usearch refuses the bytes.
    pub(crate) fn view(
        path: &Path,
        file: &std::fs::File,
        offset: usize,
        options: &usearch::IndexOptions,
        crc32: u32,
    ) -> Result<Self, ClipError> {
        // SAFETY: read-only map owned by the returned value; the file is not changed in place
        // by taiyi (module docs).
        let map = unsafe { Mmap::map(file) }.map_err(|source| ClipError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Graph nodes are visited at random (advice only; a refusal is harmless).
        let _ = map.advise(memmap2::Advice::Random);
        let ann = |what: &'static str, e: cxx::Exception| ClipError::Ann {
            path: path.to_path_buf(),
            what,
            source: Box::new(e),
        };
        let Some(bytes) = map.get(offset..) else {
            return Err(ClipError::Index {
                path: path.to_path_buf(),
                message: format!("it ends at byte {} before its graph starts", map.len()),
            });
        };
        // The engine trusts the bytes it views: check them first (this also brings the pages in,
        // which the view's walk over every node would do anyway).
        let found = crc32fast::hash(bytes);
        if found != crc32 {
            return Err(ClipError::Index {
                path: path.to_path_buf(),
                message: format!(
                    "its graph is damaged (CRC-32 {found:08x}, its header says {crc32:08x}): \
                     build it again with `taiyi index build`"
                ),
            });
        }
        let meta = usearch::Index::metadata_from_buffer(bytes)
            .map_err(|e| ann("cannot read the graph's header", e))?;
        if meta.dimensions != options.dimensions as u64 {
            return Err(ClipError::Index {
                path: path.to_path_buf(),
                message: format!(
                    "its graph holds {}-d vectors, its header says {}",
                    meta.dimensions, options.dimensions
                ),
            });
        }
        let graph = usearch::Index::new(options).map_err(|e| ann("cannot create the graph", e))?;
        // SAFETY: `bytes` borrows `map`, which is stored beside `graph` and dropped after it
        // (field order), so the view never outlives the bytes; the map is never written.
        unsafe { graph.view_from_buffer(bytes) }.map_err(|e| ann("cannot view the graph", e))?;
        // One search context per thread that may search at once (the rayon pool, or the cores).
        let contexts = rayon::current_num_threads()
            .max(std::thread::available_parallelism().map_or(1, usize::from))
            .max(1);
        graph
            .reserve_capacity_and_threads(graph.size(), contexts)
            .map_err(|e| ann("cannot reserve search contexts", e))?;
        Ok(Self {
            graph,
            map,
            offset,
            running: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            contexts,
        })
    }

    /// A copy of the graph in memory, built with `options`, that can be edited (a view cannot).
    ///
    /// # Errors
    /// [`ClipError::Ann`] if usearch refuses the bytes (checked by CRC when viewed).
    pub(crate) fn load_copy(
        &self,
        path: &Path,
        options: &usearch::IndexOptions,
    ) -> Result<usearch::Index, ClipError> {
        let ann = |what: &'static str| super::build::engine_error(path, what);
        let graph = usearch::Index::new(options).map_err(ann("cannot create the graph"))?;
        let bytes = self.map.get(self.offset..).unwrap_or_default();
        graph
            .load_from_buffer(bytes)
            .map_err(ann("cannot load the graph"))?;
        Ok(graph)
    }

    /// The graph.
    pub(crate) fn graph(&self) -> &usearch::Index {
        &self.graph
    }

    /// The `count` nearest keys to `query`, waiting while every search context is in use.
    pub(crate) fn search(
        &self,
        query: &[f32],
        count: usize,
    ) -> Result<usearch::ffi::Matches, cxx::Exception> {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            while *running >= self.contexts {
                running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
            }
            *running += 1;
        }
        let result = self.graph.search(query, count);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.freed.notify_one();
        result
    }
}
