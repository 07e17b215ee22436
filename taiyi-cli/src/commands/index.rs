//! `taiyi index build`: the ANN graph of an embedding index (`IDX.npy.ann`), which `taiyi
//! search` and `taiyi serve --index` then use.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use taiyi_core::ann::{AnnIndex, AnnParams, AnnQuantization, ReduceDim};
use taiyi_core::retrieval::EmbeddingIndex;

use crate::error::CliError;
use crate::output::print_stdout;

#[derive(Args, Debug)]
pub(crate) struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// Build IDX.npy.ann, the HNSW graph of an index written by `taiyi embed-image`
    /// (replaces an older one as one unit); prints what was built as JSON.
    Build(BuildArgs),
}

/// How the graph stores its vectors.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Quantization {
    /// 8-bit integers: half the memory of f16, faster; more candidates are re-ranked.
    I8,
    /// Half floats.
    F16,
}

impl From<Quantization> for AnnQuantization {
    fn from(q: Quantization) -> Self {
        match q {
            Quantization::I8 => AnnQuantization::I8,
            Quantization::F16 => AnnQuantization::F16,
        }
    }
}

/// The graph's parameters as flags (defaults: [`AnnParams::default`]).
#[derive(Args, Debug)]
pub(crate) struct BuildArgs {
    /// The index (`FILE.npy` with its manifest `FILE.npy.names.json`).
    #[arg(value_name = "IDX.npy")]
    index: PathBuf,
    /// First merge the shards of an `embed-image --shard i/N --out-dir DIR` run (clip-retrieval's
    /// img_emb/ + metadata/, every shard checked against its manifest) into the index
    /// IDX.npy (+ its manifest; replaced as one unit), in shard order.
    #[arg(long, value_name = "DIR")]
    from_shards: Option<PathBuf>,
    /// Vector storage in the graph (the exact re-rank always uses the float32 rows).
    #[arg(long, value_enum, default_value = "i8")]
    quantization: Quantization,
    /// Edges per node (HNSW M).
    #[arg(long, default_value_t = AnnParams::default().connectivity)]
    connectivity: usize,
    /// Candidate list while building (HNSW efConstruction).
    #[arg(long, default_value_t = AnnParams::default().expansion_add)]
    expansion_add: usize,
    /// Candidate list while searching (HNSW ef), stored as the default of searches.
    #[arg(long, default_value_t = AnnParams::default().expansion_search)]
    expansion_search: usize,
    /// The graph's vectors: `auto` (the rows' top principal directions that keep 98% of
    /// their energy, a multiple of 32, when at most half the width; else the full rows),
    /// `off` (the full rows), or a number of directions. The re-rank uses the full rows.
    #[arg(long, default_value_t = AnnParams::default().reduce, value_name = "auto|off|N")]
    reduce_dim: ReduceDim,
}

pub(crate) fn run(args: IndexArgs) -> Result<(), CliError> {
    match args.command {
        IndexCommand::Build(a) => {
            let params = AnnParams {
                quantization: a.quantization.into(),
                connectivity: a.connectivity,
                expansion_add: a.expansion_add,
                expansion_search: a.expansion_search,
                reduce: a.reduce_dim,
            };
            if let Some(dir) = &a.from_shards {
                let merged = taiyi_core::shard::read_all(dir)?;
                // float16 shards are not unit-norm to f32 precision: stored as raw features,
                // normalised when loaded.
                EmbeddingIndex::write(
                    &a.index,
                    merged.dim,
                    &merged.values,
                    &merged.names,
                    false,
                    &[],
                )?;
                eprintln!(
                    "merged {} shard(s) of {} into {} [{}, {}]",
                    merged.shards,
                    dir.display(),
                    a.index.display(),
                    merged.names.len(),
                    merged.dim
                );
            }
            let built = AnnIndex::build(&a.index, &params)?;
            let json = serde_json::to_string(&built)
                .map_err(|e| CliError::Usage(format!("cannot print the build report: {e}")))?;
            print_stdout(&format!("{json}\n"))
        }
    }
}
