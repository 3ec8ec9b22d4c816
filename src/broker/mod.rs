//! The broker: serves short-lived Google tokens to co-located code over 127.0.0.1, speaking the
//! GCE metadata-server protocol so Google's own client libraries work unmodified.
//!
//! | module | what it does |
//! |---|---|
//! | [`token_cache`] | per-key token cache: refresh ahead, min life, single-flight, backoff |
//! | [`account`] | one secret's account: the AWSCURRENT key, re-read on SECRET_TTL or `invalid_grant` |
//! | [`metadata`] | the metadata protocol: guards, routes, exact content types, status endpoint |
//! | [`server`] | the hyper listener on 127.0.0.1 |
//! | [`extension`] | the Lambda Extensions API loop (register, INVOKE, SHUTDOWN) |

pub mod account;
pub mod extension;
pub mod metadata;
pub mod server;
pub mod token_cache;

use std::sync::Arc;
use std::time::Duration;

use account::Account;
use token_cache::CachePolicy;

use crate::config::Config;
use crate::google::token::TokenClient;
use crate::store::SecretStore;

/// The broker's settings (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub secret_ids: Vec<String>,
    pub scopes: Vec<String>,
    pub secret_ttl: Duration,
    pub http_timeout: Duration,
    pub cache: CachePolicy,
}

impl From<&Config> for BrokerSettings {
    fn from(c: &Config) -> Self {
        Self {
            secret_ids: c.secret_ids.clone(),
            scopes: c.scopes.clone(),
            secret_ttl: c.secret_ttl,
            http_timeout: c.http_timeout,
            cache: CachePolicy::default(),
        }
    }
}

/// The broker's configuration cannot work.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "VERTEX_BROKER_SECRET_ID is not set: set it to the id or ARN of the Secrets Manager secret \
         that holds the Google service-account key (several, comma separated)"
    )]
    NoSecret,
}

/// Every account the broker serves, the first being `default`.
pub struct Broker {
    accounts: Vec<Arc<Account>>,
    scopes: Vec<String>,
    /// Cache key of the default scopes, computed once.
    default_scope_key: String,
    started: std::time::Instant,
}

impl Broker {
    pub fn new(settings: &BrokerSettings, store: Arc<dyn SecretStore>) -> Result<Self, BrokerError> {
        if settings.secret_ids.is_empty() {
            return Err(BrokerError::NoSecret);
        }
        // One token client for every account: TLS roots load once, connections are shared.
        let tokens = TokenClient::new(settings.http_timeout);
        let accounts = settings
            .secret_ids
            .iter()
            .map(|id| {
                Arc::new(Account::new(id.clone(), store.clone(), tokens.clone(), settings.secret_ttl, settings.cache))
            })
            .collect();
        let scopes = normalize_scopes(&settings.scopes.join(",")).unwrap_or_else(|| settings.scopes.clone());
        Ok(Self { accounts, default_scope_key: scopes.join(" "), scopes, started: std::time::Instant::now() })
    }

    pub fn accounts(&self) -> &[Arc<Account>] {
        &self.accounts
    }

    /// Default scopes for `/token` without `scopes=`.
    pub fn default_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Cache key of the default scopes (see [`scope_key`]).
    pub fn default_scope_key(&self) -> &str {
        &self.default_scope_key
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Loads every key and mints the default-scope token, so the first request is a cache hit.
    pub async fn warm_up(&self) {
        let mut set = tokio::task::JoinSet::new();
        for a in &self.accounts {
            let (a, key) = (a.clone(), self.default_scope_key.clone());
            set.spawn(async move {
                if a.key(false).await.is_ok() {
                    let _ = a.access_token(&key).await;
                }
            });
        }
        set.join_all().await;
    }

    /// Per-INVOKE work: secret re-checks and refreshes that are due.
    pub async fn tick(&self) {
        let mut set = tokio::task::JoinSet::new();
        for a in &self.accounts {
            let a = a.clone();
            set.spawn(async move { a.tick().await });
        }
        set.join_all().await;
    }

    /// `default`, or an account by its email (loading keys first if needed).
    pub async fn account(&self, name: &str) -> Option<Arc<Account>> {
        if name == "default" {
            return self.accounts.first().cloned();
        }
        if let Some(a) = self.accounts.iter().find(|a| a.email().as_deref() == Some(name)) {
            return Some(a.clone());
        }
        for a in self.accounts.iter().filter(|a| a.current().is_none()) {
            let _ = a.key(false).await;
        }
        self.accounts.iter().find(|a| a.email().as_deref() == Some(name)).cloned()
    }
}

/// The cache key of a scope list as clients send it: normalized, joined by spaces.
pub fn scope_key(raw: &str) -> Option<String> {
    normalize_scopes(raw).map(|s| s.join(" "))
}

/// Scopes as clients send them (comma and/or space separated, possibly URL-encoded already
/// decoded), sorted and deduplicated so that equal sets share a cache slot.
pub fn normalize_scopes(raw: &str) -> Option<Vec<String>> {
    let mut scopes: Vec<String> =
        raw.split([',', ' ', '\t', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    scopes.sort();
    scopes.dedup();
    (!scopes.is_empty()).then_some(scopes)
}
