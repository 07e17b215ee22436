//! `taiyi tokenize`.

use std::path::PathBuf;

use clap::Args;
use taiyi_core::TextMode;
use taiyi_preprocess::tokenizer::{BertTokenizer, Padding, Truncation};

use crate::args::TextsInput;
use crate::error::CliError;
use crate::output::print_stdout;

#[derive(Args, Debug)]
pub(crate) struct TokenizeArgs {
    /// vocab.txt to load (do_lower_case = true).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "model_dir",
        required_unless_present_any = ["model_dir", "model"]
    )]
    vocab: Option<PathBuf>,
    /// HF model directory (vocab.txt + tokenizer_config.json).
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Truncate to this many tokens, [SEP] kept last (default: what `embed-text` keeps in
    /// --mode: the tokenizer's model_max_length, the model's positions from --model-dir's
    /// config.json, 77 in fixed77, whichever is smallest).
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// Pad: `longest` (to the longest text given) or a number N (pad and truncate to N)
    /// (default: as --mode pads when it is given: card longest, fixed77 77, masked none;
    /// else none).
    #[arg(long, value_name = "longest|N")]
    pad: Option<String>,
    /// Print the ids that `embed-text --mode MODE` embeds for the same texts (its truncation
    /// and padding; one call = one batch, as `embed-text` pads a call in card mode).
    #[arg(long, value_enum)]
    mode: Option<TextMode>,
    #[command(flatten)]
    input: TextsInput,
    /// The global `--model` (its directory's tokenizer), handed over by `main`.
    #[arg(skip)]
    pub(crate) model: Option<PathBuf>,
}

pub(crate) fn run(mut a: TokenizeArgs) -> Result<(), CliError> {
    if let Some(spec) = a.model.take() {
        if a.vocab.is_some() || a.model_dir.is_some() {
            return Err(CliError::Usage(
                "--model names the tokenizer's directory: give it without --vocab / --model-dir"
                    .into(),
            ));
        }
        let dir = taiyi_core::hub::resolve_model_dir(&spec, &taiyi_core::HubOptions::from_env())?;
        a.model_dir = Some(dir);
    }
    let tok = match (&a.vocab, &a.model_dir) {
        (Some(v), _) => BertTokenizer::from_vocab_file(v, Default::default())?,
        (None, Some(d)) => BertTokenizer::from_model_dir(d)?,
        (None, None) => return Err(CliError::Usage("--vocab or --model-dir is required".into())),
    };
    let texts = a.input.collect()?;
    // The model's positions bound what embed-text keeps: known from --model-dir's config.json
    // (a tokenizer-only folder has none).
    let max_positions = match &a.model_dir {
        Some(d) if d.join("config.json").exists() => {
            taiyi_text::read_config(&d.join("config.json"))
                .map_err(taiyi_core::ClipError::from)?
                .max_position_embeddings
        }
        _ => usize::MAX,
    };
    let mode = a.mode.unwrap_or(TextMode::ModelCard);
    let truncation = Truncation::MaxLength(match a.max_length {
        Some(n) => n,
        None => mode.max_tokens(tok.options().max_length, max_positions),
    });
    let padding = match a.pad.as_deref() {
        None => a.mode.and_then(|m| match m {
            TextMode::ModelCard => Some(Padding::Longest),
            TextMode::Fixed77 => Some(Padding::Fixed(TextMode::FIXED_LEN)),
            TextMode::Masked => None,
        }),
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
