//! Texts read from a file, one per line.

use std::path::Path;

use taiyi_core::ClipError;
use taiyi_core::input::{InputKind, TEXTS_FILE_MAX_BYTES, read_input_to_string};

/// Environment variable that sets the most bytes a texts file may hold (bytes, or with a
/// `KB`/`MB`/`GB` suffix, powers of 1024); [`TEXTS_FILE_MAX_BYTES`] (1 GiB) when unset or
/// empty.
pub const MAX_BYTES_ENV: &str = "TAIYI_MAX_TEXTS_FILE_BYTES";

/// What a texts file is read as: [`InputKind::TEXTS_FILE`], its cap set by `env_value` (the
/// value of [`MAX_BYTES_ENV`], if set).
///
/// # Errors
/// The reason, in words, if `env_value` is not a size.
pub fn input_kind(env_value: Option<&str>) -> Result<InputKind, String> {
    let kind = InputKind::TEXTS_FILE.raised_by(MAX_BYTES_ENV);
    match env_value.map(str::trim) {
        None | Some("") => Ok(kind.with_cap(TEXTS_FILE_MAX_BYTES)),
        Some(v) => taiyi_server::parse_byte_size(v)
            .map(|cap| kind.with_cap(cap as u64))
            .map_err(|e| format!("{MAX_BYTES_ENV}: {e}")),
    }
}

/// The texts of the file `path`, one per line ([`lines`]), read through
/// [`taiyi_core::input`]: a regular file (a FIFO or a device is refused without blocking) of
/// UTF-8 text, at most `kind`'s cap.
///
/// # Errors
/// [`ClipError::Read`] naming the path if it cannot be read, is not a regular file, is larger
/// than the cap or is not UTF-8.
pub fn read_file(path: &Path, kind: InputKind) -> Result<Vec<String>, ClipError> {
    let content = read_input_to_string(path, kind).map_err(|source| ClipError::Read {
        what: "texts file",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(lines(&content))
}

/// The lines of a texts file: split at LF, CRLF or a lone CR (Python's universal newlines);
/// a final line ending does not start another line. Empty lines are kept (empty texts), so
/// row `i` of the output is line `i + 1` of the file.
pub fn lines(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(i) => {
                out.push(rest[..i].to_string());
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest.to_string());
                rest = "";
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{MAX_BYTES_ENV, TEXTS_FILE_MAX_BYTES, input_kind, lines, read_file};

    #[test]
    fn texts_file_cap_comes_from_the_environment() {
        assert_eq!(input_kind(None).map(|k| k.cap()), Ok(TEXTS_FILE_MAX_BYTES));
        assert_eq!(
            input_kind(Some(" ")).map(|k| k.cap()),
            Ok(TEXTS_FILE_MAX_BYTES)
        );
        assert_eq!(input_kind(Some("2GB")).map(|k| k.cap()), Ok(2 << 30));
        assert_eq!(input_kind(Some("10")).map(|k| k.cap()), Ok(10));
        let err = input_kind(Some("lots")).unwrap_err();
        assert!(err.starts_with(MAX_BYTES_ENV), "{err}");
        // Over the cap: the numbers and the variable that raises it are in the message.
        let d = std::env::temp_dir().join(format!("taiyi-texts-cap-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("t.txt");
        std::fs::write(&p, "一只猫\n熊猫\n").unwrap();
        let err = read_file(&p, input_kind(Some("10")).unwrap()).unwrap_err();
        let msg = taiyi_core::error_report(&err);
        assert!(
            msg.contains("holds 17 bytes, more than the 10 bytes allowed for a texts file")
                && msg.contains(MAX_BYTES_ENV),
            "{msg}"
        );
        let texts = read_file(&p, input_kind(Some("17")).unwrap()).unwrap();
        assert_eq!(texts, ["一只猫", "熊猫"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn one_text_per_line_whatever_the_endings() {
        assert_eq!(lines("a\n\nb\n"), ["a", "", "b"]);
        assert_eq!(lines("a\r\n\r\nb"), ["a", "", "b"]);
        assert_eq!(lines("a\r\rb\r"), ["a", "", "b"]);
        assert_eq!(lines("\n\n"), ["", ""]);
        assert!(lines("").is_empty());
    }
}
