//! Errors: [`ServerError`] (starting and running the server) and [`ApiError`] (one request's
//! failure, answered as a status code and a JSON body `{"error": {"message", "type", "index"}}`).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taiyi_core::ClipError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the inference thread could not be started.
    #[error("cannot start the server's threads")]
    Start(#[source] std::io::Error),
    /// Serving connections failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// A setting cannot work (a 0 limit, a deadline out of range, an empty API key).
    #[error("invalid server configuration")]
    Config(#[source] crate::config::ConfigError),
    /// The model could not be loaded (or its warm-up batch failed).
    #[error("the model could not be loaded")]
    Load(#[source] ClipError),
    /// The inference thread ended abnormally (panicked).
    #[error("the inference thread panicked")]
    EnginePanicked,
}

/// One request's failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the route expects (axum's rejection: 400 bad JSON, 413 too
    /// large, 415 not `application/json`, 422 wrong shape).
    #[error("invalid request body: {message}")]
    Body {
        /// The status of the rejection.
        status: StatusCode,
        /// What the JSON layer reported.
        message: String,
    },
    /// A field of the request is wrong as a whole (422).
    #[error("{field}: {reason}")]
    Field {
        /// The field (`input`, `texts`, …).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// One item of a list is wrong (422).
    #[error("{field}[{index}]: {reason}")]
    Item {
        /// The list.
        field: &'static str,
        /// The item's position.
        index: usize,
        /// What is wrong with it.
        reason: String,
        /// The underlying error (decoding, base64), if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// More items than `--max-batch-items` (413).
    #[error("{field} has {count} items, more than the server's limit of {limit}")]
    TooManyItems {
        /// The list.
        field: &'static str,
        /// How many were sent.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A request asks for more model work than a per-request limit allows (413): prompts
    /// (labels × templates) or tokens.
    #[error("the request asks for {count} {what}, more than the server's limit of {limit}")]
    TooMuchWork {
        /// The unit (`prompts (labels × templates)`, `tokens`).
        what: &'static str,
        /// How many the request needs.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is larger than `payload_limit` (413).
    #[error("the request body is larger than the server's limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive within the request deadline (408).
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout {
        /// The deadline.
        seconds: f64,
    },
    /// A field asks for something the server does not do (400).
    #[error("{field}: {reason}")]
    Unsupported {
        /// The field.
        field: &'static str,
        /// What is not supported.
        reason: String,
    },
    /// Missing or wrong `Authorization: Bearer` key (401).
    #[error("missing or invalid API key (send Authorization: Bearer <key>)")]
    Unauthorized,
    /// More requests in flight than `--max-concurrent-requests` (429).
    #[error("too many concurrent requests (limit {limit}); retry later")]
    TooManyRequests {
        /// The limit.
        limit: usize,
    },
    /// The model is still loading, failed to load, or the queue is full (503).
    #[error("{0}")]
    Unavailable(&'static str),
    /// No such route (404).
    #[error("no route {method} {path}")]
    NotFound {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The route exists but not with this method (405).
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The model failed on a valid request (500).
    #[error("the model failed")]
    Model(#[source] Arc<ClipError>),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Body { status, .. } => *status,
            ApiError::Field { .. } | ApiError::Item { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyItems { .. }
            | ApiError::TooMuchWork { .. }
            | ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI-style error type.
    fn kind(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            429 => "rate_limit_error",
            500 => "server_error",
            503 => "unavailable",
            _ => "invalid_request_error",
        }
    }

    /// The message with every cause, `: `-separated (the body's `message`).
    pub fn full_message(&self) -> String {
        taiyi_core::error_report(self)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let index = match &self {
            ApiError::Item { index, .. } => Some(*index),
            _ => None,
        };
        let body = serde_json::json!({
            "error": {
                "message": self.full_message(),
                "type": self.kind(),
                "index": index,
                "code": status.as_u16(),
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
