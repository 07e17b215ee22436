//! `taiyi embed-image`.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::ann::{AnnEdit, AnnIndex};
use taiyi_core::retrieval::{EmbeddingIndex, FileStamp, Skipped, UpdatePlan};
use taiyi_core::shard::{EmbeddingDtype, Shard, write_clip_retrieval};
use taiyi_core::walk::{WalkOptions, image_files};
use taiyi_core::{BackendTask, EncodeOptions, ImageSource, error_report, to_vec};

use crate::args::{VisionModelArgs, image_encoder};
use crate::error::CliError;
use crate::output::progress_bar;

#[derive(Args, Debug)]
pub(crate) struct EmbedImageArgs {
    #[command(flatten)]
    pub(crate) model: VisionModelArgs,
    /// Image files.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Embed every image file of this directory (sorted by path; recursive; symbolic links
    /// followed, each folder once; hidden files and non-regular files skipped).
    #[arg(long, value_name = "DIR")]
    images_dir: Option<PathBuf>,
    /// With --images-dir: also take hidden files and folders (names starting with `.`).
    #[arg(long)]
    include_hidden: bool,
    /// Leave out images that cannot be read or decoded (each reported on stderr and listed in
    /// the index manifest) instead of failing.
    #[arg(long)]
    skip_errors: bool,
    /// Write raw (unnormalised) features.
    #[arg(long)]
    raw: bool,
    /// Print where the time went (loading, tower, decoding not hidden by the overlap, writing).
    #[arg(long)]
    verbose: bool,
    /// Output .npy file; the row names and a digest binding them to it go to FILE.npy.names.json.
    #[arg(
        long,
        value_name = "FILE.npy",
        required_unless_present = "out_dir",
        conflicts_with = "out_dir"
    )]
    out: Option<PathBuf>,
    /// Update the --out index instead of embedding everything: images whose file is unchanged
    /// since the index was written (same length and modification time, else same SHA-256)
    /// keep their rows; new and changed images are embedded; rows of images no longer given
    /// are dropped. The result has the rows a full run would write (in its order) and replaces
    /// the index as one unit; an ANN graph (FILE.npy.ann) is rebuilt with its parameters.
    #[arg(long, requires = "out")]
    update: bool,
    /// Embed only shard I of N (0 ≤ I < N): the I-th of N contiguous slices of the image list
    /// (a folder walk is sorted by path), so N jobs together embed every image once. Output in
    /// clip-retrieval's layout under --out-dir, bound by DIR/shards/shard_{I}.json. A shard
    /// with no image (N above the image count) writes a [0, d] array and an empty table.
    #[arg(long, value_name = "I/N", requires = "out_dir")]
    shard: Option<Shard>,
    /// Write clip-retrieval's layout instead of one index: DIR/img_emb/img_emb_{I}.npy and
    /// DIR/metadata/metadata_{I}.parquet (column image_path), as autofaiss and clip-retrieval
    /// read them, plus the manifest DIR/shards/shard_{I}.json binding the two (row count and
    /// SHA-256 of both), written so that a failed rerun never leaves a mixed pair accepted.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Element type of the img_emb files with --out-dir [default: float16]. Only with
    /// --out-dir (an --out index is always float32): elsewhere it is refused, not ignored.
    #[arg(long, value_enum, requires = "out_dir")]
    dtype: Option<DtypeArg>,
}

/// `--dtype` of the clip-retrieval layout.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum DtypeArg {
    /// `<f2`, clip-retrieval's default.
    Float16,
    /// `<f4`.
    Float32,
}

impl From<DtypeArg> for EmbeddingDtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::Float16 => EmbeddingDtype::F16,
            DtypeArg::Float32 => EmbeddingDtype::F32,
        }
    }
}

impl EmbedImageArgs {
    /// Flags that only apply to --out-dir are refused without it. (clap's `requires` is not
    /// enough: it waives the requirement when an argument that conflicts with --out-dir, such
    /// as --out, is given.)
    fn check_flags(&self) -> Result<(), CliError> {
        if self.out_dir.is_none() {
            if self.dtype.is_some() {
                return Err(CliError::Usage(
                    "--dtype applies to --out-dir only (an --out index is always float32)".into(),
                ));
            }
            if self.shard.is_some() {
                return Err(CliError::Usage("--shard needs --out-dir".into()));
            }
        }
        Ok(())
    }

    /// The images to embed and their names (UTF-8 paths: the manifest stores names as JSON).
    fn inputs(&self) -> Result<(Vec<PathBuf>, Vec<String>), CliError> {
        let mut paths = self.images.clone();
        if let Some(d) = &self.images_dir {
            paths.extend(image_files(
                d,
                WalkOptions {
                    include_hidden: self.include_hidden,
                },
            )?);
        }
        if paths.is_empty() {
            return Err(CliError::Usage(
                "no images given (IMAGE... or --images-dir with image files)".into(),
            ));
        }
        let names = paths
            .iter()
            .map(|p| {
                p.to_str().map(str::to_string).ok_or_else(|| {
                    CliError::Usage(format!(
                        "image path {} is not valid UTF-8: the index stores names as UTF-8 text",
                        p.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A shard takes its slice before anything is decoded.
        let shard = self.shard.unwrap_or(Shard::ONE);
        let range = shard.range(paths.len());
        Ok((paths[range.clone()].to_vec(), names[range].to_vec()))
    }
}

/// The ANN graph of the index `out` read for an in-place update, when it has one that
/// matches it; `None` when it has none or one that does not match (an update builds that
/// one again: [`refresh_ann`]).
fn ann_to_edit(out: &std::path::Path) -> Option<AnnEdit> {
    if !AnnIndex::ann_path(out).is_file() {
        return None;
    }
    AnnIndex::edit(out)
        .inspect_err(|e| {
            eprintln!(
                "{}: built again ({})",
                AnnIndex::ann_path(out).display(),
                error_report(e)
            )
        })
        .ok()
}

/// Bring the ANN graph of the index `out`, if it has one, up to date with the rows just
/// written: `edit` (the graph read before the rewrite) is edited in place, row `i` of the new
/// index being the old row `origin[i]` or a new one; without it the graph is built again with
/// the parameters it was built with.
fn refresh_ann(
    out: &std::path::Path,
    edit: Option<AnnEdit>,
    origin: &[Option<usize>],
) -> Result<(), CliError> {
    let Some(edit) = edit else {
        if !AnnIndex::ann_path(out).is_file() {
            return Ok(());
        }
        let params = AnnIndex::built_params(out).unwrap_or_default();
        let built = AnnIndex::build(out, &params)?;
        eprintln!(
            "rebuilt {} ({} rows, {:.1} s)",
            built.path.display(),
            built.header.rows,
            built.header.build_seconds
        );
        return Ok(());
    };
    let done = match edit.apply(out, origin) {
        Ok(done) => done,
        Err(e) => {
            eprintln!(
                "{}: could not be updated in place ({}); built again",
                AnnIndex::ann_path(out).display(),
                error_report(&e)
            );
            return refresh_ann(out, None, origin);
        }
    };
    let w = &done.written;
    match done.edited {
        Some(e) => eprintln!(
            "updated {} in place ({} rows: {} added, {} removed, {} renumbered; {:.1} s)",
            w.path.display(),
            w.header.rows,
            e.added,
            e.removed,
            e.renumbered,
            done.seconds
        ),
        None => eprintln!(
            "rebuilt {} ({} rows, {:.1} s: more than {:.0}% of its rows changed since it was built)",
            w.path.display(),
            w.header.rows,
            done.seconds,
            taiyi_core::ann::REBUILD_AFTER * 100.0
        ),
    }
    Ok(())
}

impl BackendTask for EmbedImageArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let start = Instant::now();
        self.check_flags()?;
        let (paths, names) = self.inputs()?;
        let plan = match (&self.out, self.update) {
            (Some(out), true) => Some(UpdatePlan::new(out, &paths, &names, !self.raw)?),
            _ => None,
        };
        // Positions (in the input list) of the images to embed.
        let todo: Vec<usize> = plan
            .as_ref()
            .map_or_else(|| (0..paths.len()).collect(), UpdatePlan::to_embed);
        // An update with nothing to embed does not load the tower.
        let enc = match &plan {
            Some(p) if todo.is_empty() && p.dim > 0 => None,
            _ => Some(image_encoder::<B>(&self.model, &device)?.0),
        };
        let d = match (&enc, &plan) {
            (Some(e), _) => e.model().output_dim(),
            (None, Some(p)) => p.dim,
            (None, None) => return Err(CliError::Usage("no model and no index".into())),
        };
        let loaded = start.elapsed();
        let dtype = self.dtype.map_or(EmbeddingDtype::F16, EmbeddingDtype::from);
        if paths.is_empty() {
            // Only a shard can be empty (more shards than images): it writes empty, valid
            // outputs of the model's width, so an array job of any N succeeds.
            let (Some(dir), Some(shard)) = (&self.out_dir, self.shard) else {
                return Err(CliError::Usage("no images to embed".into()));
            };
            let files = write_clip_retrieval(dir, shard, &[], d, &[], dtype)?;
            eprintln!(
                "wrote {} + {} [0, {d}]: shard {shard} holds no image",
                files.embeddings.display(),
                files.metadata.display()
            );
            return Ok(());
        }
        let sources: Vec<ImageSource> = todo
            .iter()
            .map(|&i| ImageSource::from(paths[i].clone()))
            .collect();
        let pb = progress_bar(sources.len(), "images");
        let progress = |n: usize| pb.set_position(n as u64);
        let options = EncodeOptions::default()
            .normalized(!self.raw)
            .with_progress(&progress);
        let mut skipped = Vec::new();
        // Positions (in `todo`) of the images that could not be embedded.
        let mut failed = std::collections::HashSet::new();
        let (fresh, stats) = match &enc {
            _ if sources.is_empty() => (Vec::new(), Default::default()),
            None => return Err(CliError::Usage("images to embed but no model".into())),
            Some(enc) if self.skip_errors => {
                let out = enc.encode_skipping(&sources, &options)?;
                for (i, e) in &out.failed {
                    let name = names[todo[*i]].clone();
                    eprintln!("skipped {name}: {}", error_report(e));
                    skipped.push(Skipped {
                        name,
                        error: error_report(e),
                    });
                    failed.insert(*i);
                }
                let features = match out.features {
                    Some(f) => to_vec(f)?,
                    None if plan.is_some() => Vec::new(),
                    None => return Err(CliError::Usage("no image could be read".into())),
                };
                (features, out.stats)
            }
            Some(enc) => {
                let (f, stats) = enc.encode_profiled(&sources, &options)?;
                (to_vec(f)?, stats)
            }
        };
        pb.finish_and_clear();
        let written = Instant::now();
        // The rows in input order: kept rows from the old index, the others embedded now.
        let mut fresh_rows = fresh.chunks(d.max(1));
        let mut slot = vec![None; paths.len()];
        for (j, &i) in todo.iter().enumerate() {
            if !failed.contains(&j) {
                slot[i] = fresh_rows.next();
            }
        }
        let mut values = Vec::with_capacity(paths.len() * d);
        let mut kept_names = Vec::with_capacity(paths.len());
        let mut kept_inputs = Vec::with_capacity(paths.len());
        for (i, name) in names.iter().enumerate() {
            let row = match (plan.as_ref().and_then(|p| p.keep[i]), slot[i]) {
                (Some(r), _) => plan.as_ref().map(|p| p.old_row(r)),
                (None, row) => row,
            };
            if let Some(row) = row {
                values.extend_from_slice(row);
                kept_names.push(name.clone());
                kept_inputs.push(i);
            }
        }
        let names = kept_names;
        let n = names.len();
        if n == 0 {
            return Err(CliError::Usage("no image could be read".into()));
        }
        crate::output::check_features(&values, d, &names, self.raw)?;
        let written_to = match (&self.out_dir, &self.out) {
            (Some(dir), _) => {
                let shard = self.shard.unwrap_or(Shard::ONE);
                let kept: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
                let files = write_clip_retrieval(dir, shard, &values, d, &kept, dtype)?;
                format!(
                    "{} + {}",
                    files.embeddings.display(),
                    files.metadata.display()
                )
            }
            (None, Some(out)) => {
                let stamps: Vec<FileStamp> = match &plan {
                    Some(p) => kept_inputs.iter().map(|&i| p.stamps[i].clone()).collect(),
                    None => kept_inputs
                        .par_iter()
                        .map(|&i| FileStamp::of(&paths[i]))
                        .collect::<Result<_, _>>()?,
                };
                // The graph is read (and checked against the old rows) before they are replaced.
                let edit = plan.as_ref().and_then(|_| ann_to_edit(out));
                EmbeddingIndex::write_stamped(
                    out, d, &values, &names, !self.raw, &skipped, &stamps,
                )?;
                if let Some(p) = &plan {
                    eprintln!(
                        "update: {} image(s) embedded, {} row(s) kept, {} dropped",
                        todo.len() - failed.len(),
                        p.keep.iter().flatten().count(),
                        p.dropped
                    );
                }
                let origin: Vec<Option<usize>> = match &plan {
                    Some(p) => kept_inputs.iter().map(|&i| p.keep[i]).collect(),
                    None => Vec::new(),
                };
                refresh_ann(out, edit, &origin)?;
                out.display().to_string()
            }
            (None, None) => return Err(CliError::Usage("--out or --out-dir is required".into())),
        };
        let left_out = if skipped.is_empty() {
            String::new()
        } else {
            format!(", {} image(s) skipped", skipped.len())
        };
        eprintln!("wrote {written_to} [{n}, {d}]{left_out}");
        if self.verbose {
            let st = stats;
            let total = start.elapsed().as_secs_f64();
            let (wall, tower) = (st.wall.as_secs_f64(), st.tower.as_secs_f64());
            eprintln!(
                "time: {total:.2} s in all: loading {:.2} s, embedding {wall:.2} s, writing {:.2} s",
                loaded.as_secs_f64(),
                written.elapsed().as_secs_f64()
            );
            eprintln!(
                "embedding: {} images in {} forward passes; tower {tower:.2} s ({:.1}% of the \
                 embedding time), outside the tower {:.2} s ({:.1}%): decoding + transform \
                 {:.2} s on rayon, of which the tower waited {:.2} s",
                st.images,
                st.chunks,
                100.0 * tower / wall.max(1e-9),
                wall - tower,
                100.0 * (wall - tower) / wall.max(1e-9),
                st.preprocess.as_secs_f64(),
                st.waiting.as_secs_f64()
            );
        }
        Ok(())
    }
}
