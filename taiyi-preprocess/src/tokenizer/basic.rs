//! `PreTrainedTokenizer.tokenize`'s special-token split and lowercasing, and `BasicTokenizer`
//! (cleaning, CJK padding, NFC, accent stripping, punctuation split) in front of WordPiece.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

use super::BertTokenizer;
use super::unicode::{
    is_bert_whitespace, is_chinese_char, is_control, is_nonspacing_mark, is_punctuation,
    is_py_space, push_lower,
};

impl BertTokenizer {
    /// The special token (text, id) starting at byte `pos` of `text`, if any: the first in
    /// `all_special_tokens` order (`longest == false`, the lowercasing regex's alternation) or
    /// the longest (`longest == true`, the trie).
    fn special_at(&self, text: &str, pos: usize, longest: bool) -> Option<(usize, u32)> {
        let rest = &text[pos..];
        let first = rest.chars().next()?;
        if !self.inner.special_first_chars.contains(&first) {
            return None;
        }
        let mut best: Option<(usize, u32)> = None;
        for (tok, id) in &self.inner.specials {
            if rest.starts_with(tok.as_str()) {
                if !longest {
                    return Some((tok.len(), *id));
                }
                if best.is_none_or(|(l, _)| tok.len() > l) {
                    best = Some((tok.len(), *id));
                }
            }
        }
        best
    }

    /// `PreTrainedTokenizer.tokenize` + `convert_tokens_to_ids`, appending to `out`.
    pub(super) fn push_text_ids(&self, text: &str, out: &mut Vec<u32>) {
        let lowered;
        let text = if self.inner.options.do_lower_case {
            lowered = self.lower_outside_specials(text);
            lowered.as_str()
        } else {
            text
        };
        let mut segment_start = 0;
        let mut pos = 0;
        while pos < text.len() {
            if let Some((len, id)) = self.special_at(text, pos, true) {
                self.basic_ids(&text[segment_start..pos], out);
                out.push(id);
                pos += len;
                segment_start = pos;
            } else {
                pos += text[pos..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.basic_ids(&text[segment_start..], out);
    }

    /// The lowercasing `re.sub` of `PreTrainedTokenizer.tokenize`: special tokens are copied,
    /// every other code point is replaced by its own `str.lower()`.
    fn lower_outside_specials(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        let mut pos = 0;
        while pos < text.len() {
            if let Some((len, _)) = self.special_at(text, pos, false) {
                out.push_str(&text[pos..pos + len]);
                pos += len;
                continue;
            }
            let Some(c) = text[pos..].chars().next() else {
                break;
            };
            push_lower(c, &mut out);
            pos += c.len_utf8();
        }
        out
    }

    fn is_special(&self, token: &str) -> bool {
        self.inner.specials.iter().any(|(t, _)| t == token)
    }

    /// `BertTokenizer._tokenize` (BasicTokenizer then WordPiece) on a piece of text without
    /// special-token matches, appending ids to `out`.
    fn basic_ids(&self, segment: &str, out: &mut Vec<u32>) {
        if segment.is_empty() {
            return;
        }
        let opts = &self.inner.options;
        // _clean_text + _tokenize_chinese_chars (both per code point, so one pass).
        let mut buf = String::with_capacity(segment.len() + 16);
        for c in segment.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_bert_whitespace(c) {
                buf.push(' ');
            } else if opts.tokenize_chinese_chars && is_chinese_char(c) {
                buf.push(' ');
                buf.push(c);
                buf.push(' ');
            } else {
                buf.push(c);
            }
        }
        if is_nfc_quick(buf.chars()) != IsNormalized::Yes {
            buf = buf.nfc().collect();
        }
        let strip = if opts.do_lower_case {
            opts.strip_accents != Some(false)
        } else {
            opts.strip_accents == Some(true)
        };
        let mut word = String::new();
        for token in buf.split(is_py_space).filter(|t| !t.is_empty()) {
            if self.is_special(token) {
                // never_split: kept whole, then WordPiece finds it in the vocabulary.
                self.wordpiece_ids(token, out);
                continue;
            }
            let mut transformed = if opts.do_lower_case {
                // Second `token.lower()`: the text was already lowercased code point by code
                // point, so no U+03A3 is left and Python's final-sigma context rule cannot apply.
                let mut s = String::with_capacity(token.len());
                token.chars().for_each(|c| push_lower(c, &mut s));
                s
            } else {
                token.to_string()
            };
            if strip && !transformed.is_ascii() {
                transformed = transformed
                    .nfd()
                    .filter(|&c| !is_nonspacing_mark(c))
                    .collect();
            }
            if self.is_special(&transformed) {
                self.wordpiece_ids(&transformed, out);
                continue;
            }
            // _run_split_on_punc, then whitespace_tokenize(" ".join(...)).
            word.clear();
            for c in transformed.chars() {
                if is_punctuation(c) {
                    self.flush_word(&word, out);
                    word.clear();
                    let mut p = [0u8; 4];
                    self.wordpiece_ids(c.encode_utf8(&mut p), out);
                } else {
                    word.push(c);
                }
            }
            self.flush_word(&word, out);
        }
    }

    /// WordPiece on every `str.split()` part of `word`.
    fn flush_word(&self, word: &str, out: &mut Vec<u32>) {
        for part in word.split(is_py_space).filter(|t| !t.is_empty()) {
            self.wordpiece_ids(part, out);
        }
    }
}
