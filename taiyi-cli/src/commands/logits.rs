//! `taiyi logits`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::{BackendTask, ImageSource, to_array2};

use crate::args::{ClipArgs, clip_model};
use crate::error::CliError;
use crate::output::{check_finite, print_stdout};

#[derive(Args, Debug)]
pub(crate) struct LogitsArgs {
    #[command(flatten)]
    pub(crate) clip: ClipArgs,
    /// Image(s) (repeat --image, or list several paths after it).
    #[arg(long = "image", value_name = "PATH", required = true)]
    images: Vec<PathBuf>,
    /// Text(s) (repeat --text).
    #[arg(long = "text", value_name = "TEXT", required = true)]
    texts: Vec<String>,
    /// More images given positionally.
    #[arg(value_name = "IMAGE")]
    more_images: Vec<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

impl BackendTask for LogitsArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let mut images = self.images.clone();
        images.extend(self.more_images.iter().cloned());
        let model = clip_model::<B>(&self.clip, &device)?;
        let sources: Vec<ImageSource> = images.iter().cloned().map(ImageSource::from).collect();
        let out = model.logits(&sources, &self.texts)?;
        let logits = to_array2(out.logits_per_image.clone())?;
        let probs = out.probs()?;
        check_finite(logits.iter().chain(probs.iter()), "logits")?;
        if self.json {
            let rows = |a: &ndarray::Array2<f32>| -> Vec<Vec<f32>> {
                a.outer_iter().map(|r| r.to_vec()).collect()
            };
            let v = serde_json::json!({
                "images": images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "texts": self.texts,
                "logit_scale": model.logit_scale()?,
                "logits_per_image": rows(&logits),
                "probs": rows(&probs),
            });
            return print_stdout(&format!("{v}\n"));
        }
        let mut s = format!(
            "logit_scale.exp() = {:.4}\nlogits_per_image [images x texts]:\n",
            model.logit_scale()?
        );
        for (img, row) in images.iter().zip(logits.outer_iter()) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
            s.push_str(&format!("  {}  [{}]\n", img.display(), cells.join(", ")));
        }
        s.push_str("probs (softmax over texts):\n");
        for (img, row) in images.iter().zip(probs.outer_iter()) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
            s.push_str(&format!("  {}  [{}]\n", img.display(), cells.join(", ")));
        }
        s.push_str(&format!("texts: {}\n", self.texts.join(" | ")));
        print_stdout(&s)
    }
}
