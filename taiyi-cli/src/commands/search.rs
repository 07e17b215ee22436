//! `taiyi search`: the best rows of an embedding index for a text, an image, or precomputed
//! query vectors (exact: every row is scored).

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::{ArgGroup, Args};
use taiyi_core::retrieval::{EmbeddingIndex, Hit};
use taiyi_core::{BackendTask, EncodeOptions, ImageSource, to_vec};

use crate::args::{TextModelArgs, VisionModelArgs, image_encoder, text_encoder};
use crate::error::CliError;
use crate::output::print_stdout;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["query", "image", "query_vectors"])))]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    pub(crate) text: TextModelArgs,
    #[command(flatten)]
    pub(crate) vision: VisionModelArgs,
    /// Embeddings written by `taiyi embed-image` (row names from its manifest FILE.npy.names.json; rows are re-normalised when the index holds raw features).
    #[arg(long, value_name = "FILE.npy")]
    index: PathBuf,
    /// The index is a plain [n, d] float32 .npy without a manifest (e.g. written by numpy):
    /// rows are named by their number. Without it, a .npy without its manifest is refused.
    #[arg(long)]
    plain_npy: bool,
    /// A text query (embedded by the text tower).
    #[arg(long, value_name = "TEXT")]
    query: Option<String>,
    /// An image query (embedded by the image tower: images similar to this one).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Precomputed query vectors, an [m, d] float32 .npy (each row L2-normalised here): no tower
    /// is loaded, and the output is one JSON line per query,
    /// {"query": i, "hits": [{"row", "name", "score"}]}.
    #[arg(long, value_name = "Q.npy")]
    query_vectors: Option<PathBuf>,
    /// How many results (per query).
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Print JSON instead of a table (--query-vectors always prints JSON lines).
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    /// The query vectors, L2-normalised, `[m, d]` row-major, and `d`.
    fn queries<B: Backend>(&self, device: &B::Device) -> Result<(Vec<f32>, usize), CliError> {
        let features = if let Some(text) = &self.query {
            text_encoder::<B>(&self.text, device)?
                .encode(&[text.as_str()], &EncodeOptions::default())?
        } else if let Some(image) = &self.image {
            let (enc, _, _) = image_encoder::<B>(&self.vision, device)?;
            enc.encode(
                &[ImageSource::from(image.clone())],
                &EncodeOptions::default(),
            )?
        } else if let Some(path) = &self.query_vectors {
            return query_rows(path);
        } else {
            return Err(CliError::Usage(
                "give --query, --image or --query-vectors".into(),
            ));
        };
        let [_, d] = features.dims();
        Ok((to_vec(features)?, d))
    }
}

/// The rows of an `[m, d]` float32 `.npy`, each L2-normalised; a zero or non-finite row is an
/// error naming it.
fn query_rows(path: &std::path::Path) -> Result<(Vec<f32>, usize), CliError> {
    let (shape, mut values) = taiyi_core::npy::read_f32(path)?;
    let &[m, d] = shape.as_slice() else {
        return Err(CliError::Usage(format!(
            "--query-vectors {}: a [queries, dim] array is needed, not shape {shape:?}",
            path.display()
        )));
    };
    if m == 0 || d == 0 {
        return Err(CliError::Usage(format!(
            "--query-vectors {}: no queries (shape [{m}, {d}])",
            path.display()
        )));
    }
    for (i, row) in values.chunks_mut(d).enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(CliError::Usage(format!(
                "--query-vectors {}: row {i} has norm {norm}; queries must be finite and non-zero",
                path.display()
            )));
        }
        row.iter_mut().for_each(|x| *x /= norm);
    }
    Ok((values, d))
}

/// One hit as JSON: its row, its name and its cosine score.
fn hit_json(index: &EmbeddingIndex, h: &Hit) -> serde_json::Value {
    serde_json::json!({"row": h.index, "index": h.index, "name": index.names[h.index], "score": h.score})
}

impl BackendTask for SearchArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let index = if self.plain_npy {
            EmbeddingIndex::load_plain(&self.index)?
        } else {
            EmbeddingIndex::load(&self.index)?
        };
        let (queries, d) = self.queries::<B>(&device)?;
        let mut out = String::new();
        if self.query_vectors.is_some() {
            let m = queries.len() / d;
            let queries = ndarray::ArrayView2::from_shape((m, d), &queries)
                .map_err(|e| CliError::Usage(format!("query vectors: {e}")))?;
            for (i, hits) in index.search_batch(queries, self.top_k)?.iter().enumerate() {
                let hits: Vec<_> = hits.iter().map(|h| hit_json(&index, h)).collect();
                out.push_str(&serde_json::json!({"query": i, "hits": hits}).to_string());
                out.push('\n');
            }
            return print_stdout(&out);
        }
        let hits = index.search(ndarray::ArrayView1::from(&queries[..]), self.top_k)?;
        if self.json {
            let v: Vec<_> = hits.iter().map(|h| hit_json(&index, h)).collect();
            return print_stdout(&format!("{}\n", serde_json::Value::Array(v)));
        }
        for (rank, h) in hits.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}  {:.4}  {}\n",
                rank + 1,
                h.score,
                index.names[h.index]
            ));
        }
        print_stdout(&out)
    }
}
