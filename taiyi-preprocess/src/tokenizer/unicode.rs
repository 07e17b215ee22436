//! Character properties as the reference Python 3.11 `unicodedata` (Unicode 14.0.0) sees them.
//!
//! Rust's `char` methods follow a newer Unicode version, so every property the slow
//! BertTokenizer consults is looked up in tables generated from Python
//! (`scripts/gen_unicode_tables.py` -> `unicode_tables.rs`).

use super::unicode_tables::{CATEGORY_C, CATEGORY_MN, CATEGORY_P, CATEGORY_ZS, LOWER, PY_ISSPACE};

/// Whether `c` lies in one of the sorted, disjoint inclusive ranges of `table`.
#[inline]
fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let cp = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `transformers.tokenization_utils._is_control`: category C* except `\t`, `\n`, `\r`.
#[inline]
pub(crate) fn is_control(c: char) -> bool {
    if c == '\t' || c == '\n' || c == '\r' {
        return false;
    }
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    in_ranges(CATEGORY_C, c)
}

/// `transformers.tokenization_utils._is_whitespace`: space, `\t`, `\n`, `\r` or category Zs.
#[inline]
pub(crate) fn is_bert_whitespace(c: char) -> bool {
    if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
        return true;
    }
    if c.is_ascii() {
        return false;
    }
    in_ranges(CATEGORY_ZS, c)
}

/// `transformers.tokenization_utils._is_punctuation`: the ASCII non-alphanumeric printables
/// (33-47, 58-64, 91-96, 123-126) or category P*.
#[inline]
pub(crate) fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    in_ranges(CATEGORY_P, c)
}

/// Category `Mn` (non-spacing mark), the marks `_run_strip_accents` drops.
#[inline]
pub(crate) fn is_nonspacing_mark(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    in_ranges(CATEGORY_MN, c)
}

/// Python's `str.isspace()`, the separator set of `str.split()` / `str.strip()`.
#[inline]
pub(crate) fn is_py_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '\t'..='\r' | '\x1c'..=' ');
    }
    in_ranges(PY_ISSPACE, c)
}

/// CJK ideograph ranges of `BasicTokenizer._is_chinese_char` (copied from the reference).
#[inline]
pub(crate) fn is_chinese_char(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Appends Python's `c.lower()` (single code point, full mapping, so U+0130 becomes two
/// code points) to `out`.
#[inline]
pub(crate) fn push_lower(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let cp = u32::from(c);
    match LOWER.binary_search_by_key(&cp, |&(k, _)| k) {
        Ok(i) => out.push_str(LOWER[i].1),
        Err(_) => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [CATEGORY_C, CATEGORY_P, CATEGORY_ZS, CATEGORY_MN, PY_ISSPACE] {
            for w in table.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
            }
        }
        for w in LOWER.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        assert_eq!(super::super::unicode_tables::UNICODE_VERSION, "14.0.0");
    }

    #[test]
    fn ascii_fast_paths_agree_with_tables() {
        for b in 0u8..128 {
            let c = char::from(b);
            assert_eq!(
                is_control(c),
                c != '\t' && c != '\n' && c != '\r' && in_ranges(CATEGORY_C, c),
                "{b}"
            );
            assert_eq!(is_py_space(c), in_ranges(PY_ISSPACE, c), "{b}");
            assert_eq!(is_nonspacing_mark(c), in_ranges(CATEGORY_MN, c), "{b}");
            let ascii_punct = matches!(b, 33..=47 | 58..=64 | 91..=96 | 123..=126);
            assert_eq!(
                is_punctuation(c),
                ascii_punct || in_ranges(CATEGORY_P, c),
                "{b}"
            );
            assert_eq!(
                is_bert_whitespace(c),
                matches!(c, ' ' | '\t' | '\n' | '\r') || in_ranges(CATEGORY_ZS, c)
            );
            let mut s = String::new();
            push_lower(c, &mut s);
            let from_table = LOWER
                .iter()
                .find(|&&(k, _)| k == u32::from(b))
                .map_or(c.to_string(), |&(_, v)| v.to_string());
            assert_eq!(s, from_table, "{b}");
        }
    }

    #[test]
    fn reference_unicode_version_not_rusts() {
        // U+1FAE8 (a Unicode 15 emoji, SHAKING FACE) is unassigned (Cn) in the reference, so it is a "control".
        assert!(is_control('\u{1FAE8}'));
        // U+0130 lowercases to two code points in Python.
        let mut s = String::new();
        push_lower('\u{130}', &mut s);
        assert_eq!(s, "i\u{307}");
        // U+2028 is not BERT whitespace (category Zl) but Python's split() splits on it.
        assert!(!is_bert_whitespace('\u{2028}') && is_py_space('\u{2028}'));
    }
}
