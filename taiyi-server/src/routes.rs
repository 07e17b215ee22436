//! The route handlers: parse, prepare (`prepare.rs`: tokenize / decode on rayon, the label
//! cache), queue for the model, shape the answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use taiyi_core::TextCache;

use crate::engine::{Answer, EngineHandle, HealthState, Work};
use crate::error::ApiError;
use crate::wire::{
    self, ClassifyRequest, EmbedRequest, LogitsRequest, OpenAiRequest, SearchRequest,
};
use crate::{ServerConfig, metrics::Metrics};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub config: ServerConfig,
    pub engine: EngineHandle,
    pub metrics: Arc<Metrics>,
    /// Normalised features of texts seen before (`/classify` prompts, `/logits` texts).
    pub cache: Arc<TextCache>,
}

type App = State<Arc<AppState>>;

/// The body as JSON, or the rejection (400/413/415/422) as an [`ApiError`].
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|r| ApiError::Body {
        status: r.status(),
        message: r.body_text(),
    })
}

fn rows(v: &[f32], dim: usize) -> Vec<Vec<f32>> {
    v.chunks(dim.max(1)).map(<[f32]>::to_vec).collect()
}

/// `POST /v1/embeddings`: OpenAI's embeddings API (texts, or images with `"modality": "image"`).
pub(crate) async fn embeddings(
    State(app): App,
    b: Result<Json<OpenAiRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let limit = app.config.limits.max_batch_items;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::Field {
                field: "encoding_format",
                reason: format!("must be float or base64, got '{other}'"),
            });
        }
    };
    if let Some(d) = req.dimensions {
        let dim = app.facts()?.dim;
        if d != dim {
            return Err(ApiError::Unsupported {
                field: "dimensions",
                reason: format!(
                    "this model's embeddings have {dim} dimensions and cannot be shortened (CLIP features are not Matryoshka embeddings); omit the field or send {dim}"
                ),
            });
        }
    }
    let items = wire::strings("input", &req.input, true, limit)?;
    let (features, tokens) = match req.modality.as_deref() {
        None | Some("text") => {
            wire::check_no_images("input", &items)?;
            let (f, t) = app.texts(items, None).await?;
            (f, t.iter().sum::<usize>())
        }
        Some("image") => (app.images("input", items, true).await?, 0),
        Some(other) => {
            return Err(ApiError::Field {
                field: "modality",
                reason: format!("must be text or image, got '{other}'"),
            });
        }
    };
    let data: Vec<Value> = features
        .normalized
        .chunks(features.dim.max(1))
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                json!(wire::base64_f32(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let model = req.model.unwrap_or_else(|| app.config.model_name.clone());
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// `POST /embed`: `{"texts": [...]}` or `{"images": [...]}`, `normalize`, `mode`.
pub(crate) async fn embed(
    State(app): App,
    b: Result<Json<EmbedRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let limit = app.config.limits.max_batch_items;
    let (features, extra) = match (&req.texts, &req.images) {
        (Some(t), None) => {
            let texts = wire::strings("texts", t, false, limit)?;
            let mode = req.mode.as_deref().map(wire::text_mode).transpose()?;
            let used = mode.unwrap_or(app.facts()?.text_mode);
            let (f, tokens) = app.texts(texts, mode).await?;
            (f, json!({"mode": used.name(), "tokens": tokens}))
        }
        (None, Some(i)) => {
            let images = wire::strings("images", i, false, limit)?;
            (app.images("images", images, false).await?, json!({}))
        }
        _ => {
            return Err(ApiError::Field {
                field: "texts/images",
                reason: "send exactly one of \"texts\" and \"images\"".into(),
            });
        }
    };
    let v = if req.normalize.unwrap_or(true) {
        &features.normalized
    } else {
        &features.raw
    };
    let mut out = json!({"embeddings": rows(v, features.dim), "dim": features.dim});
    if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    Ok(Json(out).into_response())
}

/// `POST /classify`: zero-shot classification, per image as `taiyi zero-shot --json` prints it.
pub(crate) async fn classify(
    State(app): App,
    b: Result<Json<ClassifyRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let limit = app.config.limits.max_batch_items;
    let images = wire::strings("images", &req.images, false, limit)?;
    let labels = wire::strings("labels", &req.labels, false, limit)?;
    let templates = wire::templates(req.templates.as_ref(), limit)?;
    // The work is counted before any is done: prompts, then their tokens.
    let count = labels.len().saturating_mul(templates.len().max(1));
    let max_prompts = app.config.limits.max_prompts;
    if count > max_prompts {
        return Err(ApiError::TooMuchWork {
            what: "prompts (labels × templates)",
            count,
            limit: max_prompts,
        });
    }
    let (prompts, _) = app
        .normalized_texts(taiyi_core::prompts(&labels, &templates))
        .await?;
    let features = app.images("images", images, false).await?;
    let work = Work::Classify {
        images: features.normalized,
        prompts,
        dim: features.dim,
        labels: labels.clone(),
        templates: templates.len(),
    };
    let Answer::Classes(preds) = app.submit(work).await? else {
        return Err(ApiError::Unavailable(
            "the model answered another request kind",
        ));
    };
    let k = req.top_k.unwrap_or(labels.len());
    let out: Vec<Value> = preds
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut probs = vec![0f32; labels.len()];
            for x in p {
                if let Some(slot) = probs.get_mut(x.index) {
                    *slot = x.probability;
                }
            }
            let top: Vec<Value> = p
                .iter()
                .take(k)
                .map(|x| json!({"label": x.label, "probability": x.probability, "logit": x.logit}))
                .collect();
            json!({"image": i, "labels": labels, "probs": probs, "top": top})
        })
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}

/// `POST /logits`: images × texts → `logits_per_image` and `probs` (softmax over the texts).
pub(crate) async fn logits(
    State(app): App,
    b: Result<Json<LogitsRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let limit = app.config.limits.max_batch_items;
    let images = wire::strings("images", &req.images, false, limit)?;
    let texts = wire::strings("texts", &req.texts, false, limit)?;
    let n_texts = texts.len();
    // Texts and images are prepared (tokenized / decoded) at the same time.
    let text_app = app.clone();
    let txt = tokio::spawn(async move { text_app.normalized_texts(texts).await });
    let img = app.images("images", images, false).await;
    let txt = txt
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down"))?;
    let (img, (txt, _)) = (img?, txt?);
    let work = Work::Logits {
        images: img.normalized,
        texts: txt,
        dim: img.dim,
    };
    let Answer::Logits { per_image, probs } = app.submit(work).await? else {
        return Err(ApiError::Unavailable(
            "the model answered another request kind",
        ));
    };
    let scale = app.facts()?.logit_scale;
    Ok(Json(json!({
        "logit_scale": scale,
        "logits_per_image": rows(&per_image, n_texts),
        "probs": rows(&probs, n_texts),
    }))
    .into_response())
}

/// Results one `/search` may ask for by default.
const DEFAULT_SEARCH_K: usize = 10;

/// `POST /search`: `{"query": TEXT}` or `{"image": BASE64}`, `top_k` (default 10, at most
/// `--max-batch-items`) → `{"results": [{"name", "score", "row"}]}`, best first, from the
/// `--index` collection. The query is embedded like any other request (texts through the
/// label cache); the search itself runs on the rayon pool, never on the inference thread.
pub(crate) async fn search(
    State(app): App,
    b: Result<Json<SearchRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b)?;
    let Some(shared) = app.config.index.clone() else {
        return Err(ApiError::Unsupported {
            field: "index",
            reason: "this server has no collection to search: start it with --index IDX.npy".into(),
        });
    };
    let k = req.top_k.unwrap_or(DEFAULT_SEARCH_K);
    let limit = app.config.limits.max_batch_items;
    if k == 0 || k > limit {
        return Err(ApiError::Field {
            field: "top_k",
            reason: format!("must be between 1 and {limit}, got {k}"),
        });
    }
    let query = match (req.query, req.image) {
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err(ApiError::Field {
                    field: "query",
                    reason: "is empty".into(),
                });
            }
            app.normalized_texts(vec![text]).await?.0
        }
        (None, Some(image)) => app.images("image", vec![image], false).await?.normalized,
        _ => {
            return Err(ApiError::Field {
                field: "query/image",
                reason: "send exactly one of \"query\" and \"image\"".into(),
            });
        }
    };
    let index = shared.index.clone();
    let hits = crate::prepare::on_rayon(move || {
        index
            .search(ndarray::ArrayView1::from(&query[..]), k)
            .map_err(|e| ApiError::Model(Arc::new(e)))
    })
    .await?;
    let names = shared.index.names();
    let results: Vec<Value> = hits
        .iter()
        .map(|h| json!({"name": names[h.index], "score": h.score, "row": h.index}))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `GET /health`: 200 once the model is loaded and warmed up, 503 before (or if it failed).
pub(crate) async fn health(State(app): App) -> Response {
    let (status, state) = match app.engine.health.get() {
        HealthState::Ready => (StatusCode::OK, "ok"),
        HealthState::Loading => (StatusCode::SERVICE_UNAVAILABLE, "loading"),
        HealthState::Failed => (StatusCode::SERVICE_UNAVAILABLE, "failed"),
    };
    (status, Json(json!({"status": state}))).into_response()
}

/// `GET /info`: model files, device, precision, text mode, limits, batching, version.
pub(crate) async fn info(State(app): App) -> Response {
    let c = &app.config;
    let facts = app.engine.facts();
    Json(json!({
        "model": c.model_name,
        "version": env!("CARGO_PKG_VERSION"),
        "family": c.model_info.family,
        "text_model": c.model_info.text_model,
        "vision_model": c.model_info.vision_model,
        "vision_arch": c.model_info.vision_arch,
        "device": c.model_info.device,
        "precision": c.model_info.precision,
        "cpu_kernel": c.model_info.cpu_kernel,
        "ready": facts.is_some(),
        "text_mode": facts.map(|f| f.text_mode.name()),
        "batch_invariant": facts.map(|f| f.text_mode.batch_invariant()),
        "packed_text_batches": facts.map(|f| f.packed),
        "max_text_tokens": facts.map(|f| f.max_tokens(f.text_mode)),
        "label_cache": app.cache.capacity(),
        "index": c.index.as_ref().map(|i| {
            json!({"path": i.path.display().to_string(), "search": i.index.info()})
        }),
        "text_batch_size": facts.map(|f| f.text_batch_size),
        "image_batch_size": facts.map(|f| f.image_batch_size),
        "logit_scale": facts.and_then(|f| f.logit_scale),
        "limits": {
            "max_concurrent_requests": c.limits.max_concurrent_requests,
            "max_connections": c.limits.max_connections,
            "max_batch_items": c.limits.max_batch_items,
            "max_request_tokens": c.limits.max_request_tokens,
            "max_prompts": c.limits.max_prompts,
            "request_timeout_s": c.timeouts.request.as_secs_f64(),
            "shutdown_grace_s": c.timeouts.shutdown_grace.as_secs_f64(),
            "payload_limit": c.limits.payload_limit,
            "max_image_pixels": c.limits.max_image_pixels,
        },
        "batching": {
            "max_batch_tokens": c.batch.max_batch_tokens,
            "max_batch_images": c.batch.max_batch_images,
            "max_wait_ms": c.batch.max_wait.as_secs_f64() * 1e3,
            "queue_capacity": c.batch.queue_capacity,
        },
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(app): App) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
