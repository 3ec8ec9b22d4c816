//! Every environment variable the project reads, with its default, parsed and validated here
//! and nowhere else. Errors name the variable and what to set it to.

use std::time::Duration;

use crate::google::scopes::ScopeKey;
use crate::text::split_list;

mod allowed_models;
mod proxy;
mod vars;
mod vertex;
pub use allowed_models::{AllowedModels, ModelName};
pub use proxy::Proxies;
use vars::Vars;
pub use vertex::{is_location, TokenEndpoints, VertexGateway};

/// Default scope for access tokens.
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
    /// `VERTEX_BROKER_LOG`: tracing filter.
    pub log: String,
    /// The broker's bounds against its neighbours.
    pub limits: Limits,
    /// `VERTEX_BROKER_CREDENTIAL_CONFIG`: a Google `external_account` configuration (inline
    /// JSON or a file path). When set, the default account federates from AWS: no secret.
    pub credential_config: Option<String>,
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
}

/// The longest token lifetime Google allows (with the org policy's extension).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(43200);

/// What a neighbour on 127.0.0.1 can make the broker hold or spend. Over a limit the broker
/// answers 429 with `Retry-After` and the limit's variable; it never grows. Defaults fit a
/// 128 MB function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `VERTEX_BROKER_MAX_CONNECTIONS`: open connections; at the cap the least recently active
    /// idle one is closed to make room, and when every one is busy a newcomer gets 429.
    pub max_connections: usize,
    /// `VERTEX_BROKER_HEADER_TIMEOUT`: how long a connection may take to send a whole request
    /// head, counted from when it opens or its previous answer ends (so it also closes idle
    /// keep-alive connections).
    pub header_timeout: Duration,
    /// `VERTEX_BROKER_WRITE_TIMEOUT`: how long a connection's peer may take nothing of its
    /// answer before the connection is closed (a caller that stops reading frees its slot).
    pub write_timeout: Duration,
    /// `VERTEX_BROKER_DRAIN_TIMEOUT`: how long requests in flight may finish on SIGTERM or
    /// SHUTDOWN (in Lambda, further bounded by the SHUTDOWN deadline).
    pub drain_timeout: Duration,
    /// `VERTEX_BROKER_MAX_SLOTS`: cached scope sets per account, and audiences per account;
    /// the least recently used is evicted beyond it.
    pub max_slots: usize,
    /// `VERTEX_BROKER_MAX_MINTS`: token mints in flight to Google at once.
    pub max_mints: usize,
    /// `VERTEX_BROKER_MINT_RATE`: mints per second for tokens not yet held (new scope sets and
    /// audiences); renewing a held token is bounded by the slot cap instead.
    pub mint_rate: u32,
    /// `VERTEX_BROKER_INVOKE_BUDGET`: how long the extension lets due refreshes run on an INVOKE
    /// before it asks Lambda for the next event; the rest go on in the background.
    pub invoke_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            max_slots: 64,
            max_mints: 4,
            mint_rate: 5,
            invoke_budget: Duration::from_millis(100),
        }
    }
}

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

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let port = match vars.get("VERTEX_BROKER_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| ConfigError {
                variable: "VERTEX_BROKER_PORT",
                value: v,
                expected: "a port number from 1 to 65535 (the broker always binds 127.0.0.1)".into(),
            })?,
        };
        let scopes = match vars.get("VERTEX_BROKER_SCOPES") {
            None => ScopeKey::cloud_platform(),
            Some(v) => match ScopeKey::parse(&v) {
                Ok(scopes) => scopes,
                Err(e) => {
                    return Err(ConfigError { variable: "VERTEX_BROKER_SCOPES", value: v, expected: e.to_string() })
                }
            },
        };
        let defaults = Limits::default();
        let limits = Limits {
            max_connections: vars.count("VERTEX_BROKER_MAX_CONNECTIONS", defaults.max_connections)?,
            header_timeout: vars.duration("VERTEX_BROKER_HEADER_TIMEOUT", defaults.header_timeout)?,
            write_timeout: vars.duration("VERTEX_BROKER_WRITE_TIMEOUT", defaults.write_timeout)?,
            drain_timeout: vars.duration("VERTEX_BROKER_DRAIN_TIMEOUT", defaults.drain_timeout)?,
            max_slots: vars.count("VERTEX_BROKER_MAX_SLOTS", defaults.max_slots)?,
            max_mints: vars.count("VERTEX_BROKER_MAX_MINTS", defaults.max_mints)?,
            mint_rate: vars.count("VERTEX_BROKER_MINT_RATE", defaults.mint_rate as usize)? as u32,
            invoke_budget: vars.duration("VERTEX_BROKER_INVOKE_BUDGET", defaults.invoke_budget)?,
        };
        check_ca_file(&vars)?;
        let credential_config = vars.get("VERTEX_BROKER_CREDENTIAL_CONFIG");
        if let Some(c) = &credential_config {
            if let Err(e) = crate::google::federation::CredentialConfig::load(c) {
                let shown = if c.trim_start().starts_with('{') { "(inline JSON)".to_string() } else { c.clone() };
                return Err(ConfigError { variable: "VERTEX_BROKER_CREDENTIAL_CONFIG", value: shown, expected: e.0 });
            }
        }
        let token_lifetime = vars.duration("VERTEX_BROKER_TOKEN_LIFETIME", Duration::from_secs(3600))?;
        if token_lifetime > MAX_TOKEN_LIFETIME || token_lifetime.subsec_nanos() != 0 {
            return Err(ConfigError {
                variable: "VERTEX_BROKER_TOKEN_LIFETIME",
                value: vars.get("VERTEX_BROKER_TOKEN_LIFETIME").unwrap_or_default(),
                expected: "whole seconds up to 43200s (above 3600s only where the org policy \
                           constraints/iam.allowServiceAccountCredentialLifetimeExtension lists the account)"
                    .into(),
            });
        }
        let emails = |name: &'static str| -> Result<Vec<String>, ConfigError> {
            let list: Vec<String> = vars.get(name).map(|v| split_list(&v)).unwrap_or_default();
            match list.iter().find(|e| !e.contains('@') || e.contains(['/', ':', ' '])) {
                Some(bad) => Err(ConfigError {
                    variable: name,
                    value: bad.clone(),
                    expected: "service-account emails (name@project.iam.gserviceaccount.com), comma separated".into(),
                }),
                None => Ok(list),
            }
        };
        let impersonate = emails("VERTEX_BROKER_IMPERSONATE")?;
        if impersonate.len() > 1 {
            return Err(ConfigError {
                variable: "VERTEX_BROKER_IMPERSONATE",
                value: impersonate.join(","),
                expected: "one account; put the accounts in between in VERTEX_BROKER_DELEGATES".into(),
            });
        }
        let namespace = vars.get("VERTEX_BROKER_METRICS_NAMESPACE").unwrap_or_else(|| "VertexBroker".to_string());
        if namespace.len() > 255 || namespace.contains(':') {
            return Err(ConfigError {
                variable: "VERTEX_BROKER_METRICS_NAMESPACE",
                value: namespace,
                expected: "a CloudWatch namespace: up to 255 characters, no colon".into(),
            });
        }
        Ok(Self {
            vertex: VertexGateway::read(&vars)?,
            token_endpoints: TokenEndpoints::read(&vars)?,
            metrics_namespace: vars.switch("VERTEX_BROKER_METRICS", true)?.then_some(namespace),
            audit: vars.switch("VERTEX_BROKER_AUDIT", true)?,
            credential_config,
            impersonate: impersonate.into_iter().next(),
            delegates: emails("VERTEX_BROKER_DELEGATES")?,
            token_lifetime,
            iam_credentials_endpoint: vars
                .get("VERTEX_BROKER_IAM_CREDENTIALS_ENDPOINT")
                .unwrap_or_else(|| crate::google::iam_credentials::DEFAULT_ENDPOINT.to_string()),
            project_id: vars.get("VERTEX_BROKER_PROJECT_ID"),
            secret_ids: vars.get("VERTEX_BROKER_SECRET_ID").map(|v| split_list(&v)).unwrap_or_default(),
            port,
            scopes,
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
            log: vars.get("VERTEX_BROKER_LOG").unwrap_or_else(|| "info".to_string()),
            limits,
        })
    }
}

/// Splits a scope list written with commas and/or spaces.
pub fn split_scopes(v: &str) -> Vec<String> {
    v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests;
