//! `taiyi embed-text`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::{BackendTask, EncodeOptions, npy, to_vec};

use crate::args::{TextModelArgs, TextsInput, text_encoder};
use crate::error::CliError;
use crate::output::{check_features, progress_bar};

#[derive(Args, Debug)]
pub(crate) struct EmbedTextArgs {
    #[command(flatten)]
    pub(crate) model: TextModelArgs,
    /// Write raw (unnormalised) features.
    #[arg(long)]
    raw: bool,
    /// Output .npy file.
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
    #[command(flatten)]
    input: TextsInput,
}

impl BackendTask for EmbedTextArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let texts = self.input.collect()?;
        let enc = text_encoder::<B>(&self.model, &device)?;
        let pb = progress_bar(texts.len(), "texts");
        let progress = |n: usize| pb.set_position(n as u64);
        let options = EncodeOptions::default()
            .normalized(!self.raw)
            .with_progress(&progress);
        let feats = enc.encode(&texts, &options)?;
        pb.finish_and_clear();
        let [n, d] = feats.dims();
        let values = to_vec(feats)?;
        check_features(&values, d, &texts, self.raw)?;
        npy::write_f32(&self.out, &[n, d], &values)?;
        eprintln!("wrote {} [{n}, {d}]", self.out.display());
        Ok(())
    }
}
