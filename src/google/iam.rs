//! The IAM service-account keys API: create, list, get, delete, disable, enable.
//!
//! Google's error body becomes an [`IamError`] that says what happened and what to do.
//! Retryable answers (429 other than the key limit, 5xx, connection failures) are retried with
//! exponential backoff and jitter, a bounded number of times; every call has a timeout. A create
//! that timed out is not retried: Google may have created the key, and a second one would leak.

use std::time::Duration;

use backon::Retryable;

pub use crate::retry::RetryPolicy;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{Credential, ErrorBody, ErrorDetail};
use crate::key::ServiceAccountKey;

/// A key as IAM lists it (never with private material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleKey {
    /// Google's key id.
    pub id: String,
    /// When it was created.
    pub valid_after: Option<DateTime<Utc>>,
    /// None when the key never expires (Google says year 9999).
    pub valid_before: Option<DateTime<Utc>>,
    /// Disabled.
    pub disabled: bool,
    /// Created by a user (not a system-managed key).
    pub user_managed: bool,
}

/// Why an IAM call failed.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The account or key does not exist.
    #[error("Google IAM: {what} not found ({message})")]
    NotFound {
        /// What was asked for.
        what: String,
        /// Google's message.
        message: String,
    },
    /// The account holds Google's maximum of 10 keys.
    #[error(
        "Google IAM: {account} already holds the maximum of 10 keys ({message}). Delete keys this \
         secret did not mint (`vertex-broker status` lists them; `gcloud iam service-accounts keys \
         delete KEY_ID --iam-account {account}`), then rotate again"
    )]
    KeyLimit {
        /// The account.
        account: String,
        /// Google's message.
        message: String,
    },
    /// The org policy forbids creating keys.
    #[error(
        "Google IAM: key creation is forbidden on {account} by the organization policy \
         iam.disableServiceAccountKeyCreation ({message}). Ask an organization admin to exempt \
         this project from the constraint"
    )]
    KeyCreationForbidden {
        /// The account.
        account: String,
        /// Google's message.
        message: String,
    },
    /// The caller lacks the IAM permission.
    #[error(
        "Google IAM: permission denied ({message}). The calling account needs \
         roles/iam.serviceAccountKeyAdmin on the service account"
    )]
    PermissionDenied {
        /// Google's message.
        message: String,
    },
    /// Google did not accept the bearer token.
    #[error("Google IAM: the access token was not accepted ({message})")]
    Unauthenticated {
        /// Google's message.
        message: String,
    },
    /// 429 or 5xx until the retries ran out.
    #[error("Google IAM: temporarily unavailable after {attempts} attempts (HTTP {status}: {message}); retry later")]
    Unavailable {
        /// The last HTTP status.
        status: u16,
        /// Google's message.
        message: String,
        /// Attempts made.
        attempts: usize,
    },
    /// No answer in time.
    #[error("Google IAM: no answer within {timeout:?} ({message}); retry later")]
    Timeout {
        /// The bound.
        timeout: Duration,
        /// What timed out.
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("Google IAM: could not connect to {endpoint} ({message})")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// Any other answer.
    #[error("Google IAM: unexpected answer (HTTP {status}: {message})")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// Google's message.
        message: String,
    },
}

impl IamError {
    fn is_retryable(&self) -> bool {
        matches!(self, IamError::Unavailable { .. } | IamError::Connect { .. } | IamError::Timeout { .. })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    name: String,
    valid_after_time: Option<String>,
    valid_before_time: Option<String>,
    #[serde(default)]
    disabled: bool,
    key_type: Option<String>,
    private_key_data: Option<String>,
}

impl KeyJson {
    fn to_key(&self) -> GoogleKey {
        let time = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| t.format("%Y").to_string() != "9999")
        };
        GoogleKey {
            id: self.name.rsplit('/').next().unwrap_or_default().to_string(),
            valid_after: time(&self.valid_after_time),
            valid_before: time(&self.valid_before_time),
            disabled: self.disabled,
            user_managed: self.key_type.as_deref() != Some("SYSTEM_MANAGED"),
        }
    }
}

/// A client for one caller identity (the bearer token's account).
pub struct IamClient {
    http: reqwest::Client,
    endpoint: String,
    bearer: Credential,
    timeout: Duration,
    retry: RetryPolicy,
}

impl IamClient {
    /// `endpoint` is the API base (`https://iam.googleapis.com`); `timeout` bounds each call.
    pub fn new(http: reqwest::Client, endpoint: &str, bearer: Credential, timeout: Duration) -> Self {
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bearer,
            timeout,
            retry: RetryPolicy::default(),
        }
    }

    /// Retries 429 and 5xx answers by `retry`.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn keys_url(&self, account: &str) -> String {
        format!("{}/v1/projects/-/serviceAccounts/{account}/keys", self.endpoint)
    }

    /// Creates a key and returns it parsed, with its IAM metadata.
    pub async fn create_key(&self, account: &str) -> Result<(ServiceAccountKey, GoogleKey), IamError> {
        let body = json!({"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE", "keyAlgorithm": "KEY_ALG_RSA_2048"});
        let key: KeyJson = self.call(true, Method::POST, self.keys_url(account), account, Some(body)).await?;
        let bad = |message: String| IamError::Unexpected { status: 200, message };
        let data = key.private_key_data.as_deref().ok_or_else(|| bad("no privateKeyData in the created key".into()))?;
        let file = STANDARD.decode(data).map_err(|_| bad("privateKeyData is not base64".into()))?;
        let file =
            zeroize::Zeroizing::new(String::from_utf8(file).map_err(|_| bad("privateKeyData is not UTF-8".into()))?);
        let parsed =
            ServiceAccountKey::parse(&file).map_err(|e| bad(format!("the created key file is unusable: {e}")))?;
        Ok((parsed, key.to_key()))
    }

    /// User-managed keys of `account` (a key created seconds ago may be missing).
    pub async fn list_keys(&self, account: &str) -> Result<Vec<GoogleKey>, IamError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            keys: Vec<KeyJson>,
        }
        let url = format!("{}?keyTypes=USER_MANAGED", self.keys_url(account));
        let list: List = self.call(false, Method::GET, url, account, None).await?;
        Ok(list.keys.iter().map(KeyJson::to_key).collect())
    }

    /// One key of `account`.
    pub async fn get_key(&self, account: &str, key_id: &str) -> Result<GoogleKey, IamError> {
        let url = format!("{}/{key_id}", self.keys_url(account));
        let key: KeyJson = self.call(false, Method::GET, url, account, None).await?;
        Ok(key.to_key())
    }

    /// Deletes a key for good.
    pub async fn delete_key(&self, account: &str, key_id: &str) -> Result<(), IamError> {
        let url = format!("{}/{key_id}", self.keys_url(account));
        let _: serde_json::Value = self.call(false, Method::DELETE, url, account, None).await?;
        Ok(())
    }

    /// Disables a key (it can be enabled again).
    pub async fn disable_key(&self, account: &str, key_id: &str) -> Result<(), IamError> {
        let url = format!("{}/{key_id}:disable", self.keys_url(account));
        let _: serde_json::Value = self.call(false, Method::POST, url, account, Some(json!({}))).await?;
        Ok(())
    }

    /// Enables a disabled key.
    pub async fn enable_key(&self, account: &str, key_id: &str) -> Result<(), IamError> {
        let url = format!("{}/{key_id}:enable", self.keys_url(account));
        let _: serde_json::Value = self.call(false, Method::POST, url, account, Some(json!({}))).await?;
        Ok(())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        is_create: bool,
        method: Method,
        url: String,
        account: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, IamError> {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let once = || async {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.once(method.clone(), &url, account, body.as_ref(), is_create, n).await
        };
        once.retry(self.retry.backoff())
            .when(|e: &IamError| e.is_retryable() && !(is_create && matches!(e, IamError::Timeout { .. })))
            .notify(|e, wait| tracing::warn!(error = %e, retry_in = ?wait, "retrying Google IAM call"))
            .await
    }

    async fn once<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        account: &str,
        body: Option<&serde_json::Value>,
        is_create: bool,
        attempt: usize,
    ) -> Result<T, IamError> {
        let mut req = self.http.request(method, url).bearer_auth(self.bearer.expose()).timeout(self.timeout);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| IamError::Unexpected {
                status: status.as_u16(),
                message: format!("undecodable body: {e}"),
            });
        }
        let detail = serde_json::from_slice::<ErrorBody>(&bytes).map(|b| b.error).unwrap_or_else(|_| ErrorDetail {
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            status: String::new(),
        });
        Err(classify(status, detail, account, url, is_create, attempt))
    }

    fn transport_error(&self, e: reqwest::Error) -> IamError {
        let timed_out = e.is_timeout();
        let message = e.without_url().to_string();
        if timed_out {
            IamError::Timeout { timeout: self.timeout, message }
        } else {
            IamError::Connect { endpoint: self.endpoint.clone(), message }
        }
    }
}

fn classify(
    status: StatusCode,
    d: ErrorDetail,
    account: &str,
    url: &str,
    is_create: bool,
    attempts: usize,
) -> IamError {
    let account = account.to_string();
    let message = if d.status.is_empty() { d.message.clone() } else { format!("{}: {}", d.status, d.message) };
    match status.as_u16() {
        429 | 400 if is_create && d.message.contains("Maximum number of keys") => {
            IamError::KeyLimit { account, message }
        }
        400 if is_create && d.message.contains("Key creation is not allowed") => {
            IamError::KeyCreationForbidden { account, message }
        }
        // Some callers have seen the key limit reported as a bare precondition failure.
        400 if is_create && d.status == "FAILED_PRECONDITION" => IamError::KeyLimit { account, message },
        401 => IamError::Unauthenticated { message },
        403 => IamError::PermissionDenied { message },
        404 => IamError::NotFound { what: url.rsplit("/v1/").next().unwrap_or(url).to_string(), message },
        429 | 500 | 502 | 503 | 504 => IamError::Unavailable { status: status.as_u16(), message, attempts },
        s => IamError::Unexpected { status: s, message },
    }
}
