//! The gateway token (`VERTEX_BROKER_TOKEN_ENDPOINTS=gateway`): what the metadata token endpoint
//! hands SDKs that insist on a credential. Random per broker, it names no account and is
//! useless at Google; SDKs send it to the gateway, which drops it and adds the account's token.

use base64::Engine;

/// Marks the token as the broker's in a caller's logs or an upstream's error.
const PREFIX: &str = "vertex-broker-gateway.";

/// An opaque bearer token for this broker's gateway only.
pub struct GatewayToken(String);

impl GatewayToken {
    /// A fresh one: 256 random bits.
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        // aws-lc's system random source; it fails only without an OS entropy source, where
        // nothing here could work.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
        Self(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token, for the metadata answer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Default for GatewayToken {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GatewayToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_per_broker_and_never_printed() {
        let (a, b) = (GatewayToken::new(), GatewayToken::new());
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX) && a.expose().len() == PREFIX.len() + 43);
        assert!(a.expose().bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\'), "safe in JSON as is");
        assert_eq!(format!("{a:?}"), "GatewayToken(<redacted>)");
    }
}
