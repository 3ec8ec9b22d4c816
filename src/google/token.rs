//! Access tokens (yup-oauth2's service-account flow) and ID tokens (a JWT-bearer assertion with
//! `target_audience`), both minted at the key's own `token_uri`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::Credential;
use crate::key::ServiceAccountKey;

/// How long Google's tokens live unless a shorter or longer lifetime is asked for (and where
/// a lifetime above it needs the org policy's extension).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A pooled connection idle longer than this is not reused (checked when taken, so a connection
/// left over a Lambda freeze is dropped rather than tried), well inside the time Google's front
/// ends keep idle connections open.
const IDLE: Duration = Duration::from_secs(30);

/// Assertions live this long (Google accepts at most one hour).
const ASSERTION_LIFETIME: i64 = 3600;

/// A short-lived token and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token itself; never printed.
    pub bearer: Credential,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Why Google would not mint a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered with an OAuth error, e.g. `invalid_grant` for a deleted or not yet
    /// propagated key.
    #[error("the token endpoint refused {key}: {error}: {description}")]
    Refused {
        /// The key or principal asking.
        key: String,
        /// OAuth's error code.
        error: String,
        /// OAuth's description.
        description: String,
    },
    /// The endpoint could not be reached or did not answer in time.
    #[error("could not reach the token endpoint {uri}: {message}")]
    Unreachable {
        /// The endpoint.
        uri: String,
        /// Why.
        message: String,
    },
    /// The answer could not be read as a token.
    #[error("the token endpoint {uri} answered unexpectedly: {message}")]
    BadResponse {
        /// The endpoint.
        uri: String,
        /// What was wrong with it.
        message: String,
    },
}

impl TokenError {
    /// Google's answer for an unknown, deleted, disabled or not yet propagated key: re-read the
    /// secret, or wait for propagation.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenError::Refused { error, .. } if error == "invalid_grant")
    }

    /// Worth retrying as is: the endpoint was unreachable, overloaded or answered garbage.
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Unreachable { .. } | TokenError::BadResponse { .. } => true,
            TokenError::Refused { error, .. } => {
                matches!(
                    error.as_str(),
                    "temporarily_unavailable" | "rate_limit_exceeded" | "internal_failure" | "server_error"
                )
            }
        }
    }
}

#[derive(Deserialize)]
struct IdTokenAnswer {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// yup-oauth2's HTTP client type, over rustls with the system's roots.
type OauthClient = hyper_util::client::legacy::Client<
    yup_oauth2::hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    String,
>;

/// The client of Google's token endpoints, one per process, so TLS roots load once (on the first
/// access-token mint, not at start-up) instead of once per mint, and the mints of one rotation,
/// seconds apart, share a connection.
#[derive(Clone)]
pub struct TokenClient {
    oauth: Arc<OnceLock<Result<OauthClient, String>>>,
    http: reqwest::Client,
    timeout: Duration,
}

impl TokenClient {
    /// A client whose every call to a token endpoint gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).pool_idle_timeout(IDLE).build().unwrap_or_default();
        Self { oauth: Arc::default(), http, timeout }
    }

    /// The per-call timeout, for sibling clients.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn oauth_client(&self, uri: &str) -> Result<OauthClient, TokenError> {
        let built = self.oauth.get_or_init(|| {
            let connector = yup_oauth2::hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("no TLS root certificates: {e}"))?
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .build();
            Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(IDLE)
                .build(connector))
        });
        built.clone().map_err(|message| TokenError::Unreachable { uri: uri.to_string(), message })
    }

    /// Mints an access token for `scopes` with yup-oauth2 (always a fresh mint, never a cache hit).
    pub async fn access_token(&self, key: &ServiceAccountKey, scopes: &[String]) -> Result<Token, TokenError> {
        let uri = key.token_uri().to_string();
        let sa: yup_oauth2::ServiceAccountKey = serde_json::from_str(key.raw())
            .map_err(|e| TokenError::BadResponse { uri: uri.clone(), message: format!("key file: {e}") })?;
        let client = yup_oauth2::CustomHyperClientBuilder::from(self.oauth_client(&uri)?);
        let auth = yup_oauth2::ServiceAccountAuthenticator::with_client(sa, client)
            .with_timeout(self.timeout)
            .build()
            .await
            .map_err(|e| TokenError::Unreachable { uri: uri.clone(), message: e.to_string() })?;
        let token = auth.force_refreshed_token(scopes).await.map_err(|e| match e {
            yup_oauth2::Error::AuthError(a) => TokenError::Refused {
                key: key.to_string(),
                error: a.error.as_str().to_string(),
                description: a.error_description.unwrap_or_default(),
            },
            yup_oauth2::Error::JSONError(e) => TokenError::BadResponse { uri: uri.clone(), message: e.to_string() },
            other => TokenError::Unreachable { uri: uri.clone(), message: other.to_string() },
        })?;
        let bearer = token.token().map(|t| Credential::new(t.to_string())).ok_or_else(|| TokenError::BadResponse {
            uri: uri.clone(),
            message: "no access_token in the answer".into(),
        })?;
        let expires_at = token
            .expiration_time()
            .and_then(|t| DateTime::from_timestamp(t.unix_timestamp(), 0))
            .unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(3599));
        Ok(Token { bearer, expires_at })
    }

    /// Mints a Google-signed ID token whose `aud` is `audience` (a JWT-bearer grant with
    /// `target_audience`, which yup-oauth2 does not offer).
    pub async fn id_token(&self, key: &ServiceAccountKey, audience: &str) -> Result<Token, TokenError> {
        let uri = key.token_uri().to_string();
        let now = Utc::now().timestamp();
        let assertion = sign_jwt(
            key,
            &json!({
                "iss": key.client_email(),
                "aud": uri,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
                "target_audience": audience,
            }),
        );
        let resp = self
            .http
            .post(&uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.expose())])
            .send()
            .await
            .map_err(|e| TokenError::Unreachable { uri: uri.clone(), message: e.without_url().to_string() })?;
        let status = resp.status();
        let answer: IdTokenAnswer = resp.json().await.map_err(|e| TokenError::BadResponse {
            uri: uri.clone(),
            message: format!("HTTP {status}: {}", e.without_url()),
        })?;
        if let Some(error) = answer.error {
            return Err(TokenError::Refused {
                key: key.to_string(),
                error,
                description: answer.error_description.unwrap_or_default(),
            });
        }
        let id_token = answer.id_token.ok_or_else(|| TokenError::BadResponse {
            uri: uri.clone(),
            message: format!("HTTP {status} without id_token"),
        })?;
        let exp = super::id_token_expiry(&id_token)
            .ok_or_else(|| TokenError::BadResponse { uri, message: "the id_token is not a JWT with exp".into() })?;
        Ok(Token { bearer: Credential::new(id_token), expires_at: exp })
    }
}

/// An RS256 JWT signed by `key`, with its key id in the header.
pub fn sign_jwt(key: &ServiceAccountKey, claims: &serde_json::Value) -> Credential {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.private_key_id()});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = key.sign_rs256(input.as_bytes());
    Credential::new(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}
