//! `WordpieceTokenizer`: greedy longest-match-first WordPiece on one word.

use super::{BertTokenizer, MAX_INPUT_CHARS_PER_WORD};

impl BertTokenizer {
    /// `WordpieceTokenizer.tokenize` on one whitespace-free word.
    pub(super) fn wordpiece_ids(&self, word: &str, out: &mut Vec<u32>) {
        let mut bounds: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        let n = bounds.len();
        if n == 0 {
            return;
        }
        if n > MAX_INPUT_CHARS_PER_WORD {
            out.push(self.inner.unk_id);
            return;
        }
        bounds.push(word.len());
        let mark = out.len();
        let mut start = 0;
        while start < n {
            let mut end = n;
            let mut found = None;
            while start < end {
                let piece = &word[bounds[start]..bounds[end]];
                let hit = if start == 0 {
                    self.inner.vocab.get(piece)
                } else {
                    self.inner.continuation.get(piece)
                };
                if let Some(&id) = hit {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.inner.unk_id);
                    return;
                }
            }
        }
    }
}
