//! `taiyi search`: the best rows of an embedding index for a text, an image, or precomputed
//! query vectors: through the ANN graph `IDX.npy.ann` when `taiyi index build` wrote one
//! (candidates re-ranked by their exact cosine), else (or with `--exact`) by scoring every row.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::{ArgGroup, Args};
use taiyi_core::ann::SearchIndex;
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
    /// Score every row even if the index has an ANN graph (IDX.npy.ann): the exact answer,
    /// reading the whole index.
    #[arg(long)]
    exact: bool,
    /// Candidate list of the ANN search (HNSW ef; default: the one the graph was built with).
    /// Larger: better recall, slower.
    #[arg(long, value_name = "EF")]
    expansion_search: Option<usize>,
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
    taiyi_core::retrieval::normalize_queries(&mut values, d).map_err(|e| {
        CliError::Usage(format!(
            "--query-vectors {}: {}",
            path.display(),
            taiyi_core::error_report(&e)
        ))
    })?;
    Ok((values, d))
}

/// Every query's hits; through the graph, one query at a time on one thread, with a line of
/// latencies on stderr.
fn search_all(
    index: &SearchIndex,
    queries: ndarray::ArrayView2<'_, f32>,
    k: usize,
) -> Result<Vec<Vec<Hit>>, CliError> {
    let SearchIndex::Ann(ann) = index else {
        return Ok(index.search_batch(queries, k)?);
    };
    let mut ms = Vec::with_capacity(queries.nrows());
    let mut all = Vec::with_capacity(queries.nrows());
    for q in queries.outer_iter() {
        let t = std::time::Instant::now();
        all.push(ann.search(q, k)?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "searched {} queries through {}: per query p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         (one thread)",
        ms.len(),
        ann.path().display(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(all)
}

/// One hit as JSON: its row, its name and its cosine score.
fn hit_json(names: &[String], h: &Hit) -> serde_json::Value {
    serde_json::json!({"row": h.index, "index": h.index, "name": names[h.index], "score": h.score})
}

impl BackendTask for SearchArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let index = if self.plain_npy {
            SearchIndex::Exact(EmbeddingIndex::load_plain(&self.index)?)
        } else {
            SearchIndex::open(&self.index, self.exact)?
        };
        if let (SearchIndex::Ann(ann), Some(ef)) = (&index, self.expansion_search) {
            ann.set_expansion_search(ef);
        }
        let names = index.names();
        let (queries, d) = self.queries::<B>(&device)?;
        let mut out = String::new();
        if self.query_vectors.is_some() {
            let m = queries.len() / d;
            let queries = ndarray::ArrayView2::from_shape((m, d), &queries)
                .map_err(|e| CliError::Usage(format!("query vectors: {e}")))?;
            for (i, hits) in search_all(&index, queries, self.top_k)?.iter().enumerate() {
                let hits: Vec<_> = hits.iter().map(|h| hit_json(names, h)).collect();
                out.push_str(&serde_json::json!({"query": i, "hits": hits}).to_string());
                out.push('\n');
            }
            return print_stdout(&out);
        }
        let hits = index.search(ndarray::ArrayView1::from(&queries[..]), self.top_k)?;
        if self.json {
            let v: Vec<_> = hits.iter().map(|h| hit_json(names, h)).collect();
            return print_stdout(&format!("{}\n", serde_json::Value::Array(v)));
        }
        for (rank, h) in hits.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}  {:.4}  {}\n",
                rank + 1,
                h.score,
                names[h.index]
            ));
        }
        print_stdout(&out)
    }
}
