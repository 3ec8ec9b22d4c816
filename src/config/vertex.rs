//! The gateway's settings (`VERTEX_BROKER_VERTEX_*`, `VERTEX_BROKER_ALLOWED_MODELS`, the proxy
//! variables) and what the metadata token endpoint hands out (`VERTEX_BROKER_TOKEN_ENDPOINTS`).

use std::time::Duration;

use super::proxy::Proxies;
use super::vars::Vars;
use super::{AllowedModels, ConfigError};

/// What the metadata token endpoint hands function code (`VERTEX_BROKER_TOKEN_ENDPOINTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoints {
    /// `on` (default): the account's Google tokens, access and ID.
    #[default]
    On,
    /// `off`: none; token and identity answer 403, Vertex only through the gateway.
    Off,
    /// `gateway`: a token only this broker's gateway accepts (useless at Google), so SDKs that
    /// insist on a credential work through the gateway unchanged; identity answers 403.
    Gateway,
}

impl TokenEndpoints {
    pub(super) fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let words = [
            ("on", Self::On),
            ("true", Self::On),
            ("1", Self::On),
            ("off", Self::Off),
            ("false", Self::Off),
            ("0", Self::Off),
            ("gateway", Self::Gateway),
        ];
        let expected = "`on` (Google tokens), `gateway` (a token only the gateway accepts) or `off`";
        vars.choice("VERTEX_BROKER_TOKEN_ENDPOINTS", Self::On, &words, expected)
    }
}

/// How the gateway calls Vertex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexGateway {
    /// `VERTEX_BROKER_VERTEX_ENDPOINT`: a base URL used instead of the location's own host
    /// (tests, private endpoints).
    pub endpoint: Option<String>,
    /// `VERTEX_BROKER_VERTEX_DEADLINE`: how long a call may spend on retries outside Lambda, when
    /// the request names no shorter deadline (in Lambda the invocation's deadline bounds it too).
    pub deadline: Duration,
    /// `VERTEX_BROKER_VERTEX_RETRIES`: tries after the first on 429 and 503 (0 turns retries off).
    pub retries: u32,
    /// `VERTEX_BROKER_VERTEX_FALLBACK=global`: after a 429 from a regional endpoint, try the
    /// global one.
    pub fallback_global: bool,
    /// `VERTEX_BROKER_VERTEX_MAX_BODY_MB`: largest request body forwarded (Vertex's own limit
    /// for a request with inline data is 20 MB).
    pub max_body: usize,
    /// `VERTEX_BROKER_VERTEX_LOCATION`: where calls that name no location go (the GenAI SDK's
    /// `models.get`), default `global`.
    pub location: String,
    /// `VERTEX_BROKER_ALLOWED_MODELS`: the models calls may name (default: any).
    pub allowed_models: AllowedModels,
    /// `HTTPS_PROXY` and the like: the proxy calls go through, if any.
    pub proxies: Proxies,
}

impl Default for VertexGateway {
    fn default() -> Self {
        Self {
            endpoint: None,
            deadline: Duration::from_secs(30),
            retries: 3,
            fallback_global: false,
            max_body: 20 * 1024 * 1024,
            location: "global".to_string(),
            allowed_models: AllowedModels::default(),
            proxies: Proxies::default(),
        }
    }
}

impl VertexGateway {
    pub(super) fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            endpoint: vars.url("VERTEX_BROKER_VERTEX_ENDPOINT", "https://us-central1-aiplatform.googleapis.com")?,
            deadline: vars.duration("VERTEX_BROKER_VERTEX_DEADLINE", defaults.deadline)?,
            retries: vars.small("VERTEX_BROKER_VERTEX_RETRIES", defaults.retries, 10)?,
            fallback_global: vars.choice(
                "VERTEX_BROKER_VERTEX_FALLBACK",
                false,
                &[("global", true), ("off", false)],
                "`global` (retry a regional 429 at the global endpoint) or `off`",
            )?,
            max_body: match vars.get("VERTEX_BROKER_VERTEX_MAX_BODY_MB") {
                None => defaults.max_body,
                Some(_) => vars.small("VERTEX_BROKER_VERTEX_MAX_BODY_MB", 20, 500)?.max(1) as usize * 1024 * 1024,
            },
            location: match vars.get("VERTEX_BROKER_VERTEX_LOCATION") {
                None => defaults.location,
                Some(l) if is_location(&l) => l,
                Some(l) => {
                    return Err(ConfigError {
                        variable: "VERTEX_BROKER_VERTEX_LOCATION",
                        value: l,
                        expected: "a Vertex location such as global, us, eu or us-central1".into(),
                    })
                }
            },
            allowed_models: match vars.get("VERTEX_BROKER_ALLOWED_MODELS") {
                None => AllowedModels::default(),
                Some(v) => AllowedModels::parse(&v)?,
            },
            proxies: Proxies::read(vars)?,
        })
    }
}

/// A Vertex location as it may become part of a host name: lowercase letters, digits and `-`.
pub fn is_location(l: &str) -> bool {
    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
