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

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}
