//! `taiyi`: the command line of taiyi-rs (Taiyi-CLIP in Rust).
//!
//! Run `taiyi --help` for the commands. Errors go to stderr with a non-zero exit status; output
//! files are written atomically (nothing is half-written on failure).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::backend::Backend;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use taiyi_core::hub::{self, HubOptions};
use taiyi_core::retrieval::EmbeddingIndex;
use taiyi_core::{
    BackendTask, CHINESE_TEMPLATES, ClipError, ClipModel, ClipOptions, DeviceSpec, ImageEncoder,
    ImageSource, ModelPaths, Precision, ShapeBuckets, TextEncoder, TextMode, ZeroShotClassifier,
    l2_normalize, npy, to_array2, to_vec,
};
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, Truncation};
use taiyi_preprocess::transform::{ImageInput, ImageTransform};

mod bench;

#[derive(Parser, Debug)]
#[command(
    name = "taiyi",
    version,
    about = "Taiyi-CLIP (Chinese CLIP) in Rust: tokenize, preprocess, embed, zero-shot classify, search"
)]
struct Cli {
    /// Device: cpu, wgpu, wgpu:N, cuda or cuda:N (GPU backends must be compiled in).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// Precision of the towers: f32, f16 or bf16 (GPU backends only for f16/bf16).
    #[arg(long, global = true, default_value = "f32")]
    precision: String,
    /// Before the work, run the towers on every shape bucket (texts up to 64 tokens) so that
    /// GPU kernels are compiled and tuned up front.
    #[arg(long, global = true)]
    warm_up: bool,
    /// Run every shape as it comes: no padding of masked-mode texts to multiples of 16 tokens
    /// and of batches to powers of two (the GPU default; the CPU never pads).
    #[arg(long, global = true)]
    no_buckets: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tokenize texts with the slow-BertTokenizer-exact tokenizer; one JSON object per text.
    Tokenize(TokenizeArgs),
    /// Apply open_clip's ViT-H-14 image transform; writes float32 [N,3,224,224] .npy.
    Preprocess(PreprocessArgs),
    /// Embed texts with the text tower; writes float32 [N,1024] .npy.
    EmbedText(EmbedTextArgs),
    /// Embed images with the image tower; writes float32 [N,1024] .npy (+ FILE.names.txt).
    EmbedImage(EmbedImageArgs),
    /// Zero-shot classification of images with Chinese labels (the model card's example).
    ZeroShot(ZeroShotArgs),
    /// Logits of images against texts: logit_scale.exp() * img @ txt.T, and softmax probs.
    Logits(LogitsArgs),
    /// Search an embedded image collection (from embed-image) with a Chinese text query.
    Search(SearchArgs),
    /// Time the towers on --device/--precision (random full-size weights by default).
    Bench(bench::BenchArgs),
}

#[derive(Args, Debug)]
struct TextsInput {
    /// Texts (or use --texts-file).
    #[arg(value_name = "TEXT")]
    texts: Vec<String>,
    /// A UTF-8 file with one text per line.
    #[arg(long, value_name = "FILE")]
    texts_file: Option<PathBuf>,
}

impl TextsInput {
    fn collect(&self) -> Result<Vec<String>, CliError> {
        let mut texts = self.texts.clone();
        if let Some(f) = &self.texts_file {
            let content = std::fs::read_to_string(f).map_err(|source| CliError::Io {
                path: f.clone(),
                source,
            })?;
            texts.extend(
                content
                    .split('\n')
                    .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
        if texts.is_empty() {
            return Err(CliError::Usage(
                "no texts given (TEXT... or --texts-file)".into(),
            ));
        }
        Ok(texts)
    }
}

#[derive(Args, Debug)]
struct TokenizeArgs {
    /// vocab.txt to load (do_lower_case = true).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "model_dir",
        required_unless_present = "model_dir"
    )]
    vocab: Option<PathBuf>,
    /// HF model directory (vocab.txt + tokenizer_config.json).
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Truncate to this many tokens, [SEP] kept last (default: the tokenizer's, 512).
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// Pad: `longest` (to the longest text given) or a number N (pad and truncate to N).
    #[arg(long, value_name = "longest|N")]
    pad: Option<String>,
    #[command(flatten)]
    input: TextsInput,
}

#[derive(Args, Debug)]
struct PreprocessArgs {
    /// Image files.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<PathBuf>,
    /// Output .npy file.
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
}

#[derive(Args, Debug, Clone)]
struct TextModelArgs {
    /// HF text-tower directory (default: $TAIYI_TEXT_MODEL, else the hub).
    #[arg(long, value_name = "DIR")]
    text_model: Option<PathBuf>,
    /// Text mode: card (pad to longest, no mask: the model card), fixed77, masked.
    #[arg(long, value_enum, default_value = "card")]
    mode: ModeArg,
    /// Texts per forward pass [default: 32 on cpu, 128 on GPUs].
    #[arg(long)]
    text_batch_size: Option<usize>,
    #[arg(skip)]
    run: RunOptions,
}

#[derive(Args, Debug, Clone)]
struct VisionModelArgs {
    /// open_clip checkpoint file or directory (default: $TAIYI_VISION_MODEL, else the hub).
    #[arg(long, value_name = "FILE")]
    vision_model: Option<PathBuf>,
    /// Image-tower architecture: an open_clip name (ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32,
    /// with -quickgelu) or an open_clip model-config JSON file.
    #[arg(long, default_value = "ViT-H-14", value_name = "NAME|FILE.json")]
    vision_arch: String,
    /// Images per forward pass [default: 8 on cpu, 64 on GPUs].
    #[arg(long)]
    image_batch_size: Option<usize>,
    #[arg(skip)]
    run: RunOptions,
}

/// What the global flags say about running the towers, handed to the model arguments.
#[derive(Debug, Clone, Copy, Default)]
struct RunOptions {
    device: DeviceSpec,
    warm_up: bool,
    no_buckets: bool,
}

/// Texts of up to this many tokens are covered by `--warm-up`.
const WARM_UP_TOKENS: usize = 64;

impl RunOptions {
    /// Batch sizes and shape buckets for the device, with the user's batch sizes.
    fn options(&self, text_batch: Option<usize>, image_batch: Option<usize>) -> ClipOptions {
        let defaults = ClipOptions::for_device(self.device);
        ClipOptions {
            text_batch_size: text_batch.unwrap_or(defaults.text_batch_size),
            image_batch_size: image_batch.unwrap_or(defaults.image_batch_size),
            buckets: if self.no_buckets {
                ShapeBuckets::NONE
            } else {
                defaults.buckets
            },
            ..defaults
        }
    }
}

/// Report a warm-up on stderr.
fn warmed_up(what: &str, passes: usize, start: std::time::Instant) {
    eprintln!(
        "warm-up: {passes} {what} pass(es) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ModeArg {
    Card,
    Fixed77,
    Masked,
}

impl From<ModeArg> for TextMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Card => TextMode::ModelCard,
            ModeArg::Fixed77 => TextMode::Fixed77,
            ModeArg::Masked => TextMode::Masked,
        }
    }
}

#[derive(Args, Debug)]
struct EmbedTextArgs {
    #[command(flatten)]
    model: TextModelArgs,
    /// Write raw (unnormalised) features.
    #[arg(long)]
    raw: bool,
    /// Output .npy file.
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
    #[command(flatten)]
    input: TextsInput,
}

#[derive(Args, Debug)]
struct EmbedImageArgs {
    #[command(flatten)]
    model: VisionModelArgs,
    /// Image files.
    #[arg(value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Embed every image file of this directory (sorted by name; recursive).
    #[arg(long, value_name = "DIR")]
    images_dir: Option<PathBuf>,
    /// Write raw (unnormalised) features.
    #[arg(long)]
    raw: bool,
    /// Output .npy file (row names go to FILE.npy.names.txt).
    #[arg(long, value_name = "FILE.npy")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ZeroShotArgs {
    #[command(flatten)]
    text: TextModelArgs,
    #[command(flatten)]
    vision: VisionModelArgs,
    /// Image(s) to classify (repeat --image, or list several paths after it).
    #[arg(long = "image", value_name = "PATH", required = true)]
    images: Vec<PathBuf>,
    /// Chinese labels, e.g. 一只猫 一只狗.
    #[arg(value_name = "LABEL")]
    labels: Vec<String>,
    /// Prompt template with {} for the label (repeatable; default: the label alone, as in the
    /// model card). `--template zh` uses the built-in Chinese prompt ensemble.
    #[arg(long = "template", value_name = "TEMPLATE")]
    templates: Vec<String>,
    /// Show only the k most probable labels per image.
    #[arg(long)]
    top_k: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct LogitsArgs {
    #[command(flatten)]
    text: TextModelArgs,
    #[command(flatten)]
    vision: VisionModelArgs,
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

#[derive(Args, Debug)]
struct SearchArgs {
    #[command(flatten)]
    text: TextModelArgs,
    /// Embeddings written by `taiyi embed-image` (names from FILE.npy.names.txt).
    #[arg(long, value_name = "FILE.npy")]
    index: PathBuf,
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

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error(transparent)]
    Tokenizer(#[from] taiyi_preprocess::tokenizer::TokenizerError),
    #[error(transparent)]
    Image(#[from] taiyi_preprocess::transform::ImageError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let msg = s.to_string();
                if !e.to_string().contains(&msg) {
                    eprintln!("  caused by: {msg}");
                }
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let device: DeviceSpec = cli.device.parse()?;
    let precision: Precision = cli.precision.parse()?;
    let opts = RunOptions {
        device,
        warm_up: cli.warm_up,
        no_buckets: cli.no_buckets,
    };
    let mut command = cli.command;
    match &mut command {
        Command::EmbedText(a) => a.model.run = opts,
        Command::EmbedImage(a) => a.model.run = opts,
        Command::ZeroShot(a) => (a.text.run, a.vision.run) = (opts, opts),
        Command::Logits(a) => (a.text.run, a.vision.run) = (opts, opts),
        Command::Search(a) => a.text.run = opts,
        Command::Tokenize(_) | Command::Preprocess(_) | Command::Bench(_) => {}
    }
    match command {
        Command::Tokenize(a) => tokenize(a),
        Command::Preprocess(a) => preprocess(a),
        Command::EmbedText(a) => device.run(precision, a),
        Command::EmbedImage(a) => device.run(precision, a),
        Command::ZeroShot(a) => device.run(precision, a),
        Command::Logits(a) => device.run(precision, a),
        Command::Search(a) => device.run(precision, a),
        Command::Bench(a) => device.run(precision, a),
    }
}

fn tokenize(a: TokenizeArgs) -> Result<(), CliError> {
    let tok = match (&a.vocab, &a.model_dir) {
        (Some(v), _) => BertTokenizer::from_vocab_file(v, Default::default())?,
        (None, Some(d)) => BertTokenizer::from_model_dir(d)?,
        (None, None) => return Err(CliError::Usage("--vocab or --model-dir is required".into())),
    };
    let texts = a.input.collect()?;
    let truncation = match a.max_length {
        Some(n) => Truncation::MaxLength(n),
        None => Truncation::ModelMax,
    };
    let padding = match a.pad.as_deref() {
        None => None,
        Some("longest") => Some(Padding::Longest),
        Some(n) => Some(Padding::Fixed(n.parse::<usize>().map_err(|_| {
            CliError::Usage(format!("--pad must be `longest` or a number, got `{n}`"))
        })?)),
    };
    let mut out = String::new();
    let mut push = |ids: &[u32], mask: &[u32]| {
        out.push_str(&serde_json::json!({"ids": ids, "attention_mask": mask}).to_string());
        out.push('\n');
    };
    match padding {
        Some(p) => {
            let enc = tok.encode_batch(&texts, p, truncation)?;
            for r in 0..enc.batch_size {
                let ids = enc.row_ids(r).unwrap_or_default();
                let mask = enc.row_mask(r).unwrap_or_default();
                push(ids, mask);
            }
        }
        None => {
            for t in &texts {
                let enc = tok.encode_batch(&[t], Padding::None, truncation)?;
                push(&enc.ids, &enc.attention_mask);
            }
        }
    }
    print_stdout(&out)
}

fn print_stdout(s: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|source| CliError::Io {
            path: PathBuf::from("<stdout>"),
            source,
        })
}

fn preprocess(a: PreprocessArgs) -> Result<(), CliError> {
    let t = ImageTransform::open_clip_vit_h_14();
    let inputs: Vec<ImageInput<'_>> = a.images.iter().map(ImageInput::from).collect();
    let per = t.apply_batch(&inputs)?;
    let s = t.image_size();
    let flat: Vec<f32> = per.concat();
    npy::write_f32(&a.out, &[per.len(), 3, s, s], &flat)?;
    eprintln!("wrote {} [{}, 3, {s}, {s}]", a.out.display(), per.len());
    Ok(())
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || len < 2 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

fn text_encoder<B: Backend>(
    a: &TextModelArgs,
    device: &B::Device,
) -> Result<TextEncoder<B>, CliError> {
    let dir = hub::resolve_text_dir(a.text_model.as_deref(), &HubOptions::from_env())?;
    let options = a.run.options(a.text_batch_size, None);
    let enc = TextEncoder::from_dir(&dir, device)?
        .with_mode(a.mode.into())
        .with_batch_size(options.text_batch_size)
        .with_buckets(options.buckets);
    if a.run.warm_up {
        let start = std::time::Instant::now();
        warmed_up("text", enc.warm_up(WARM_UP_TOKENS)?, start);
    }
    Ok(enc)
}

fn image_encoder<B: Backend>(
    a: &VisionModelArgs,
    device: &B::Device,
) -> Result<(ImageEncoder<B>, Option<f32>, PathBuf), CliError> {
    let file = hub::resolve_vision_file(a.vision_model.as_deref(), &HubOptions::from_env())?;
    let config = taiyi_core::arch::vision_config(&a.vision_arch)?;
    let (enc, scale) = ImageEncoder::from_file(&file, &config, device)?;
    let options = a.run.options(None, a.image_batch_size);
    let enc = enc
        .with_batch_size(options.image_batch_size)
        .with_buckets(options.buckets);
    if a.run.warm_up {
        let start = std::time::Instant::now();
        warmed_up("image", enc.warm_up()?, start);
    }
    Ok((enc, scale, file))
}

fn clip_model<B: Backend>(
    t: &TextModelArgs,
    v: &VisionModelArgs,
    device: &B::Device,
) -> Result<ClipModel<B>, CliError> {
    let hub = HubOptions::from_env();
    let paths = ModelPaths::resolve(t.text_model.as_deref(), v.vision_model.as_deref(), &hub)?;
    let options = ClipOptions {
        vision: taiyi_core::arch::vision_config(&v.vision_arch)?,
        text_mode: t.mode.into(),
        ..t.run.options(t.text_batch_size, v.image_batch_size)
    };
    let model = ClipModel::load(&paths, &options, device)?;
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

/// Positional arguments that name existing files after `--image a.jpg b.jpg …` are images too.
fn split_images(mut images: Vec<PathBuf>, rest: Vec<String>) -> (Vec<PathBuf>, Vec<String>) {
    let mut labels = Vec::new();
    let mut leading = true;
    for r in rest {
        if leading && Path::new(&r).is_file() {
            images.push(PathBuf::from(r));
        } else {
            leading = false;
            labels.push(r);
        }
    }
    (images, labels)
}

impl BackendTask for EmbedTextArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        {
            let texts = self.input.collect()?;
            let enc = text_encoder::<B>(&self.model, &device)?;
            let pb = progress_bar(texts.len(), "texts");
            let raw = enc.encode_raw_with_progress(&texts, &mut |n| pb.set_position(n as u64))?;
            pb.finish_and_clear();
            let feats = if self.raw { raw } else { l2_normalize(raw) };
            let [n, d] = feats.dims();
            npy::write_f32(&self.out, &[n, d], &to_vec(feats)?)?;
            eprintln!("wrote {} [{n}, {d}]", self.out.display());
            Ok(())
        }
    }
}

fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    const EXT: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| CliError::Io {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let p = e
                .map_err(|source| CliError::Io {
                    path: d.clone(),
                    source,
                })?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| EXT.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl BackendTask for EmbedImageArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        {
            let mut paths = self.images.clone();
            if let Some(d) = &self.images_dir {
                paths.extend(image_files_in(d)?);
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "no images given (IMAGE... or --images-dir with image files)".into(),
                ));
            }
            let (enc, _, _) = image_encoder::<B>(&self.model, &device)?;
            let sources: Vec<ImageSource> = paths.iter().cloned().map(ImageSource::from).collect();
            let pb = progress_bar(sources.len(), "images");
            let raw = enc.encode_raw_with_progress(&sources, &mut |n| pb.set_position(n as u64))?;
            pb.finish_and_clear();
            let feats = if self.raw { raw } else { l2_normalize(raw) };
            let [n, d] = feats.dims();
            npy::write_f32(&self.out, &[n, d], &to_vec(feats)?)?;
            let names: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
            npy::write_atomic(&EmbeddingIndex::names_path(&self.out), names.as_bytes())?;
            eprintln!("wrote {} [{n}, {d}]", self.out.display());
            Ok(())
        }
    }
}

impl BackendTask for ZeroShotArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        {
            let (images, labels) = split_images(self.images.clone(), self.labels.clone());
            if labels.is_empty() {
                return Err(CliError::Usage(
                    "no labels given (e.g. 一只猫 一只狗)".into(),
                ));
            }
            let templates: Vec<String> = if self.templates.iter().any(|t| t == "zh") {
                CHINESE_TEMPLATES.iter().map(|s| s.to_string()).collect()
            } else {
                self.templates.clone()
            };
            let model = clip_model::<B>(&self.text, &self.vision, &device)?;
            let classifier = ZeroShotClassifier::new(&model, &labels, &templates)?;
            let sources: Vec<ImageSource> = images.iter().cloned().map(ImageSource::from).collect();
            let preds = classifier.classify(&model, &sources)?;
            let k = self.top_k.unwrap_or(labels.len());
            if self.json {
                let rows: Vec<serde_json::Value> = images
                    .iter()
                    .zip(&preds)
                    .map(|(img, p)| {
                        let mut probs = vec![0f32; labels.len()];
                        for x in p {
                            probs[x.index] = x.probability;
                        }
                        serde_json::json!({
                            "image": img.display().to_string(),
                            "labels": labels,
                            "probs": probs,
                            "top": p.iter().take(k).map(|x| serde_json::json!({"label": x.label, "probability": x.probability, "logit": x.logit})).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                return print_stdout(&format!("{}\n", serde_json::Value::Array(rows)));
            }
            let width = labels.iter().map(|l| display_width(l)).max().unwrap_or(0);
            let mut out = String::new();
            for (img, p) in images.iter().zip(&preds) {
                out.push_str(&format!("{}\n", img.display()));
                for x in p.iter().take(k) {
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
            for p in &preds {
                let mut probs = vec![0f32; labels.len()];
                for x in p {
                    probs[x.index] = x.probability;
                }
                let cells: Vec<String> = probs.iter().map(|v| format!("{v:.3}")).collect();
                out.push_str(&format!("[{}]\n", cells.join(" ")));
            }
            print_stdout(&out)
        }
    }
}

/// Columns a string takes in a terminal (CJK characters take two).
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if (c as u32) >= 0x1100 && !c.is_ascii() {
                2
            } else {
                1
            }
        })
        .sum()
}

impl BackendTask for LogitsArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        {
            let mut images = self.images.clone();
            images.extend(self.more_images.iter().cloned());
            let model = clip_model::<B>(&self.text, &self.vision, &device)?;
            let sources: Vec<ImageSource> = images.iter().cloned().map(ImageSource::from).collect();
            let out = model.logits(&sources, &self.texts)?;
            let logits = to_array2(out.logits_per_image.clone())?;
            let probs = out.probs()?;
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
}

impl BackendTask for SearchArgs {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: B::Device) -> Result<(), CliError> {
        {
            let index = EmbeddingIndex::load(&self.index)?;
            let enc = text_encoder::<B>(&self.text, &device)?;
            let q = to_vec(enc.encode(&[self.query.as_str()])?)?;
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
}
