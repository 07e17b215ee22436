//! `taiyi`: the command line of taiyi-rs (Taiyi-CLIP in Rust).
//!
//! Run `taiyi --help` for the commands. Errors go to stderr with a non-zero exit status; output
//! files are written atomically (nothing is half-written on failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taiyi_core::{DeviceSpec, Precision};

mod args;
mod commands;
mod error;
mod output;

use args::RunOptions;
use commands::{
    bench, embed_image, embed_text, index, logits, preprocess, search, serve, tokenize, zero_shot,
};
use error::CliError;

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
    /// Precision of the towers: f32, f16 or bf16 (f16: GPU backends; bf16 on the CPU: the
    /// linear weights in bf16, multiplied with f32 accumulation by the CPU's bf16 kernel).
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
    /// A one-directory model instead of the Taiyi pair (--text-model / --vision-model): a
    /// transformers ChineseCLIPModel directory (OFA-Sys Chinese-CLIP: config.json,
    /// pytorch_model.bin or model.safetensors, vocab.txt, preprocessor_config.json) or its hub
    /// id, e.g. OFA-Sys/chinese-clip-vit-base-patch16. The family is read from config.json.
    #[arg(long, global = true, value_name = "DIR|ORG/NAME")]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tokenize texts with the slow-BertTokenizer-exact tokenizer; one JSON object per text.
    Tokenize(tokenize::TokenizeArgs),
    /// Apply open_clip's ViT-H-14 image transform (or --model's preprocessor_config.json);
    /// writes float32 [N,3,S,S] .npy.
    Preprocess(preprocess::PreprocessArgs),
    /// Embed texts with the text tower; writes float32 [N,1024] .npy.
    EmbedText(embed_text::EmbedTextArgs),
    /// Embed images with the image tower; writes float32 [N,1024] .npy (+ its manifest FILE.npy.names.json).
    EmbedImage(embed_image::EmbedImageArgs),
    /// Zero-shot classification of images with Chinese labels (the model card's example).
    ZeroShot(zero_shot::ZeroShotArgs),
    /// Logits of images against texts: logit_scale.exp() * img @ txt.T, and softmax probs.
    Logits(logits::LogitsArgs),
    /// Search an embedded image collection (from embed-image) with a Chinese text query, an
    /// image, or precomputed query vectors.
    Search(search::SearchArgs),
    /// Approximate-search index of an embedded collection: `taiyi index build IDX.npy`.
    Index(index::IndexArgs),
    /// Time the towers on --device/--precision (random full-size weights by default).
    Bench(bench::BenchArgs),
    /// Serve embeddings, zero-shot classification and logits over HTTP (OpenAI-compatible
    /// /v1/embeddings, images included), with dynamic batching, limits and metrics.
    Serve(serve::ServeArgs),
}

/// On SIGINT/SIGTERM remove the temporary files of outputs being written, then exit with
/// 128 + the signal number as shells do (the targets stay as they were).
fn clean_up_on_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            taiyi_core::outfile::remove_temporary_files();
            std::process::exit(128 + signal);
        }
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server drains its requests on SIGINT/SIGTERM itself.
    if !matches!(cli.command, Command::Serve(_)) {
        clean_up_on_signals();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut lines = taiyi_core::error_chain(&e).into_iter();
            if let Some(first) = lines.next() {
                eprintln!("error: {first}");
            }
            for cause in lines {
                eprintln!("  caused by: {cause}");
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
        precision,
        warm_up: cli.warm_up,
        no_buckets: cli.no_buckets,
        model: cli.model,
    };
    let mut command = cli.command;
    match &mut command {
        Command::EmbedText(a) => a.model.run = opts.clone(),
        Command::EmbedImage(a) => a.model.run = opts.clone(),
        Command::ZeroShot(a) => a.clip.set_run(&opts),
        Command::Logits(a) => a.clip.set_run(&opts),
        Command::Search(a) => {
            a.text.run = opts.clone();
            a.vision.run = opts.clone();
        }
        Command::Tokenize(a) => a.model = opts.model.clone(),
        Command::Preprocess(a) => a.model = opts.model.clone(),
        Command::Bench(a) => {
            a.weights = device.dense_format(precision);
            a.model = opts.model.clone();
        }
        Command::Serve(_) | Command::Index(_) => {}
    }
    match command {
        Command::Tokenize(a) => tokenize::run(a),
        Command::Preprocess(a) => preprocess::run(a),
        Command::EmbedText(a) => device.run(precision, a),
        Command::EmbedImage(a) => device.run(precision, a),
        Command::ZeroShot(a) => device.run(precision, a),
        Command::Logits(a) => device.run(precision, a),
        Command::Search(a) => device.run(precision, a),
        Command::Index(a) => index::run(a),
        Command::Bench(a) => device.run(precision, a),
        Command::Serve(a) => serve::run(a, opts, precision),
    }
}
