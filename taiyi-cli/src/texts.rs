//! Texts read from a file, one per line.

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
mod tests {
    use super::lines;

    #[test]
    fn one_text_per_line_whatever_the_endings() {
        assert_eq!(lines("a\n\nb\n"), ["a", "", "b"]);
        assert_eq!(lines("a\r\n\r\nb"), ["a", "", "b"]);
        assert_eq!(lines("a\r\rb\r"), ["a", "", "b"]);
        assert_eq!(lines("\n\n"), ["", ""]);
        assert!(lines("").is_empty());
    }
}
