//! The error type of taiyi-core.

use std::path::PathBuf;

/// Everything that can go wrong in taiyi-core. Tower, tokenizer and image errors are kept as
/// the source, so the message names the file, key or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The tokenizer failed (vocabulary missing or malformed, empty batch, …).
    #[error(transparent)]
    Tokenizer(#[from] taiyi_preprocess::tokenizer::TokenizerError),
    /// An image could not be read, decoded or transformed.
    #[error(transparent)]
    Image(#[from] taiyi_preprocess::transform::ImageError),
    /// The text tower failed to load or to run.
    #[error(transparent)]
    Text(#[from] taiyi_text::TextError),
    /// The image tower failed to load or to run.
    #[error(transparent)]
    Vision(#[from] taiyi_vision::VisionError),
    /// A checkpoint could not be read.
    #[error(transparent)]
    Store(#[from] taiyi_store::StoreError),
    /// An input list was empty where at least one item is needed.
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: &'static str,
    },
    /// Two inputs that must agree do not (feature sizes, label counts, …).
    #[error("mismatched inputs: {message}")]
    Mismatch {
        /// What does not agree.
        message: String,
    },
    /// The open_clip checkpoint has no `logit_scale` (a visual-only state dict), so logits
    /// cannot be computed.
    #[error(
        "{path} has no logit_scale (a visual-only checkpoint?): pass the full open_clip checkpoint, or set the scale with ClipModel::with_logit_scale"
    )]
    NoLogitScale {
        /// The vision checkpoint.
        path: PathBuf,
    },
    /// A device or precision string could not be parsed.
    #[error("invalid device '{spec}': {reason}")]
    InvalidDevice {
        /// What was given.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The requested backend is not compiled in, or its device cannot be opened.
    #[error("backend {device} ({precision}) is not available: {reason}")]
    BackendUnavailable {
        /// The device asked for.
        device: String,
        /// The precision asked for.
        precision: String,
        /// Why it is unavailable.
        reason: String,
    },
    /// Downloading from the hub failed.
    #[error("cannot download {file} from the Hugging Face hub repository {repo}")]
    Hub {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The hub feature is disabled and the file is not in the cache.
    #[error(
        "{file} of {repo} is not in the local hub cache and this build has no `hub` feature to download it"
    )]
    HubDisabled {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
    },
    /// None of the candidate files could be found on the hub or in the cache.
    #[error("none of {files:?} found for {repo} (cache {cache_dir}{})", if *offline { ", HF_HUB_OFFLINE is set" } else { "" })]
    NotOnHub {
        /// The repository.
        repo: String,
        /// The file names tried.
        files: Vec<String>,
        /// Whether the network was off limits.
        offline: bool,
        /// The cache directory searched.
        cache_dir: PathBuf,
    },
    /// The environment names no folder for a cache (e.g. `HOME` unset in a container): the
    /// working directory is never used instead.
    #[error("no folder for the {what}: none of {variables} is set")]
    NoCacheDir {
        /// The cache: "Hugging Face hub cache", "GPU kernel cache".
        what: &'static str,
        /// The environment variables that name it, in order of precedence.
        variables: &'static str,
    },
    /// Reading or writing a file (e.g. a `.npy`) failed.
    #[error("cannot access {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A model directory cannot be used as one (see [`crate::ModelDir::open`]).
    #[error("model directory {dir}: {message}")]
    ModelDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model directory's `config.json` is not valid JSON of the expected shape.
    #[error("invalid model config {path}")]
    ModelConfig {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An input file could not be read through [`crate::input`] (missing, not a regular
    /// file, over its kind's cap, not UTF-8).
    #[error("cannot read {what} {path}")]
    Read {
        /// What the file is: "vision architecture", "index manifest", ...
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why (the error names the path).
        #[source]
        source: taiyi_store::input::InputError,
    },
    /// A text-tower path is a file: it must be the model directory (config.json, vocab.txt,
    /// the weights).
    #[error(
        "{path} is a file: the text model is a directory holding config.json, vocab.txt and pytorch_model.bin or model.safetensors"
    )]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The vocabulary has more entries than the text tower's embedding table.
    #[error(
        "{dir}: vocab.txt has {vocab} entries but config.json says vocab_size {config}: they belong to different models"
    )]
    VocabMismatch {
        /// The text model directory.
        dir: PathBuf,
        /// Entries of vocab.txt.
        vocab: usize,
        /// `vocab_size` of config.json.
        config: usize,
    },
    /// A precision string could not be parsed.
    #[error("invalid precision '{spec}': it must be f32, f16 or bf16")]
    InvalidPrecision {
        /// What was given.
        spec: String,
    },
    /// An image-tower architecture name or config is not usable.
    #[error("vision architecture {spec}: {reason}")]
    Architecture {
        /// The name or config file given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// An output path names something that is not a regular file (a device node, FIFO,
    /// socket or directory): it is never replaced.
    #[error("{path} is not a regular file: refusing to replace it")]
    NotRegularFile {
        /// The path (a symbolic link resolved).
        path: PathBuf,
    },
    /// An output file is read-only: it is not replaced.
    #[error("{path} is read-only: refusing to replace it")]
    ReadOnly {
        /// The file (a symbolic link resolved).
        path: PathBuf,
    },
    /// An output path is a symbolic link that points nowhere.
    #[error("{path} is a symbolic link to a missing file")]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: std::io::Error,
    },
    /// A `.npy` file is malformed or not a float32 matrix.
    #[error("invalid .npy file {path}: {message}")]
    Npy {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ANN engine (usearch) failed on an ANN index file.
    #[error("ANN index {path}: {what}")]
    Ann {
        /// The `.ann` file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An embedding index (`.npy` + manifest) is inconsistent or cannot be used.
    #[error("embedding index {path}: {message}")]
    Index {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor could not be read back from the device.
    #[error("cannot read a tensor back from the device: {message}")]
    Readback {
        /// The backend's message.
        message: String,
    },
}

/// The messages of `e` and of each of its sources, outermost first.
///
/// Every error of the taiyi crates states its own layer's fact and leaves the cause to
/// [`std::error::Error::source`], so this chain is the whole story without repetition: the CLI
/// prints it one cause per line, the server and the Python module join it with `": "`.
pub fn error_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}

/// [`error_chain`] joined with `": "`: one line for logs, HTTP bodies and exceptions.
pub fn error_report(e: &dyn std::error::Error) -> String {
    error_chain(e).join(": ")
}
