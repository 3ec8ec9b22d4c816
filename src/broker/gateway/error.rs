//! The gateway's own answers (a refusal, no token yet, the deadline) in Google's error format
//! (`{"error": {"code", "message", "status"}}`), so that SDKs read them as they read Vertex's.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::ResponseBody;
use crate::broker::refusal::Refusal;
use crate::broker::token_cache::NoToken;

/// Google's `status` for an HTTP status.
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
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

/// `refusal` as Google's error JSON.
pub(super) fn response(refusal: &Refusal) -> Response<ResponseBody> {
    let body = serde_json::json!({
        "error": {"code": refusal.status.as_u16(), "message": refusal.message, "status": google_status(refusal.status)}
    });
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = refusal.status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    if let Some(s) = refusal.retry_after {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

pub(super) fn too_large(max: usize) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body larger than {} MB (VERTEX_BROKER_VERTEX_MAX_BODY_MB); put large media in Cloud Storage \
             and send its fileData URI",
            max / (1024 * 1024)
        ),
    )
}

/// No token for a gateway call: 503 while none is valid, 429 over a mint limit.
pub(super) fn no_token(e: NoToken) -> Refusal {
    match e {
        NoToken::Unavailable(u) => {
            let message = format!("no access token to call Vertex with: {}", u.message);
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(u.retry_after)
        }
        NoToken::NotMinted(why) => {
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, format!("no access token to call Vertex with: {why}"))
        }
        NoToken::Limited(l) => {
            let message = format!("no access token to call Vertex with: {l}");
            Refusal::new(StatusCode::TOO_MANY_REQUESTS, message).retry_after(l.retry_after())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_read_like_googles() {
        let e = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "busy").retry_after(3);
        let resp = response(&e);
        assert_eq!(resp.headers()[RETRY_AFTER], "3");
        assert_eq!(google_status(e.status), "RESOURCE_EXHAUSTED");
        assert_eq!(google_status(StatusCode::GATEWAY_TIMEOUT), "DEADLINE_EXCEEDED");
    }
}
