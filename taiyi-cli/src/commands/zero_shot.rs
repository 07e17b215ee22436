//! `taiyi zero-shot`.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::{BackendTask, ImageSource, ZeroShotClassifier, expand_templates};

use crate::args::{ClipArgs, clip_model};
use crate::error::CliError;
use crate::output::{check_finite, display_width, print_stdout};

#[derive(Args, Debug)]
pub(crate) struct ZeroShotArgs {
    #[command(flatten)]
    pub(crate) clip: ClipArgs,
    /// Image to classify (repeat --image for more; every positional argument is a label).
    #[arg(long = "image", value_name = "PATH", required = true)]
    images: Vec<PathBuf>,
    /// Chinese labels, e.g. 一只猫 一只狗.
    #[arg(value_name = "LABEL")]
    labels: Vec<String>,
    /// Prompt template with {} for the label (repeatable; default: the label alone, as in the
    /// model card). `--template zh` stands for the built-in Chinese prompt ensemble, and can be
    /// combined with templates of your own.
    #[arg(long = "template", value_name = "TEMPLATE")]
    templates: Vec<String>,
    /// Show only the k most probable labels per image.
    #[arg(long)]
    top_k: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl BackendTask for ZeroShotArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        let (images, labels) = (&self.images, &self.labels);
        if labels.is_empty() {
            return Err(CliError::Usage(
                "no labels given (e.g. 一只猫 一只狗)".into(),
            ));
        }
        let templates = expand_templates(&self.templates);
        let model = clip_model::<B>(&self.clip, &device)?;
        let classifier = ZeroShotClassifier::new(&model, labels, &templates)?;
        let sources: Vec<ImageSource> = images.iter().cloned().map(ImageSource::from).collect();
        let classes = classifier.classify(model.encode_images(&sources)?)?;
        check_finite(
            classes
                .iter()
                .flat_map(|c| &c.predictions)
                .flat_map(|p| [&p.probability, &p.logit]),
            "zero-shot probabilities",
        )?;
        let k = self.top_k.unwrap_or(labels.len());
        if self.json {
            let rows: Vec<serde_json::Value> = images
                .iter()
                .zip(&classes)
                .map(|(img, c)| {
                    serde_json::json!({
                        "image": img.display().to_string(),
                        "labels": labels,
                        "probs": c.probabilities(),
                        "top": c.ranked().iter().take(k).map(|x| serde_json::json!({"label": x.label, "probability": x.probability, "logit": x.logit})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            return print_stdout(&format!("{}\n", serde_json::Value::Array(rows)));
        }
        let width = labels.iter().map(|l| display_width(l)).max().unwrap_or(0);
        let mut out = String::new();
        for (img, c) in images.iter().zip(&classes) {
            out.push_str(&format!("{}\n", img.display()));
            for x in c.ranked().iter().take(k) {
                out.push_str(&format!(
                    "  {}{}  {:.4}\n",
                    x.label,
                    " ".repeat(width - display_width(&x.label)),
                    x.probability
                ));
            }
        }
        // The model card prints np.around(probs, 3) in label order.
        out.push_str("probs (label order, as in the model card):\n");
        for c in &classes {
            let cells: Vec<String> = c
                .probabilities()
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect();
            out.push_str(&format!("[{}]\n", cells.join(" ")));
        }
        print_stdout(&out)
    }
}
