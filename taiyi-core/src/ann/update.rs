//! [`AnnEdit`]: a `.ann` graph brought up to date with its rewritten index in place (rows
//! removed, renumbered and added), instead of built again, when few rows changed.
//!
//! `embed-image --update` reads the graph with [`super::AnnIndex::edit`] before it rewrites the
//! `.npy` (the graph is checked against the `.npy` it was built from), then hands
//! [`AnnEdit::apply`] where every new row came from. Removed rows stay in usearch's graph as
//! tombstones that searches walk through but never return, which slowly costs recall and
//! speed: once the rows added and removed since the graph was built reach
//! [`REBUILD_AFTER`] of its rows, the update builds it again (and the count starts over).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::build::{AnnBuild, Source, engine_error, write};
use super::format::AnnHeader;
use super::pca::Projection;
use crate::ClipError;

/// Share of a graph's rows that may be added or removed by updates before an update builds
/// the graph again.
pub const REBUILD_AFTER: f64 = 0.10;

/// Keys are parked above every row number while rows are renumbered, so that no two rows
/// ever hold the same key.
const PARKED: u64 = 1 << 40;

/// A `.ann` graph read into memory, to be brought up to date with its `.npy` once that is
/// rewritten ([`super::AnnIndex::edit`], then [`AnnEdit::apply`]).
pub struct AnnEdit {
    pub(super) header: AnnHeader,
    pub(super) projection: Option<Projection>,
    pub(super) graph: usearch::Index,
    pub(super) path: PathBuf,
}

impl std::fmt::Debug for AnnEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnEdit")
            .field("path", &self.path)
            .field("rows", &self.header.rows)
            .finish_non_exhaustive()
    }
}

/// The edits [`AnnEdit::apply`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AnnEdits {
    /// Rows added (embedded by the update).
    pub added: usize,
    /// Rows removed (their files are gone or changed).
    pub removed: usize,
    /// Kept rows whose row number changed.
    pub renumbered: usize,
}

/// What [`AnnEdit::apply`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct AnnUpdate {
    /// The `.ann` file written.
    pub written: AnnBuild,
    /// The edits made in place; `None`: the graph was built again ([`REBUILD_AFTER`]).
    pub edited: Option<AnnEdits>,
    /// Seconds the update took.
    pub seconds: f64,
}

impl AnnEdit {
    /// Bring the graph up to date with the rewritten index `npy`, whose row `i` is the old
    /// index's row `origin[i]` (the same vector) or, for `None`, a new row; old rows that no
    /// entry names are removed. The `.ann` file is replaced as one unit. When the rows added
    /// and removed since the graph was built would exceed [`REBUILD_AFTER`] of its rows, the
    /// graph is built again with its parameters instead.
    ///
    /// # Errors
    /// [`ClipError::Mismatch`] if `origin` names a row twice, a row past the old index, or
    /// does not match the new index's rows or width; the index's load errors (as for a
    /// build); [`ClipError::Ann`] if the engine fails; the write's I/O errors (the old `.ann`
    /// then stays, and no longer matches the `.npy`: a search asks for a rebuild).
    pub fn apply(self, npy: &Path, origin: &[Option<usize>]) -> Result<AnnUpdate, ClipError> {
        let started = Instant::now();
        let old = self.header.rows;
        let mismatch = |message: String| ClipError::Mismatch { message };
        let mut kept = vec![false; old];
        for &r in origin.iter().flatten() {
            match kept.get_mut(r) {
                Some(k) if !*k => *k = true,
                Some(_) => return Err(mismatch(format!("ANN update: old row {r} kept twice"))),
                None => {
                    return Err(mismatch(format!(
                        "ANN update: old row {r} of an index of {old} rows"
                    )));
                }
            }
        }
        let kept_rows = kept.iter().filter(|k| **k).count();
        let edits = AnnEdits {
            added: origin.len() - kept_rows,
            removed: old - kept_rows,
            renumbered: origin
                .iter()
                .enumerate()
                .filter(|(i, o)| o.is_some_and(|r| r != *i))
                .count(),
        };
        let total = self.header.edits + edits.added + edits.removed;
        if total as f64 > REBUILD_AFTER * old.max(origin.len()) as f64 {
            let written = super::AnnIndex::build(npy, &self.header.params)?;
            return Ok(AnnUpdate {
                written,
                edited: None,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let source = Source::open(npy)?;
        if (source.rows, source.dim) != (origin.len(), self.header.dim) {
            return Err(mismatch(format!(
                "ANN update: {} holds [{}, {}], the update describes [{}, {}]",
                npy.display(),
                source.rows,
                source.dim,
                origin.len(),
                self.header.dim
            )));
        }
        let ann = |what| engine_error(&self.path, what);
        let graph = &self.graph;
        for (r, _) in kept.iter().enumerate().filter(|(_, k)| !**k) {
            graph
                .remove(r as u64)
                .map_err(ann("cannot remove a vector"))?;
        }
        let moves: Vec<(u64, u64)> = origin
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.filter(|&r| r != i).map(|r| (r as u64, i as u64)))
            .collect();
        for (from, to) in moves
            .iter()
            .map(|&(from, _)| (from, from + PARKED))
            .chain(moves.iter().map(|&(from, to)| (from + PARKED, to)))
        {
            let renamed = graph
                .rename(from, to)
                .map_err(ann("cannot renumber a vector"))?;
            if renamed != 1 {
                return Err(super::AnnIndex::damaged(
                    &self.path,
                    format!("its graph has no vector for row {}", from % PARKED),
                ));
            }
        }
        let fresh: Vec<usize> = (0..origin.len()).filter(|&i| origin[i].is_none()).collect();
        let threads = rayon::current_num_threads().clamp(1, fresh.len().max(1));
        graph
            .reserve_capacity_and_threads(graph.size() + fresh.len(), threads)
            .map_err(ann("cannot reserve the graph"))?;
        fresh.par_iter().try_for_each_init(
            || (vec![0f32; source.dim], Vec::new(), Vec::new()),
            |(row, bytes, reduced), &i| {
                source.mapped.read_rows(i, row, bytes)?;
                source.check_rows(i, row)?;
                let vector = match &self.projection {
                    Some(p) => {
                        p.project(row, reduced);
                        &reduced[..]
                    }
                    None => &row[..],
                };
                graph
                    .add(i as u64, vector)
                    .map_err(ann("cannot add a vector"))
            },
        )?;
        if graph.size() != origin.len() {
            return Err(super::AnnIndex::damaged(
                &self.path,
                format!(
                    "its edited graph holds {} vectors for {} rows",
                    graph.size(),
                    origin.len()
                ),
            ));
        }
        let header = AnnHeader {
            rows: origin.len(),
            npy: source.unchanged()?,
            edits: total,
            ..self.header
        };
        let matrix = self.projection.as_ref().map(Projection::to_bytes);
        let (header, file_bytes) = write(&self.path, header, matrix.as_deref(), self.graph)?;
        Ok(AnnUpdate {
            written: AnnBuild {
                path: self.path,
                header,
                file_bytes,
                threads,
            },
            edited: Some(edits),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests;
