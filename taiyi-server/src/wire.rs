//! Request bodies of the routes and the checks that turn their JSON into model inputs, with
//! errors that name the field, the item index and the cause.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use taiyi_core::{CHINESE_TEMPLATES, TextMode};

use crate::error::ApiError;

/// `POST /v1/embeddings` (OpenAI's shape; `modality` is infinity's extension for images).
#[derive(Debug, Deserialize)]
pub(crate) struct OpenAiRequest {
    /// A string, or an array of strings (texts, or `data:image/...;base64,...` URIs).
    pub input: Value,
    /// Echoed back; any value is accepted (the server has one model).
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// `text` (default) or `image`.
    #[serde(default)]
    pub modality: Option<String>,
    /// OpenAI's output size; only the model's own width is accepted (CLIP features cannot be
    /// shortened).
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// `POST /embed`.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbedRequest {
    #[serde(default)]
    pub texts: Option<Value>,
    #[serde(default)]
    pub images: Option<Value>,
    /// L2-normalise (default true).
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Text mode: `masked`, `card`, `fixed77` (default: the server's).
    #[serde(default)]
    pub mode: Option<String>,
}

/// `POST /classify`.
#[derive(Debug, Deserialize)]
pub(crate) struct ClassifyRequest {
    pub images: Value,
    pub labels: Value,
    /// Templates with `{}`, or `"zh"` for the built-in Chinese set (default: the labels).
    #[serde(default)]
    pub templates: Option<Value>,
    /// How many ranked labels per image in `top` (default: all).
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// `POST /search`: one of `query` (a text) and `image` (base64 or a data URI).
#[derive(Debug, Deserialize)]
pub(crate) struct SearchRequest {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// How many results (default 10).
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// `POST /logits`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogitsRequest {
    pub images: Value,
    pub texts: Value,
}

/// A list of strings: `value` must be a string (`one_ok`) or a non-empty array of strings of
/// at most `limit` items.
pub(crate) fn strings(
    field: &'static str,
    value: &Value,
    one_ok: bool,
    limit: usize,
) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::String(s) if one_ok => return Ok(vec![s.clone()]),
        Value::Array(items) => items,
        other => {
            return Err(ApiError::Field {
                field,
                reason: format!(
                    "expected {}an array of strings, got {}",
                    if one_ok { "a string or " } else { "" },
                    type_name(other)
                ),
            });
        }
    };
    if items.is_empty() {
        return Err(ApiError::Field {
            field,
            reason: "is empty: send at least one item".into(),
        });
    }
    if items.len() > limit {
        return Err(ApiError::TooManyItems {
            field,
            count: items.len(),
            limit,
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(ApiError::Item {
                field,
                index,
                reason: format!("expected a string, got {}", type_name(other)),
                source: None,
            }),
        })
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `s` is a `data:image/...` URI.
pub(crate) fn is_image_uri(s: &str) -> bool {
    s.get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"))
}

/// The bytes of a base64 image: plain base64, or a `data:image/<type>;base64,<data>` URI
/// (`uri_only`: only the URI form is accepted).
pub(crate) fn image_bytes(
    field: &'static str,
    index: usize,
    s: &str,
    uri_only: bool,
) -> Result<Vec<u8>, ApiError> {
    let data = if is_image_uri(s) {
        match s.split_once(',') {
            Some((head, data)) if head.to_ascii_lowercase().ends_with(";base64") => data,
            _ => {
                return Err(ApiError::Item {
                    field,
                    index,
                    reason: "a data:image URI must be base64: data:image/<type>;base64,<data>"
                        .into(),
                    source: None,
                });
            }
        }
    } else if uri_only {
        return Err(ApiError::Item {
            field,
            index,
            reason: "with \"modality\": \"image\" every item must be a data:image/<type>;base64,<data> URI (texts and images cannot be mixed in one request; URLs are not fetched)".into(),
            source: None,
        });
    } else {
        s
    };
    STANDARD.decode(data.trim()).map_err(|e| ApiError::Item {
        field,
        index,
        reason: "invalid base64".into(),
        source: Some(Box::new(e)),
    })
}

/// Texts of `/v1/embeddings` in text modality: none may be an image URI.
pub(crate) fn check_no_images(field: &'static str, texts: &[String]) -> Result<(), ApiError> {
    match texts.iter().position(|t| is_image_uri(t)) {
        Some(index) => Err(ApiError::Item {
            field,
            index,
            reason: "is a data:image URI but the request's modality is text: send images in a request of their own with \"modality\": \"image\" (texts and images cannot be mixed in one request)".into(),
            source: None,
        }),
        None => Ok(()),
    }
}

/// A text mode by its command-line name.
pub(crate) fn text_mode(name: &str) -> Result<TextMode, ApiError> {
    name.parse().map_err(|_| ApiError::Field {
        field: "mode",
        reason: format!("unknown text mode '{name}' (masked, card or fixed77)"),
    })
}

/// Prompt templates: absent (the labels themselves), `"zh"`, or an array of strings with
/// `{}` (an item `"zh"` stands for the built-in set).
pub(crate) fn templates(value: Option<&Value>, limit: usize) -> Result<Vec<String>, ApiError> {
    let zh = || CHINESE_TEMPLATES.iter().map(|s| s.to_string()).collect();
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s == "zh" => return Ok(zh()),
        Some(v) => strings("templates", v, true, limit)?,
    };
    if list.iter().any(|t| t == "zh") {
        return Ok(zh());
    }
    match list.iter().position(|t| !t.contains("{}")) {
        Some(index) => Err(ApiError::Item {
            field: "templates",
            index,
            reason: "has no {} for the label".into(),
            source: None,
        }),
        None => Ok(list),
    }
}

/// `v` as OpenAI's base64 embedding: the little-endian f32 bytes, base64.
pub(crate) fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_uris() {
        let v = serde_json::json!(["a", 3]);
        let e = strings("input", &v, true, 10).err();
        assert!(matches!(e, Some(ApiError::Item { index: 1, .. })), "{e:?}");
        assert_eq!(
            strings("input", &serde_json::json!("x"), true, 1).ok(),
            Some(vec!["x".to_string()])
        );
        assert!(strings("texts", &serde_json::json!("x"), false, 1).is_err());
        let too_many = serde_json::json!(["a", "b"]);
        assert!(matches!(
            strings("texts", &too_many, false, 1),
            Err(ApiError::TooManyItems { count: 2, .. })
        ));
        assert_eq!(
            image_bytes("i", 0, "data:image/png;base64,AAEC", true).ok(),
            Some(vec![0, 1, 2])
        );
        assert!(image_bytes("i", 0, "AAEC", true).is_err());
        assert!(image_bytes("i", 0, "!!", false).is_err());
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }
}
