//! Terminal output: stdout, progress bars, display width, error chains, output checks.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;

/// Print `s` on stdout. A closed stdout (`taiyi … | head`) is not an error: like other Unix
/// tools the command then ends quietly with success.
pub(crate) fn print_stdout(s: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(|source| CliError::Io {
            path: PathBuf::from("<stdout>"),
            source,
        }),
    }
}

/// A progress bar on stderr when it is a terminal (hidden otherwise).
pub(crate) fn progress_bar(len: usize, what: &str) -> ProgressBar {
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

/// Columns a string takes in a terminal (CJK characters take two).
pub(crate) fn display_width(s: &str) -> usize {
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

/// Refuse features that are not finite or, raw, that have no direction (zero norm): written
/// out they would be NaN/null rows that silently rank anywhere.
pub(crate) fn check_features(
    values: &[f32],
    dim: usize,
    names: &[String],
    raw: bool,
) -> Result<(), CliError> {
    for (row, name) in values.chunks(dim.max(1)).zip(names) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || (raw && norm == 0.0) {
            return Err(CliError::BadFeatures {
                name: name.clone(),
                norm,
            });
        }
    }
    Ok(())
}

/// Refuse NaN/inf results (broken weights or an overflowing `logit_scale`) instead of printing
/// them as JSON `null`.
pub(crate) fn check_finite<'a>(
    values: impl IntoIterator<Item = &'a f32>,
    what: &'static str,
) -> Result<(), CliError> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(CliError::NonFinite { what })
    }
}
