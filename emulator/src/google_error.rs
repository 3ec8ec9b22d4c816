//! Google's error bodies, so that clients parse exactly what they would get from Google.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A Google API error (`{"error":{"code","message","status","details"}}`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub status: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        Self { code, status, message: message.into(), details: Vec::new() }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
             cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "domain": "googleapis.com"
        }))
    }

    pub fn insufficient_scopes() -> Self {
        Self::new(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.").with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com"
        }))
    }

    pub fn permission_denied(permission: &str, resource: &str) -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            format!("Permission '{permission}' denied on resource '{resource}' (or it may not exist)."),
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": permission}
        }))
    }

    pub fn key_limit() -> Self {
        Self::new(429, "RESOURCE_EXHAUSTED", "Maximum number of keys on account reached.")
    }

    pub fn key_creation_disabled() -> Self {
        Self::new(400, "FAILED_PRECONDITION", "Key creation is not allowed on this service account.").with_detail(
            json!({
                "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                "violations": [{
                    "type": "constraints/iam.disableServiceAccountKeyCreation",
                    "subject": "orgpolicy:projects/-",
                    "description": "Key creation is not allowed on this service account."
                }]
            }),
        )
    }

    /// The body Google sends with an injected or overload status.
    pub fn for_status(code: u16) -> Self {
        match code {
            429 => Self::new(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Retry later."),
            500 => Self::new(500, "INTERNAL", "Internal error encountered."),
            502 | 503 => Self::new(code, "UNAVAILABLE", "The service is currently unavailable."),
            504 => Self::new(504, "DEADLINE_EXCEEDED", "Deadline exceeded."),
            400 => Self::new(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            401 => Self::unauthenticated(),
            403 => Self::new(403, "PERMISSION_DENIED", "The caller does not have permission"),
            404 => Self::new(404, "NOT_FOUND", "Requested entity was not found."),
            _ => Self::new(code, "UNKNOWN", "Injected failure."),
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.details.push(detail);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({"code": self.code, "message": self.message, "status": self.status});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

/// An OAuth token endpoint error (`{"error","error_description"}`, HTTP 400 unless injected).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub http: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self { http: 400, error: "invalid_grant", description: description.into() }
    }
    pub fn bad_signature() -> Self {
        Self::invalid_grant("Invalid JWT Signature.")
    }
    pub fn bad_times() -> Self {
        Self::invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )
    }
    pub fn account_not_found() -> Self {
        Self::invalid_grant("Invalid grant: account not found")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({"error": self.error, "error_description": self.description}))).into_response()
    }
}
