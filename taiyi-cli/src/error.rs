//! The CLI's error type.

use std::path::PathBuf;

use taiyi_core::ClipError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error(transparent)]
    Tokenizer(#[from] taiyi_preprocess::tokenizer::TokenizerError),
    #[error(transparent)]
    Image(#[from] taiyi_preprocess::transform::ImageError),
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// A `taiyi serve` setting that cannot work.
    #[error(transparent)]
    ServeConfig(#[from] taiyi_server::ConfigError),
    /// `taiyi serve` stopped with an error.
    #[error("the server stopped")]
    Serve(#[source] taiyi_server::ServeTaskError),
    /// A feature vector that cannot be used (NaN/inf, or zero norm): the weights are broken.
    #[error("the feature vector of {name} is unusable (norm {norm}): are the weights broken?")]
    BadFeatures { name: String, norm: f32 },
    /// Results that are NaN or infinite.
    #[error("the {what} are not finite numbers: are the weights or logit_scale broken?")]
    NonFinite { what: &'static str },
}
