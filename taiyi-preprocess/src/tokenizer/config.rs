//! Reading `tokenizer_config.json` / `special_tokens_map.json` of a model directory.

use std::path::Path;

use serde_json::{Map, Value};

use super::{DEFAULT_MAX_LENGTH, TokenizerError, TokenizerOptions};

/// `model_max_length` values above this are transformers' "no limit" sentinels (1e30) or
/// nonsense for BERT; they fall back to [`DEFAULT_MAX_LENGTH`].
const ABSURD_MAX_LENGTH: f64 = 1.0e6;

const SPECIAL_KEYS: [&str; 5] = [
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// Reads a JSON object file; `Ok(None)` when the file does not exist.
fn read_json_object(path: &Path) -> Result<Option<Map<String, Value>>, TokenizerError> {
    let kind = taiyi_store::input::InputKind::JSON_CONFIG;
    let text = match taiyi_store::input::read_input_to_string(path, kind) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::ConfigRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| TokenizerError::ConfigJson {
            path: path.to_path_buf(),
            source,
        })?;
    match value {
        Value::Object(map) => Ok(Some(map)),
        other => Err(TokenizerError::ConfigValue {
            path: path.to_path_buf(),
            key: "<root>".into(),
            message: format!("expected a JSON object, found {other}"),
        }),
    }
}

fn bad(path: &Path, key: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::ConfigValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        message: message.into(),
    }
}

fn get_bool(
    map: &Map<String, Value>,
    key: &str,
    path: &Path,
) -> Result<Option<bool>, TokenizerError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(
            path,
            key,
            format!("expected true/false, found {other}"),
        )),
    }
}

/// A special token given as a string or as a serialized `AddedToken` dict.
fn special_token(value: &Value, key: &str, path: &Path) -> Result<String, TokenizerError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Object(obj) => {
            for flag in ["lstrip", "rstrip", "single_word"] {
                if obj.get(flag) == Some(&Value::Bool(true)) {
                    return Err(bad(
                        path,
                        key,
                        format!("special tokens with `{flag}: true` are not supported"),
                    ));
                }
            }
            match obj.get("content") {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(bad(path, key, "AddedToken dict without a string `content`")),
            }
        }
        other => Err(bad(
            path,
            key,
            format!("expected a string or an AddedToken dict, found {other}"),
        )),
    }
}

fn set_special(options: &mut TokenizerOptions, key: &str, token: String) {
    let st = &mut options.special_tokens;
    match key {
        "unk_token" => st.unk = token,
        "sep_token" => st.sep = token,
        "pad_token" => st.pad = token,
        "cls_token" => st.cls = token,
        _ => st.mask = token,
    }
}

/// Extra added tokens (beyond the five specials) change tokenization; they are not supported.
fn reject_additional(map: &Map<String, Value>, path: &Path) -> Result<(), TokenizerError> {
    match map.get("additional_special_tokens") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(_) => Err(bad(
            path,
            "additional_special_tokens",
            "additional special tokens are not supported",
        )),
    }
}

/// Builds [`TokenizerOptions`] from the config files of `dir` (defaults where absent).
pub(crate) fn read_options(dir: &Path) -> Result<TokenizerOptions, TokenizerError> {
    let mut options = TokenizerOptions::default();
    let config_path = dir.join("tokenizer_config.json");
    let config = read_json_object(&config_path)?;
    let mut has_added_tokens_decoder = false;
    if let Some(cfg) = &config {
        if let Some(b) = get_bool(cfg, "do_lower_case", &config_path)? {
            options.do_lower_case = b;
        }
        options.strip_accents = get_bool(cfg, "strip_accents", &config_path)?;
        if let Some(b) = get_bool(cfg, "tokenize_chinese_chars", &config_path)? {
            options.tokenize_chinese_chars = b;
        }
        if get_bool(cfg, "do_basic_tokenize", &config_path)? == Some(false) {
            return Err(bad(
                &config_path,
                "do_basic_tokenize",
                "false is not supported",
            ));
        }
        options.max_length = match cfg.get("model_max_length") {
            None | Some(Value::Null) => DEFAULT_MAX_LENGTH,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v > ABSURD_MAX_LENGTH => DEFAULT_MAX_LENGTH,
                Some(v) if v >= 2.0 && v.fract() == 0.0 => v as usize,
                _ => {
                    return Err(bad(
                        &config_path,
                        "model_max_length",
                        format!("expected an integer >= 2, found {n}"),
                    ));
                }
            },
            Some(other) => {
                return Err(bad(
                    &config_path,
                    "model_max_length",
                    format!("expected a number, found {other}"),
                ));
            }
        };
        for key in SPECIAL_KEYS {
            match cfg.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => set_special(&mut options, key, special_token(v, key, &config_path)?),
            }
        }
        reject_additional(cfg, &config_path)?;
        if let Some(dec) = cfg.get("added_tokens_decoder") {
            has_added_tokens_decoder = true;
            let Value::Object(entries) = dec else {
                return Err(bad(
                    &config_path,
                    "added_tokens_decoder",
                    "expected an object",
                ));
            };
            for (id, entry) in entries {
                let key = format!("added_tokens_decoder.{id}");
                let content = special_token(entry, &key, &config_path)?;
                let known = options
                    .special_tokens
                    .roles()
                    .iter()
                    .any(|(_, t)| *t == content);
                if !known {
                    return Err(bad(
                        &config_path,
                        &key,
                        format!(
                            "added token {content:?} is not one of the special tokens; extra added tokens are not supported"
                        ),
                    ));
                }
            }
        }
    }
    if !has_added_tokens_decoder {
        let map_path = dir.join("special_tokens_map.json");
        if let Some(map) = read_json_object(&map_path)? {
            for key in SPECIAL_KEYS {
                match map.get(key) {
                    None | Some(Value::Null) => {}
                    Some(v) => set_special(&mut options, key, special_token(v, key, &map_path)?),
                }
            }
            reject_additional(&map, &map_path)?;
        }
    }
    Ok(options)
}
