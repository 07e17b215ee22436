//! `taiyi search`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::{BackendTask, EncodeOptions, to_vec};

use crate::args::{TextModelArgs, text_encoder};
use crate::error::CliError;
use crate::output::print_stdout;

#[derive(Args, Debug)]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    pub(crate) text: TextModelArgs,
    /// Embeddings written by `taiyi embed-image` (row names from its manifest FILE.npy.names.json; rows are re-normalised when the index holds raw features).
    #[arg(long, value_name = "FILE.npy")]
    index: PathBuf,
    /// The index is a plain [n, d] float32 .npy without a manifest (e.g. written by numpy):
    /// rows are named by their number. Without it, a .npy without its manifest is refused.
    #[arg(long)]
    plain_npy: bool,
    /// The text query.
    #[arg(long, value_name = "TEXT")]
    query: String,
    /// How many results.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
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
        let enc = text_encoder::<B>(&self.text, &device)?;
        let q = to_vec(enc.encode(&[self.query.as_str()], &EncodeOptions::default())?)?;
        let hits = index.search(ndarray::ArrayView1::from(&q[..]), self.top_k)?;
        if self.json {
            let v: Vec<serde_json::Value> = hits
                .iter()
                .map(|h| serde_json::json!({"name": index.names[h.index], "index": h.index, "score": h.score}))
                .collect();
            return print_stdout(&format!("{}\n", serde_json::Value::Array(v)));
        }
        let mut s = String::new();
        for (rank, h) in hits.iter().enumerate() {
            s.push_str(&format!(
                "{:>3}  {:.4}  {}\n",
                rank + 1,
                h.score,
                index.names[h.index]
            ));
        }
        print_stdout(&s)
    }
}
