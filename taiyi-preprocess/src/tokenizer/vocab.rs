//! Building a [`BertTokenizer`]: reading `vocab.txt` (and a model directory's configs) into
//! the vocabulary tables.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{BertTokenizer, Inner, TokenizerError, TokenizerOptions, config};

impl BertTokenizer {
    /// Loads `vocab.txt` (one token a line, split on `\n`, `\r\n` and `\r` as Python's
    /// universal-newline `readlines()` does; U+2028 is NOT a line break) with explicit options.
    ///
    /// Errors: unreadable file (missing, not a regular file, over
    /// [`taiyi_store::input::VOCAB_MAX_BYTES`]), invalid UTF-8, duplicate entry, missing special
    /// token, `max_length < 2`.
    pub fn from_vocab_file(
        path: impl AsRef<Path>,
        options: TokenizerOptions,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = taiyi_store::input::read_input(path, taiyi_store::input::InputKind::VOCAB)
            .map_err(|source| TokenizerError::VocabRead {
                path: path.to_path_buf(),
                source,
            })?;
        let text = String::from_utf8(bytes).map_err(|source| TokenizerError::VocabNotUtf8 {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_vocab_text(&text, path, options)
    }

    /// Builds the tokenizer from the text of a `vocab.txt`; `origin` only names it in errors.
    pub fn from_vocab_text(
        text: &str,
        origin: &Path,
        options: TokenizerOptions,
    ) -> Result<Self, TokenizerError> {
        if options.max_length < 2 {
            return Err(TokenizerError::MaxLengthTooSmall {
                max_length: options.max_length,
            });
        }
        // Universal newlines: "\r\n" and "\r" read as "\n"; readlines() then splits after each
        // "\n" and rstrip("\n") drops it. A final line without "\n" still counts; a trailing "\n"
        // does not start an extra entry.
        let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
        if normalized.is_empty() {
            return Err(TokenizerError::VocabEmpty {
                path: origin.to_path_buf(),
            });
        }
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut id_to_token = Vec::new();
        for (index, token) in body.split('\n').enumerate() {
            let id = u32::try_from(index).map_err(|_| TokenizerError::VocabTooLarge {
                path: origin.to_path_buf(),
                entries: index + 1,
            })?;
            if let Some(&first) = vocab.get(token) {
                return Err(TokenizerError::DuplicateVocabEntry {
                    path: origin.to_path_buf(),
                    token: token.to_string(),
                    first_line: first as usize + 1,
                    line: index + 1,
                });
            }
            vocab.insert(token.to_string(), id);
            id_to_token.push(token.to_string());
        }
        let continuation = vocab
            .iter()
            .filter_map(|(t, &id)| t.strip_prefix("##").map(|rest| (rest.to_string(), id)))
            .collect();
        let mut specials: Vec<(String, u32)> = Vec::new();
        for (role, token) in options.special_tokens.roles() {
            let id = *vocab
                .get(token)
                .ok_or_else(|| TokenizerError::MissingSpecialToken {
                    path: origin.to_path_buf(),
                    token: token.to_string(),
                    role,
                })?;
            if !specials.iter().any(|(t, _)| t == token) {
                specials.push((token.to_string(), id));
            }
        }
        let id_of = |t: &str| vocab.get(t).copied().unwrap_or(0);
        let st = &options.special_tokens;
        let (unk_id, cls_id, sep_id, pad_id) = (
            id_of(&st.unk),
            id_of(&st.cls),
            id_of(&st.sep),
            id_of(&st.pad),
        );
        let mut special_first_chars: Vec<char> = specials
            .iter()
            .filter_map(|(t, _)| t.chars().next())
            .collect();
        special_first_chars.sort_unstable();
        special_first_chars.dedup();
        Ok(Self {
            inner: Arc::new(Inner {
                vocab,
                continuation,
                id_to_token,
                options,
                specials,
                special_first_chars,
                unk_id,
                cls_id,
                sep_id,
                pad_id,
            }),
        })
    }

    /// Loads a Hugging Face model directory: `vocab.txt` plus, when present,
    /// `tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`,
    /// `model_max_length` — absent or absurd values (> 1e6, e.g. transformers' 1e30 sentinel)
    /// mean 512, a non-integer is an error — and special tokens) and `special_tokens_map.json`
    /// (special tokens; applied as transformers does when the config has no `added_tokens_decoder`).
    ///
    /// Errors: those of [`from_vocab_file`](Self::from_vocab_file) for `dir/vocab.txt`, plus
    /// unreadable or invalid JSON config files and wrongly typed or unsupported keys
    /// (`do_basic_tokenize: false`, extra added tokens, `lstrip`/`rstrip`/`single_word` specials).
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let options = config::read_options(dir)?;
        Self::from_vocab_file(dir.join("vocab.txt"), options)
    }
}
