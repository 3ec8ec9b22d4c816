//! `Refusal`: a request the broker refuses or cannot serve, whichever surface it came in on
//! (the guard, the metadata routes, the gateway): a status, one line naming what is wrong and
//! what to do, and when to retry. The metadata server answers it as that line of text
//! (`metadata::Reply`); the gateway in Google's error JSON (`gateway::error`).

use hyper::StatusCode;

use super::token_cache::{NoToken, Unavailable};

/// A refusal or failure the broker answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// One line, starting `vertex-broker: `.
    pub message: String,
    /// Seconds for `Retry-After`, when retrying can help.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with `status`; `message` says what is wrong and what to do.
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self { status, message: format!("vertex-broker: {message}"), retry_after: None }
    }

    /// 400: the request itself is malformed.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: nothing here by that name.
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405: not with this method.
    pub fn method(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// The same, with `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        Self { retry_after: Some(secs), ..self }
    }

    /// 503 while nothing valid is held (`what`: what is missing), retried upstream.
    pub fn unavailable(what: &str, e: Unavailable) -> Self {
        let message = format!("no valid {what}: {}. Retrying upstream in {} s.", e.message, e.retry_after);
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(e.retry_after)
    }

    /// No token for a metadata request: 503 while none is valid, 429 over a mint limit.
    pub fn no_token(what: &str, e: NoToken) -> Self {
        match e {
            NoToken::Unavailable(e) => Self::unavailable(what, e),
            NoToken::Limited(limit) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{what} not minted: {limit}; retry in {} s, or reuse the tokens already held",
                    limit.retry_after()
                ),
            )
            .retry_after(limit.retry_after()),
            NoToken::NotMinted(why) => Self::not_found(format!("{what} not available: {why}")),
        }
    }
}
