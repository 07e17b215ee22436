//! Rust errors as Python exceptions.
//!
//! The classes live in `taiyi/_errors.py` (Python multiple inheritance): `TaiyiError` is the
//! base of all, `TaiyiValueError` is also a `ValueError` (bad input: empty lists, unknown
//! names, undecodable images, mismatched sizes), `TaiyiFileNotFoundError` also a
//! `FileNotFoundError` (a path that does not exist). The message is the Rust one, with the
//! causes that its text does not already contain.

use pyo3::prelude::*;
use pyo3::types::PyType;
use taiyi_core::ClipError;
use taiyi_preprocess::tokenizer::TokenizerError;
use taiyi_text::TextError;

/// Which Python class an error becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `taiyi.TaiyiError`.
    Base,
    /// `taiyi.TaiyiValueError` (a `ValueError`).
    Value,
    /// `taiyi.TaiyiFileNotFoundError` (a `FileNotFoundError`).
    NotFound,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "TaiyiError",
            Kind::Value => "TaiyiValueError",
            Kind::NotFound => "TaiyiFileNotFoundError",
        }
    }
}

/// The message of `e` with every cause, `": "`-separated (as the CLI and the server say it).
pub fn message(e: &(dyn std::error::Error + 'static)) -> String {
    taiyi_core::error_report(e)
}

/// The class for `e`: a missing file anywhere in the chain wins, then input errors.
pub fn kind(e: &ClipError) -> Kind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return Kind::NotFound;
        }
        source = s.source();
    }
    match e {
        ClipError::Image(_)
        | ClipError::Tokenizer(
            TokenizerError::EmptyBatch
            | TokenizerError::MaxLengthTooSmall { .. }
            | TokenizerError::RaggedBatch { .. }
            | TokenizerError::PaddingTooLong { .. }
            | TokenizerError::TooManyTokens { .. }
            | TokenizerError::IdOutOfVocab { .. },
        )
        | ClipError::EmptyInput { .. }
        | ClipError::Mismatch { .. }
        | ClipError::InvalidDevice { .. }
        | ClipError::InvalidPrecision { .. }
        | ClipError::Architecture { .. }
        | ClipError::NoLogitScale { .. }
        | ClipError::Text(
            TextError::UnknownMode { .. }
            | TextError::EmptyInput { .. }
            | TextError::SequenceTooLong { .. },
        ) => Kind::Value,
        _ => Kind::Base,
    }
}

/// A Python exception of class `kind` with `msg`.
pub fn raise(py: Python<'_>, kind: Kind, msg: String) -> PyErr {
    let class = py
        .import("taiyi._errors")
        .and_then(|m| m.getattr(kind.class_name()))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(c) => PyErr::from_type(c, msg),
        Err(e) => e,
    }
}

/// `e` as a Python exception.
pub fn to_py(py: Python<'_>, e: &ClipError) -> PyErr {
    raise(py, kind(e), message(e))
}
