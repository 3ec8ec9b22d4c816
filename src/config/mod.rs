//! Every environment variable the project reads, with its default, parsed and validated here
//! and nowhere else. Errors name the variable and what to set it to.

use std::time::Duration;

use crate::google::federation::CredentialConfig;
use crate::google::scopes::ScopeKey;
use crate::text::split_list;

mod allowed_models;
mod environment;
mod limits;
mod proxy;
mod source;
mod vars;
mod vertex;
pub use allowed_models::{AllowedModels, ModelName};
pub use environment::{aws_endpoint, LambdaCredentials, MetadataPointers};
pub use limits::Limits;
pub use proxy::Proxies;
pub use source::{check_source, NoSource};
use vars::Vars;
pub use vertex::{is_location, TokenEndpoints, VertexGateway};

/// Default broker port on 127.0.0.1 (2773 belongs to AWS's secrets agent).
pub const DEFAULT_PORT: u16 = 2775;
/// Google's IAM API.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.googleapis.com";

/// What rotation does to keys that aged out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeMode {
    /// Delete the key at Google (default).
    Delete,
    /// Disable it, so an operator can still re-enable it.
    Disable,
}

/// The whole configuration, as read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `VERTEX_BROKER_SECRET_ID`: one or more secret ids or ARNs; the first is `default`.
    pub secret_ids: Vec<String>,
    /// `VERTEX_BROKER_PORT`: broker port on 127.0.0.1.
    pub port: u16,
    /// `VERTEX_BROKER_SCOPES`: default scopes (comma or space separated).
    pub scopes: ScopeKey,
    /// `VERTEX_BROKER_SECRET_TTL`: how often the broker checks which version is AWSCURRENT.
    pub secret_ttl: Duration,
    /// `VERTEX_BROKER_IAM_ENDPOINT`: base URL of Google's IAM API.
    pub iam_endpoint: String,
    /// `VERTEX_BROKER_ADMIN_SECRET_ID`: a separate key that administers the rotated account's keys.
    pub admin_secret_id: Option<String>,
    /// `VERTEX_BROKER_PROPAGATION_TIMEOUT`: how long testSecret waits for a new key to work.
    pub propagation_timeout: Duration,
    /// `VERTEX_BROKER_REVOKE`: `delete` (default) or `disable`.
    pub revoke: RevokeMode,
    /// `VERTEX_BROKER_HTTP_TIMEOUT`: the timeout of each call to Google.
    pub http_timeout: Duration,
    /// `VERTEX_BROKER_LOG`: tracing filter; `None`: each binary's default (`info` for the broker).
    pub log: Option<String>,
    /// The broker's bounds against its neighbours.
    pub limits: Limits,
    /// `VERTEX_BROKER_CREDENTIAL_CONFIG`: a Google `external_account` configuration (inline
    /// JSON or a file path), parsed. When set, the default account federates from AWS: no secret.
    pub credential_config: Option<CredentialConfig>,
    /// `VERTEX_BROKER_IMPERSONATE`: the account whose tokens are served, impersonated with the
    /// source's token (a rotated key or federation).
    pub impersonate: Option<String>,
    /// `VERTEX_BROKER_DELEGATES`: accounts between the source and the impersonated account.
    pub delegates: Vec<String>,
    /// `VERTEX_BROKER_TOKEN_LIFETIME`: access-token lifetime when impersonating.
    pub token_lifetime: Duration,
    /// `VERTEX_BROKER_IAM_CREDENTIALS_ENDPOINT`: IAM Credentials base URL (impersonation from a
    /// rotated key, or `VERTEX_BROKER_IMPERSONATE`).
    pub iam_credentials_endpoint: String,
    /// `VERTEX_BROKER_PROJECT_ID`: the metadata `project-id`; else the served account's project.
    pub project_id: Option<String>,
    /// The Vertex gateway (`/vertex/...`).
    pub vertex: VertexGateway,
    /// `VERTEX_BROKER_TOKEN_ENDPOINTS`: what the metadata token and identity endpoints hand out.
    pub token_endpoints: TokenEndpoints,
    /// `VERTEX_BROKER_METRICS_NAMESPACE` (default `VertexBroker`); `None` when
    /// `VERTEX_BROKER_METRICS=off`.
    pub metrics_namespace: Option<String>,
    /// `VERTEX_BROKER_AUDIT`: `on` (default) writes a JSON audit line per gateway call.
    pub audit: bool,
    /// `VERTEX_BROKER_TOKEN_SECRET_ID`: the token secret of central minting (the minter writes
    /// it; a broker with no other source reads it and mints nothing).
    pub token_secret_id: Option<String>,
    /// `VERTEX_BROKER_AUDIENCES`: audiences the minter pre-mints ID tokens for.
    pub audiences: Vec<crate::google::scopes::Audience>,
    /// `AWS_LAMBDA_FUNCTION_NAME`, set by Lambda: running in Lambda, and the metrics' dimension.
    pub function_name: Option<String>,
}

/// The longest token lifetime Google allows (with the org policy's extension).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(43200);

/// A variable that is set to something unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it should hold.
    pub expected: String,
}

/// `SSL_CERT_FILE`, if set, holds certificates: every TLS client here (the AWS SDK, Google's
/// endpoints, the gateway) trusts its CAs instead of the system's, and the AWS SDK panics when it
/// holds none.
fn check_ca_file<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<(), ConfigError> {
    let Some(file) = vars.get("SSL_CERT_FILE") else { return Ok(()) };
    if std::fs::read_to_string(&file).is_ok_and(|pem| pem.contains("-----BEGIN CERTIFICATE-----")) {
        return Ok(());
    }
    Err(ConfigError {
        variable: "SSL_CERT_FILE",
        value: file,
        expected: "a readable file of PEM CA certificates, which replace the system's for every TLS connection; \
                   unset it to use the system's"
            .into(),
    })
}

/// A Lambda entry point started outside Lambda: there is no Runtime API to talk to (the Lambda
/// crates would panic, and AWS's provider chain would go looking for instance metadata).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("AWS_LAMBDA_RUNTIME_API is not set: {binary} runs inside AWS Lambda; {elsewhere}")]
pub struct NotInLambda {
    /// The binary that was started.
    pub binary: &'static str,
    /// What to run instead, outside Lambda.
    pub elsewhere: &'static str,
}

/// Lambda entry points call this first, before any AWS or Lambda client is built.
pub fn require_lambda(binary: &'static str, elsewhere: &'static str) -> Result<(), NotInLambda> {
    match std::env::var_os("AWS_LAMBDA_RUNTIME_API") {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(NotInLambda { binary, elsewhere }),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map): one parser per area.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        check_ca_file(&vars)?;
        let impersonate = source::impersonate(&vars)?;
        Ok(Self {
            secret_ids: vars.get("VERTEX_BROKER_SECRET_ID").map(|v| split_list(&v)).unwrap_or_default(),
            credential_config: source::credential_config(&vars)?,
            impersonate,
            delegates: source::emails(&vars, "VERTEX_BROKER_DELEGATES")?,
            token_lifetime: source::token_lifetime(&vars)?,
            iam_credentials_endpoint: vars
                .get("VERTEX_BROKER_IAM_CREDENTIALS_ENDPOINT")
                .unwrap_or_else(|| crate::google::iam_credentials::DEFAULT_ENDPOINT.to_string()),
            port: port(&vars)?,
            scopes: scopes(&vars)?,
            project_id: vars.get("VERTEX_BROKER_PROJECT_ID"),
            limits: Limits::read(&vars)?,
            vertex: VertexGateway::read(&vars)?,
            token_endpoints: TokenEndpoints::read(&vars)?,
            metrics_namespace: vars.switch("VERTEX_BROKER_METRICS", true)?.then_some(metrics_namespace(&vars)?),
            audit: vars.switch("VERTEX_BROKER_AUDIT", true)?,
            secret_ttl: vars.duration("VERTEX_BROKER_SECRET_TTL", Duration::from_secs(300))?,
            iam_endpoint: vars
                .url("VERTEX_BROKER_IAM_ENDPOINT", DEFAULT_IAM_ENDPOINT)?
                .unwrap_or_else(|| DEFAULT_IAM_ENDPOINT.to_string()),
            admin_secret_id: vars.get("VERTEX_BROKER_ADMIN_SECRET_ID"),
            propagation_timeout: vars.duration("VERTEX_BROKER_PROPAGATION_TIMEOUT", Duration::from_secs(120))?,
            revoke: vars.choice(
                "VERTEX_BROKER_REVOKE",
                RevokeMode::Delete,
                &[("delete", RevokeMode::Delete), ("disable", RevokeMode::Disable)],
                "`delete` or `disable`",
            )?,
            http_timeout: vars.duration("VERTEX_BROKER_HTTP_TIMEOUT", Duration::from_secs(10))?,
            log: vars.get("VERTEX_BROKER_LOG"),
            token_secret_id: vars.get("VERTEX_BROKER_TOKEN_SECRET_ID"),
            audiences: source::audiences(&vars)?,
            function_name: vars.get("AWS_LAMBDA_FUNCTION_NAME"),
        })
    }
}

/// `VERTEX_BROKER_PORT`: a port on 127.0.0.1.
fn port<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<u16, ConfigError> {
    match vars.get("VERTEX_BROKER_PORT") {
        None => Ok(DEFAULT_PORT),
        Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| ConfigError {
            variable: "VERTEX_BROKER_PORT",
            value: v,
            expected: "a port number from 1 to 65535 (the broker always binds 127.0.0.1)".into(),
        }),
    }
}

/// `VERTEX_BROKER_SCOPES`: the default scope set, normalized.
fn scopes<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<ScopeKey, ConfigError> {
    match vars.get("VERTEX_BROKER_SCOPES") {
        None => Ok(ScopeKey::cloud_platform()),
        Some(v) => ScopeKey::parse(&v).map_err(|e| ConfigError {
            variable: "VERTEX_BROKER_SCOPES",
            value: v,
            expected: e.to_string(),
        }),
    }
}

/// `VERTEX_BROKER_METRICS_NAMESPACE`: a CloudWatch namespace.
fn metrics_namespace<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<String, ConfigError> {
    let namespace = vars.get("VERTEX_BROKER_METRICS_NAMESPACE").unwrap_or_else(|| "VertexBroker".to_string());
    if namespace.len() > 255 || namespace.contains(':') {
        return Err(ConfigError {
            variable: "VERTEX_BROKER_METRICS_NAMESPACE",
            value: namespace,
            expected: "a CloudWatch namespace: up to 255 characters, no colon".into(),
        });
    }
    Ok(namespace)
}

/// Splits a scope list written with commas and/or spaces.
pub fn split_scopes(v: &str) -> Vec<String> {
    v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests;
