//! The IAM Service Account Credentials API: an access token or ID token of a target account,
//! minted with a caller's token that may impersonate it (`generateAccessToken`,
//! `generateIdToken`), optionally through a chain of delegates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::token::{Token, TokenError};
use super::{Credential, ErrorBody};

/// Google's IAM Credentials base URL.
pub const DEFAULT_ENDPOINT: &str = "https://iamcredentials.googleapis.com";

/// Who to impersonate and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    /// The account whose tokens are served.
    pub target: String,
    /// Accounts between the caller and the target, each able to impersonate the next.
    pub delegates: Vec<String>,
    /// Access-token lifetime asked for.
    pub lifetime: Duration,
    /// `generateAccessToken` URL of the target (its `:generateIdToken` sibling is derived).
    pub url: String,
}

impl Impersonation {
    /// Impersonation of `target` at `endpoint` (the API's base URL).
    pub fn new(endpoint: &str, target: &str, delegates: Vec<String>, lifetime: Duration) -> Self {
        let url =
            format!("{}/v1/projects/-/serviceAccounts/{target}:generateAccessToken", endpoint.trim_end_matches('/'));
        Self { target: target.to_string(), delegates, lifetime, url }
    }

    fn delegates(&self) -> Vec<String> {
        self.delegates.iter().map(|d| format!("projects/-/serviceAccounts/{d}")).collect()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessAnswer {
    access_token: String,
    expire_time: DateTime<Utc>,
}

#[derive(Deserialize)]
struct IdAnswer {
    token: String,
}

/// Calls IAM Credentials with `caller`'s token.
#[derive(Clone)]
pub struct IamCredentials {
    http: reqwest::Client,
}

impl IamCredentials {
    /// A client whose calls are bounded by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { http: reqwest::Client::builder().timeout(timeout).build().unwrap_or_default() }
    }

    /// An access token of the target for `scopes`, living `lifetime`.
    pub async fn access_token(
        &self,
        caller: &Credential,
        to: &Impersonation,
        scopes: &[String],
    ) -> Result<Token, TokenError> {
        let body = json!({
            "scope": scopes,
            "lifetime": format!("{}s", to.lifetime.as_secs()),
            "delegates": to.delegates(),
        });
        let answer: AccessAnswer = self.call(&to.url, caller, &body).await?;
        Ok(Token { bearer: Credential::new(answer.access_token), expires_at: answer.expire_time })
    }

    /// A Google-signed ID token of the target for `audience`, with its email.
    pub async fn id_token(&self, caller: &Credential, to: &Impersonation, audience: &str) -> Result<Token, TokenError> {
        let url = to.url.replace(":generateAccessToken", ":generateIdToken");
        let body = json!({ "audience": audience, "includeEmail": true, "delegates": to.delegates() });
        let answer: IdAnswer = self.call(&url, caller, &body).await?;
        let exp = super::id_token_expiry(&answer.token)
            .ok_or_else(|| TokenError::BadResponse { uri: url, message: "the token is not a JWT with exp".into() })?;
        Ok(Token { bearer: Credential::new(answer.token), expires_at: exp })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        caller: &Credential,
        body: &serde_json::Value,
    ) -> Result<T, TokenError> {
        let uri = url.to_string();
        let resp = self
            .http
            .post(url)
            .bearer_auth(caller.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| TokenError::Unreachable { uri: uri.clone(), message: e.without_url().to_string() })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(ErrorBody { error }) => TokenError::Refused {
                    key: "impersonation".into(),
                    error: if error.status.is_empty() { status.as_u16().to_string() } else { error.status },
                    description: error.message,
                },
                Err(_) => TokenError::BadResponse { uri, message: format!("HTTP {status}") },
            });
        }
        serde_json::from_str(&text).map_err(|e| TokenError::BadResponse { uri, message: format!("HTTP {status}: {e}") })
    }
}
