//! Google, always reached over HTTP: the IAM keys API and the OAuth token endpoint.

pub mod iam;
pub mod token;

use std::fmt;

use zeroize::Zeroizing;

/// A bearer credential (access or ID token). Debug never shows it.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
    /// The credential itself, for an Authorization header or a response body.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
