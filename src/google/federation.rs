//! Workload identity federation from AWS, as Google's `external_account` credentials do it: a
//! GetCallerIdentity request signed with the workload's AWS credentials (by `aws-sigv4`) is the
//! subject token, exchanged at Google STS for a federated access token; the configuration's
//! `service_account_impersonation_url`, when set, turns that into a service account's token.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use chrono::Utc;
use serde::Deserialize;

use super::token::{Token, TokenError};
use super::Credential;

const AWS_SUBJECT: &str = "urn:ietf:params:aws:token-type:aws4_request";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
use super::scopes::CLOUD_PLATFORM;

/// A Google `external_account` credential configuration for AWS, as
/// `gcloud iam workload-identity-pools create-cred-config --aws` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CredentialConfig {
    /// The workload identity pool provider's full resource name.
    pub audience: String,
    /// `urn:ietf:params:aws:token-type:aws4_request`.
    pub subject_token_type: String,
    /// Google STS's token endpoint.
    pub token_url: String,
    /// The `generateAccessToken` URL of the account to impersonate, if any.
    pub service_account_impersonation_url: Option<String>,
    /// The impersonated token's lifetime.
    #[serde(default)]
    pub service_account_impersonation: Option<ImpersonationOptions>,
    /// Where the AWS credentials come from.
    pub credential_source: CredentialSource,
}

/// `service_account_impersonation` of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImpersonationOptions {
    /// Seconds; Google's default is an hour.
    pub token_lifetime_seconds: Option<u64>,
}

/// `credential_source` of an AWS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CredentialSource {
    /// `aws1`.
    pub environment_id: String,
    /// The GetCallerIdentity URL, with `{region}` in it.
    pub regional_cred_verification_url: String,
}

/// The configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("VERTEX_BROKER_CREDENTIAL_CONFIG: {0}")]
pub struct ConfigInvalid(pub String);

impl CredentialConfig {
    /// Parses the configuration given inline (JSON) or as a path to a file holding it.
    pub fn load(inline_or_path: &str) -> Result<Self, ConfigInvalid> {
        let text = if inline_or_path.trim_start().starts_with('{') {
            inline_or_path.to_string()
        } else {
            std::fs::read_to_string(inline_or_path)
                .map_err(|e| ConfigInvalid(format!("cannot read the file {inline_or_path}: {e}")))?
        };
        Self::parse(&text)
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Self, ConfigInvalid> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConfigInvalid(format!("not JSON ({e}); give the file gcloud's create-cred-config wrote")))?;
        if value.get("type").and_then(|t| t.as_str()) != Some("external_account") {
            return Err(ConfigInvalid(
                "\"type\" must be \"external_account\" (a workload identity federation configuration, not a key)"
                    .into(),
            ));
        }
        let config: Self = serde_json::from_value(value).map_err(|e| {
            ConfigInvalid(format!(
                "{e}; create it with `gcloud iam workload-identity-pools create-cred-config ... --aws`"
            ))
        })?;
        if config.subject_token_type != AWS_SUBJECT {
            return Err(ConfigInvalid(format!(
                "subject_token_type is {}; the broker federates from AWS only ({AWS_SUBJECT}); create the \
                 configuration with --aws",
                config.subject_token_type
            )));
        }
        if config.credential_source.environment_id != "aws1" {
            return Err(ConfigInvalid(format!(
                "credential_source.environment_id is {}; only aws1 exists",
                config.credential_source.environment_id
            )));
        }
        if !config.audience.starts_with("//iam.googleapis.com/") {
            return Err(ConfigInvalid(
                "audience must be the provider's full name, //iam.googleapis.com/projects/NUMBER/locations/global/\
                 workloadIdentityPools/POOL/providers/PROVIDER"
                    .into(),
            ));
        }
        if let Some(t) = config.lifetime() {
            if !(600..=43200).contains(&t.as_secs()) {
                return Err(ConfigInvalid(format!(
                    "service_account_impersonation.token_lifetime_seconds is {}; Google accepts 600 to 43200",
                    t.as_secs()
                )));
            }
        }
        Ok(config)
    }

    /// The account the configuration impersonates, from its impersonation URL.
    pub fn impersonated_account(&self) -> Option<&str> {
        let url = self.service_account_impersonation_url.as_deref()?;
        let after = url.rsplit_once("/serviceAccounts/")?.1;
        Some(after.split_once(':').map_or(after, |(email, _)| email))
    }

    /// `token_lifetime_seconds`, when the configuration sets one.
    pub fn lifetime(&self) -> Option<Duration> {
        self.service_account_impersonation.as_ref()?.token_lifetime_seconds.map(Duration::from_secs)
    }

    /// The project number in the audience.
    pub fn project_number(&self) -> Option<&str> {
        self.audience.split("/projects/").nth(1)?.split('/').next()
    }
}

/// Where the subject token's AWS credentials and region come from.
#[derive(Clone, Debug)]
pub struct AwsIdentity {
    /// Where the credentials come from (the environment, a profile, a role).
    pub credentials: SharedCredentialsProvider,
    /// The region the subject token is signed for.
    pub region: String,
}

impl AwsIdentity {
    /// The execution role's credentials Lambda puts in every function's (and extension's)
    /// environment.
    pub fn from_lambda(c: &crate::config::LambdaCredentials) -> Self {
        Self::fixed(&c.access_key_id, &c.secret_access_key, c.session_token.as_deref(), &c.region)
    }

    /// Credentials that never change for their lifetime (Lambda's, a sandbox's, a test's).
    pub fn fixed(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>, region: &str) -> Self {
        let credentials = aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_string),
            None,
            "vertex-broker",
        );
        Self { credentials: SharedCredentialsProvider::new(credentials), region: region.to_string() }
    }

    /// aws-config's provider chain (environment, profiles and SSO, ECS container credentials,
    /// IMDSv2) and region, as loaded for `serve`. None without credentials or region.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Option<Self> {
        Some(Self { credentials: config.credentials_provider()?, region: config.region()?.to_string() })
    }
}

/// Builds subject tokens and exchanges them at Google STS.
#[derive(Clone)]
pub struct Federation {
    /// The configuration it follows.
    pub config: CredentialConfig,
    aws: AwsIdentity,
    http: reqwest::Client,
}

/// A failure before Google answered: no AWS credentials, or the request could not be signed.
fn aws_failure(message: String) -> TokenError {
    TokenError::Unreachable { uri: "AWS credentials".into(), message }
}

impl Federation {
    /// An exchange for `config`, signing with `aws`; `timeout` bounds each call.
    pub fn new(config: CredentialConfig, aws: AwsIdentity, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        Self { config, aws, http }
    }

    /// The URL the subject token is signed for, with the region filled in.
    pub fn verification_url(&self) -> String {
        self.config.credential_source.regional_cred_verification_url.replace("{region}", &self.aws.region)
    }

    /// The serialized, SigV4-signed GetCallerIdentity request Google STS accepts as proof of the
    /// AWS identity (the target resource signed, as Google's Go client does).
    pub async fn subject_token(&self) -> Result<Credential, TokenError> {
        let url = self.verification_url();
        let headers = self
            .aws
            .sign_caller_identity(&url, &[("x-goog-cloud-target-resource", self.config.audience.as_str())])
            .await
            .map_err(aws_failure)?;
        let token = serde_json::json!({
            "url": url,
            "method": "POST",
            "headers": headers.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>(),
        });
        let encoded: String = form_urlencoded::byte_serialize(token.to_string().as_bytes()).collect();
        Ok(Credential::new(encoded))
    }

    /// Exchanges a fresh subject token at the configuration's `token_url` for a federated
    /// access token.
    pub async fn exchange(&self, scopes: &[String]) -> Result<Token, TokenError> {
        let subject = self.subject_token().await?;
        let uri = self.config.token_url.clone();
        let scope = if scopes.is_empty() { CLOUD_PLATFORM.to_string() } else { scopes.join(" ") };
        let resp = self
            .http
            .post(&uri)
            .form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("subject_token_type", AWS_SUBJECT),
                ("audience", self.config.audience.as_str()),
                ("scope", scope.as_str()),
                ("subject_token", subject.expose()),
            ])
            .send()
            .await
            .map_err(|e| TokenError::Unreachable { uri: uri.clone(), message: e.without_url().to_string() })?;
        let status = resp.status();
        let answer: ExchangeAnswer = resp.json().await.map_err(|e| TokenError::BadResponse {
            uri: uri.clone(),
            message: format!("HTTP {status}: {}", e.without_url()),
        })?;
        if let Some(error) = answer.error {
            return Err(TokenError::Refused {
                key: "the federated AWS identity".into(),
                error,
                description: answer.error_description.unwrap_or_default(),
            });
        }
        let token = answer
            .access_token
            .ok_or_else(|| TokenError::BadResponse { uri, message: format!("HTTP {status} without access_token") })?;
        let expires_in = answer.expires_in.unwrap_or(3600).max(1);
        Ok(Token { bearer: Credential::new(token), expires_at: Utc::now() + chrono::Duration::seconds(expires_in) })
    }

    /// The AWS identity Google will see: the caller's ARN, from AWS STS at the URL subject
    /// tokens are signed for (for `vertex-broker doctor`).
    pub async fn caller_arn(&self) -> Result<String, String> {
        self.aws.caller_arn(&self.http, &self.verification_url()).await
    }
}

impl AwsIdentity {
    /// Signs a GetCallerIdentity POST to `url` with `aws-sigv4`, `extra` headers included in the
    /// signature; returns every header to send, sorted by name.
    pub async fn sign_caller_identity(
        &self,
        url: &str,
        extra: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign with: {e}"))?;
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("regional_cred_verification_url {url} has no host"))?
            .to_string();
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let mut unsigned = vec![("host", host.as_str())];
        unsigned.extend_from_slice(extra);
        let request = SignableRequest::new("POST", url, unsigned.iter().copied(), SignableBody::Bytes(b""))
            .map_err(|e| format!("cannot sign {url}: {e}"))?;
        let (instructions, _) = sign(request, &params).map_err(|e| format!("cannot sign: {e}"))?.into_parts();
        let mut headers: Vec<(String, String)> = unsigned.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        headers.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
        headers.sort();
        Ok(headers)
    }

    /// Asks AWS STS at `url` (a GetCallerIdentity URL) whose credentials these are: the ARN.
    pub async fn caller_arn(&self, http: &reqwest::Client, url: &str) -> Result<String, String> {
        let mut call = http.post(url);
        for (k, v) in self.sign_caller_identity(url, &[]).await? {
            if k != "host" {
                call = call.header(k, v);
            }
        }
        let resp = call.send().await.map_err(|e| format!("AWS STS at {url} did not answer: {}", e.without_url()))?;
        let body = resp.text().await.unwrap_or_default();
        let element = |name: &str| {
            let start = body.find(&format!("<{name}>"))? + name.len() + 2;
            Some(body[start..start + body[start..].find(&format!("</{name}>"))?].to_string())
        };
        element("Arn").ok_or_else(|| {
            format!(
                "AWS STS refused: {} {}",
                element("Code").unwrap_or_default(),
                element("Message").unwrap_or_default()
            )
        })
    }
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: Option<String>,
    expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/aws",
            "subject_token_type": AWS_SUBJECT,
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {
                "environment_id": "aws1",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
            }
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn gclouds_configuration_parses_and_names_its_parts() {
        let c = CredentialConfig::parse(&config(serde_json::json!({
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
            "service_account_impersonation": {"token_lifetime_seconds": 600}
        })).to_string())
        .unwrap();
        assert_eq!(c.impersonated_account(), Some("sa@p.iam.gserviceaccount.com"));
        assert_eq!(c.lifetime(), Some(Duration::from_secs(600)));
        assert_eq!(c.project_number(), Some("123"));
    }

    #[test]
    fn unusable_configurations_say_what_to_fix() {
        let err = |v: serde_json::Value| CredentialConfig::parse(&v.to_string()).unwrap_err().to_string();
        assert!(err(serde_json::json!({"type": "service_account"})).contains("external_account"));
        assert!(err(config(serde_json::json!({"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"})))
            .contains("--aws"));
        assert!(err(config(serde_json::json!({"audience": "pool"}))).contains("//iam.googleapis.com/"));
        assert!(err(config(serde_json::json!({"service_account_impersonation": {"token_lifetime_seconds": 60}})))
            .contains("600 to 43200"));
        assert!(CredentialConfig::load("/nonexistent/config.json").unwrap_err().to_string().contains("cannot read"));
    }
}
