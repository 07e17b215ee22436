//! Arguments shared by several commands (texts, the text and image towers, run options) and
//! the builders that turn them into encoders and models.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use clap::Args;
use taiyi_core::hub::{self, HubOptions};
use taiyi_core::{
    ClipModel, ClipOptions, DeviceSpec, Family, ImageEncoder, ModelDir, ModelSource, OptionChoices,
    Precision, TextEncoder, TextMode, vision_config_for,
};

use crate::error::CliError;

#[derive(Args, Debug)]
pub(crate) struct TextsInput {
    /// Texts (or use --texts-file).
    #[arg(value_name = "TEXT")]
    pub(crate) texts: Vec<String>,
    /// A UTF-8 file with one text per line (LF, CRLF or CR endings; an empty line is an empty
    /// text, so the output has one row per line). A regular file of at most 1 GiB
    /// ($TAIYI_MAX_TEXTS_FILE_BYTES sets another limit, e.g. 4GB).
    #[arg(long, value_name = "FILE")]
    pub(crate) texts_file: Option<PathBuf>,
}

impl TextsInput {
    pub(crate) fn collect(&self) -> Result<Vec<String>, CliError> {
        let mut texts = self.texts.clone();
        if let Some(f) = &self.texts_file {
            let env = std::env::var(taiyi_cli::texts::MAX_BYTES_ENV).ok();
            let kind = taiyi_cli::texts::input_kind(env.as_deref()).map_err(CliError::Usage)?;
            texts.extend(taiyi_cli::texts::read_file(f, kind)?);
        }
        if texts.is_empty() {
            return Err(CliError::Usage(
                "no texts given (TEXT... or --texts-file)".into(),
            ));
        }
        Ok(texts)
    }
}

#[derive(Args, Debug, Clone)]
pub(crate) struct TextModelArgs {
    /// HF text-tower directory (default: $TAIYI_TEXT_MODEL, else the hub).
    #[arg(long, value_name = "DIR")]
    pub(crate) text_model: Option<PathBuf>,
    /// Text mode: card (pad to longest, no mask: Taiyi's model card), fixed77, masked (the
    /// attention mask: Chinese-CLIP's model card) [default: the family's model card].
    #[arg(long, value_enum)]
    pub(crate) mode: Option<TextMode>,
    /// Texts per forward pass [default: 32 on cpu, 128 on GPUs].
    #[arg(long)]
    pub(crate) text_batch_size: Option<usize>,
    #[arg(skip)]
    pub(crate) run: RunOptions,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct VisionModelArgs {
    /// open_clip checkpoint file or directory (default: $TAIYI_VISION_MODEL, else the hub).
    #[arg(long, value_name = "FILE")]
    pub(crate) vision_model: Option<PathBuf>,
    /// Image-tower architecture: an open_clip name (ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32,
    /// with -quickgelu) or an open_clip model-config JSON file.
    #[arg(long, default_value = "ViT-H-14", value_name = "NAME|FILE.json")]
    pub(crate) vision_arch: String,
    /// Images per forward pass [default: 8 on cpu, 64 on GPUs].
    #[arg(long)]
    pub(crate) image_batch_size: Option<usize>,
    #[arg(skip)]
    pub(crate) run: RunOptions,
}

/// What the global flags say about running the towers, handed to the model arguments.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) device: DeviceSpec,
    pub(crate) precision: Precision,
    pub(crate) warm_up: bool,
    pub(crate) no_buckets: bool,
    /// `--model`: a one-directory model (Chinese-CLIP) or its hub id.
    pub(crate) model: Option<PathBuf>,
}

/// Texts of up to this many tokens are covered by `--warm-up`.
pub(crate) const WARM_UP_TOKENS: usize = 64;

impl RunOptions {
    /// `--model`'s directory, opened, when given (`None`: the Taiyi pair). `pair_given`:
    /// whether `--text-model` / `--vision-model` was given too, a usage error with `--model`.
    pub(crate) fn model_dir(&self, pair_given: bool) -> Result<Option<ModelDir>, CliError> {
        let Some(spec) = &self.model else {
            return Ok(None);
        };
        if pair_given {
            return Err(pair_with_model());
        }
        Ok(Some(ModelDir::resolve(spec, &HubOptions::from_env())?))
    }

    /// The model the flags name: `--model`, else the Taiyi pair from `text` / `vision` (each
    /// else its environment variable, else the hub). `--model` with either of the pair is a
    /// usage error: one model choice.
    pub(crate) fn source(
        &self,
        text: Option<&Path>,
        vision: Option<&Path>,
    ) -> Result<ModelSource, CliError> {
        if self.model.is_some() && (text.is_some() || vision.is_some()) {
            return Err(pair_with_model());
        }
        Ok(ModelSource::resolve(
            self.model.as_deref(),
            text,
            vision,
            &HubOptions::from_env(),
        )?)
    }

    /// The load options of a `family` model on the chosen device and precision, with the
    /// user's text mode and batch sizes ([`ClipOptions::choose`]).
    pub(crate) fn options(
        &self,
        family: Family,
        text_mode: Option<TextMode>,
        text_batch: Option<usize>,
        image_batch: Option<usize>,
    ) -> ClipOptions {
        let choices = OptionChoices {
            text_mode,
            text_batch_size: text_batch,
            image_batch_size: image_batch,
            no_buckets: self.no_buckets,
        };
        ClipOptions::choose(family, self.device, self.precision, &choices)
    }
}

/// `--model` given with `--text-model` / `--vision-model`.
fn pair_with_model() -> CliError {
    CliError::Usage(
        "--model names the whole model: give it without --text-model / --vision-model".into(),
    )
}

/// Report a warm-up on stderr.
pub(crate) fn warmed_up(what: &str, passes: usize, start: std::time::Instant) {
    eprintln!(
        "warm-up: {passes} {what} pass(es) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// The text and image towers together (`zero-shot`, `logits`).
#[derive(Args, Debug, Clone)]
pub(crate) struct ClipArgs {
    #[command(flatten)]
    pub(crate) text: TextModelArgs,
    #[command(flatten)]
    pub(crate) vision: VisionModelArgs,
}

impl ClipArgs {
    /// Hand the global run options to both towers.
    pub(crate) fn set_run(&mut self, run: &RunOptions) {
        self.text.run = run.clone();
        self.vision.run = run.clone();
    }
}

pub(crate) fn text_encoder<B: Backend>(
    a: &TextModelArgs,
    device: &B::Device,
) -> Result<TextEncoder<B>, CliError> {
    let (dir, family) = match a.run.model_dir(a.text_model.is_some())? {
        Some(model) => (model.dir, model.family),
        None => (
            hub::resolve_text_dir(a.text_model.as_deref(), &HubOptions::from_env())?,
            Family::Taiyi,
        ),
    };
    let options = a.run.options(family, a.mode, a.text_batch_size, None);
    let enc = TextEncoder::from_dir_as(&dir, device, options.weights)?
        .with_mode(options.text_mode)
        .with_batch_size(options.text_batch_size)
        .with_buckets(options.buckets);
    if a.run.warm_up {
        let start = std::time::Instant::now();
        warmed_up("text", enc.warm_up(WARM_UP_TOKENS)?, start);
    }
    Ok(enc)
}

pub(crate) fn image_encoder<B: Backend>(
    a: &VisionModelArgs,
    device: &B::Device,
) -> Result<(ImageEncoder<B>, Option<f32>, PathBuf), CliError> {
    // Only the image tower is resolved: a Taiyi text directory is not needed here.
    let model = a.run.model_dir(a.vision_model.is_some())?;
    let family = model.as_ref().map_or(Family::Taiyi, |m| m.family);
    let options = a.run.options(family, None, None, a.image_batch_size);
    let (enc, file) = match model {
        Some(dir) => (
            ImageEncoder::from_model_dir_as(&dir, device, options.weights)?,
            dir.dir,
        ),
        None => {
            let file =
                hub::resolve_vision_file(a.vision_model.as_deref(), &HubOptions::from_env())?;
            let config = taiyi_core::arch::vision_config(&a.vision_arch)?;
            (
                ImageEncoder::from_file_as(&file, &config, device, options.weights)?,
                file,
            )
        }
    };
    let scale = enc.logit_scale();
    let enc = enc
        .with_batch_size(options.image_batch_size)
        .with_buckets(options.buckets);
    if a.run.warm_up {
        let start = std::time::Instant::now();
        warmed_up("image", enc.warm_up()?, start);
    }
    Ok((enc, scale, file))
}

pub(crate) fn clip_model<B: Backend>(
    args: &ClipArgs,
    device: &B::Device,
) -> Result<ClipModel<B>, CliError> {
    let (t, v) = (&args.text, &args.vision);
    let source = t
        .run
        .source(t.text_model.as_deref(), v.vision_model.as_deref())?;
    let options = t
        .run
        .options(
            source.family(),
            t.mode,
            t.text_batch_size,
            v.image_batch_size,
        )
        .with_vision(vision_config_for(source.dir(), &v.vision_arch)?);
    let model = ClipModel::load_source(&source, &options, device)?;
    if t.run.warm_up {
        let start = std::time::Instant::now();
        let report = model.warm_up(WARM_UP_TOKENS)?;
        warmed_up(
            "text + image",
            report.text_passes + report.image_passes,
            start,
        );
    }
    Ok(model)
}
