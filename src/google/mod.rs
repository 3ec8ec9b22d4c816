//! Google, always reached over HTTP: the IAM keys API, the OAuth token endpoint, workload
//! identity federation (STS) and impersonation (IAM Credentials).

pub mod federation;
pub mod iam;
pub mod iam_credentials;
pub mod scopes;
pub mod token;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A credential string: a bearer token (access or ID token), a signed assertion or subject
/// token. Debug never shows it; clones share one zeroized buffer, so serving a cached token
/// copies no secret bytes.
#[derive(Clone)]
pub struct Credential(Arc<Zeroizing<String>>);

impl Credential {
    /// Wraps a token or key string.
    pub fn new(value: String) -> Self {
        Self(Arc::new(Zeroizing::new(value)))
    }
    /// The credential itself, for an Authorization header or a response body.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Stored as the string itself: only in the token secret (`minter::stored`).
impl serde::Serialize for Credential {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Google's JSON error body (`{"error": {"code", "message", "status"}}`), as IAM and IAM
/// Credentials answer a refusal.
#[derive(serde::Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// The `error` of an [`ErrorBody`].
#[derive(serde::Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    /// Such as `PERMISSION_DENIED`.
    #[serde(default)]
    pub status: String,
}

/// When a Google-signed ID token (a JWT) expires: its `exp` claim. The signature is Google's
/// to check; the broker only needs to know when to renew.
pub(crate) fn id_token_expiry(jwt: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use base64::Engine;

    #[derive(serde::Deserialize)]
    struct Claims {
        exp: i64,
    }
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
    chrono::DateTime::from_timestamp(serde_json::from_slice::<Claims>(&payload).ok()?.exp, 0)
}
