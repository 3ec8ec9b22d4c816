//! The gateway's own answers (a refusal, no token yet, the deadline), in Google's error format
//! (`{"error": {"code", "message", "status"}}`) so that SDKs read them as they read Vertex's.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::Response;

use super::ResponseBody;
use crate::broker::token_cache::NoToken;

/// A refusal or failure answered by the gateway itself, in Google's error format so that SDKs
/// read it as they read Vertex's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl GatewayError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: format!("vertex-broker: {}", message.into()), retry_after: None }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn method(message: impl Into<String>) -> Self {
        Self::new(405, message)
    }

    /// Google's `status` for an HTTP status.
    fn google_status(&self) -> &'static str {
        match self.status {
            400 | 411 | 413 | 415 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 | 405 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            502 | 503 => "UNAVAILABLE",
            408 | 504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        }
    }

    pub(super) fn response(&self) -> Response<ResponseBody> {
        let body = serde_json::json!({
            "error": {"code": self.status, "message": self.message, "status": self.google_status()}
        });
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
        *resp.status_mut() = hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

pub(super) fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        413,
        format!(
            "request body larger than {} MB (VERTEX_BROKER_VERTEX_MAX_BODY_MB); put large media in Cloud Storage \
             and send its fileData URI",
            max / (1024 * 1024)
        ),
    )
}

pub(super) fn no_token(e: NoToken) -> GatewayError {
    match e {
        NoToken::Unavailable(u) => GatewayError {
            retry_after: Some(u.retry_after),
            ..GatewayError::new(503, format!("no access token to call Vertex with: {}", u.message))
        },
        NoToken::Limited(l) => GatewayError {
            retry_after: Some(l.retry_after()),
            ..GatewayError::new(429, format!("no access token to call Vertex with: {l}"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_read_like_googles() {
        let e = GatewayError { retry_after: Some(3), ..GatewayError::new(429, "busy") };
        let resp = e.response();
        assert_eq!(resp.headers()[RETRY_AFTER], "3");
        assert_eq!(e.google_status(), "RESOURCE_EXHAUSTED");
        assert_eq!(GatewayError::new(504, "x").google_status(), "DEADLINE_EXCEEDED");
    }
}
