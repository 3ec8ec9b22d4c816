//! The broker: serves short-lived Google tokens to co-located code over 127.0.0.1, speaking the
//! GCE metadata-server protocol so Google's own client libraries work unmodified.
//!
//! A request's path, file by file, is in the module map (`docs/ARCHITECTURE.md`): `server`
//! accepts it, `guard` checks who asks, `metadata` or `gateway` routes it, an `account` answers
//! from its `token_cache` or mints through its source.

pub mod account;
pub(crate) mod connections;
pub mod extension;
pub mod gateway;
pub mod guard;
pub(crate) mod invocation;
pub mod metadata;
pub(crate) mod metrics;
pub(crate) mod mint_limit;
pub mod refusal;
pub mod server;
pub mod signals;
pub mod status;
pub mod token_cache;
pub(crate) mod write_timeout;

use std::sync::Arc;
use std::time::Duration;

use account::{Account, AccountLimits};
use gateway::Gateway;
use invocation::{CurrentInvocation, Invocation};
use metrics::Metrics;
use mint_limit::MintLimiter;
use token_cache::CachePolicy;

use crate::config::{Config, Limits, TokenEndpoints, VertexGateway};
use crate::google::federation::{AwsIdentity, CredentialConfig, Federation};
use crate::google::iam_credentials::{IamCredentials, Impersonation};
use crate::google::scopes::ScopeKey;
use crate::google::token::TokenClient;
use crate::store::SecretStore;

/// The broker's settings (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `VERTEX_BROKER_SECRET_ID`: one account per secret, the first is `default`.
    pub secret_ids: Vec<String>,
    /// Scopes of `/token` without `scopes=`.
    pub scopes: ScopeKey,
    /// How long a read of the secret stands before AWSCURRENT is checked again.
    pub secret_ttl: Duration,
    /// Bound on each AWS and Google call.
    pub http_timeout: Duration,
    /// When tokens are renewed and how failures back off.
    pub cache: CachePolicy,
    /// Bounds against neighbours: connections, slots, mints.
    pub limits: Limits,
    /// Central minting: the token secret the default account serves from, minting nothing
    /// (`VERTEX_BROKER_TOKEN_SECRET_ID`, alone).
    pub token_secret_id: Option<String>,
    /// Federation instead of a secret for the default account (`VERTEX_BROKER_CREDENTIAL_CONFIG`).
    pub credential_config: Option<CredentialConfig>,
    /// The AWS credentials and region federation signs with (set by the binary: Lambda's
    /// environment in the extension, aws-config's provider chain in `serve`).
    pub aws: Option<AwsIdentity>,
    /// `VERTEX_BROKER_IMPERSONATE` and its delegates, lifetime and endpoint.
    pub impersonate: Option<String>,
    /// `VERTEX_BROKER_DELEGATES`: the chain of accounts between caller and target.
    pub delegates: Vec<String>,
    /// Lifetime asked for impersonated tokens.
    pub token_lifetime: Duration,
    /// Base URL of IAM Credentials (the emulator in tests).
    pub iam_credentials_endpoint: String,
    /// `VERTEX_BROKER_PROJECT_ID`; else the served account's project.
    pub project_id: Option<String>,
    /// The Vertex gateway's endpoint, deadline, retries and body limit.
    pub vertex: VertexGateway,
    /// What the metadata token and identity endpoints hand out (`VERTEX_BROKER_TOKEN_ENDPOINTS`).
    pub token_endpoints: TokenEndpoints,
    /// CloudWatch namespace; `None` turns metrics off.
    pub metrics_namespace: Option<String>,
    /// Whether gateway calls write audit lines.
    pub audit: bool,
    /// The `FunctionName` metrics dimension: Lambda's function name, else `vertex-broker`.
    pub function_name: String,
}

impl BrokerSettings {
    /// Settings for the keys in `secret_ids`, everything else at its default.
    pub fn for_secrets(secret_ids: Vec<String>) -> Self {
        let mut settings = Self::from(&Config::from_lookup(|_| None).expect("the defaults are valid"));
        settings.secret_ids = secret_ids;
        settings
    }
}

impl From<&Config> for BrokerSettings {
    fn from(c: &Config) -> Self {
        Self {
            credential_config: c.credential_config.clone(),
            token_secret_id: c.token_secret_id.clone(),
            aws: None,
            impersonate: c.impersonate.clone(),
            delegates: c.delegates.clone(),
            token_lifetime: c.token_lifetime,
            iam_credentials_endpoint: c.iam_credentials_endpoint.clone(),
            project_id: c.project_id.clone(),
            vertex: c.vertex.clone(),
            token_endpoints: c.token_endpoints,
            metrics_namespace: c.metrics_namespace.clone(),
            audit: c.audit,
            function_name: c.function_name.clone().unwrap_or_else(|| "vertex-broker".to_string()),
            secret_ids: c.secret_ids.clone(),
            scopes: c.scopes.clone(),
            secret_ttl: c.secret_ttl,
            http_timeout: c.http_timeout,
            cache: CachePolicy::default(),
            limits: c.limits,
        }
    }
}

/// The broker's configuration cannot work.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No secret and no federation configuration.
    #[error(transparent)]
    NoSource(#[from] crate::config::NoSource),
    #[error(
        "VERTEX_BROKER_CREDENTIAL_CONFIG needs AWS credentials and a region to sign with: \
         AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (Lambda sets them), or a profile, \
         container or instance role in `serve`"
    )]
    /// Federation without AWS credentials to sign with.
    NoAwsCredentials,
    /// A token secret beside a key or federation: the broker either mints or reads.
    #[error(
        "VERTEX_BROKER_TOKEN_SECRET_ID is set beside VERTEX_BROKER_SECRET_ID or VERTEX_BROKER_CREDENTIAL_CONFIG: \
         a broker either reads the minter's tokens (central minting: set only the first) or mints its own (unset it); \
         the minter itself takes both"
    )]
    TwoSources,
}

/// What an INVOKE event's work came to within its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeWork {
    /// Nothing was due.
    Nothing,
    /// Everything due finished within the budget.
    Done,
    /// Still running in the background after the budget.
    Continuing,
}

/// Every account the broker serves, the first being `default`.
pub struct Broker {
    accounts: Vec<Arc<Account>>,
    /// Scopes of `/token` without `scopes=`.
    default_scopes: ScopeKey,
    limits: Limits,
    /// `VERTEX_BROKER_PROJECT_ID`.
    project_id: Option<String>,
    started: std::time::Instant,
    gateway: Gateway,
    metrics: Arc<Metrics>,
    invocation: CurrentInvocation,
    token_endpoints: TokenEndpoints,
    audit: bool,
}

impl Broker {
    /// The broker for `settings`, reading keys from `store`; fails on settings that cannot work.
    pub fn new(settings: &BrokerSettings, store: Arc<dyn SecretStore>) -> Result<Self, BrokerError> {
        crate::config::check_source(
            &settings.secret_ids,
            settings.credential_config.as_ref(),
            settings.token_secret_id.as_deref(),
        )?;
        if settings.token_secret_id.is_some()
            && (!settings.secret_ids.is_empty() || settings.credential_config.is_some())
        {
            return Err(BrokerError::TwoSources);
        }
        let default_scopes = settings.scopes.clone();
        // One token client, one IAM Credentials client and one mint limiter for every account:
        // TLS roots load once, connections are shared, and Google quota is bounded for the
        // broker as a whole.
        let tokens = TokenClient::new(settings.http_timeout);
        let iam = IamCredentials::new(settings.http_timeout);
        let impersonation = settings.impersonate.as_ref().map(|target| {
            Impersonation::new(
                &settings.iam_credentials_endpoint,
                target,
                settings.delegates.clone(),
                settings.token_lifetime,
            )
        });
        let config_impersonation = settings.credential_config.as_ref().and_then(|config| {
            let (url, target) = config.service_account_impersonation_url.as_ref().zip(config.impersonated_account())?;
            Some(Impersonation {
                target: target.to_string(),
                delegates: Vec::new(),
                lifetime: config.lifetime().unwrap_or(settings.token_lifetime),
                url: url.clone(),
            })
        });
        // Tokens shorter than an hour are refreshed proportionally earlier.
        let lifetime = impersonation.as_ref().or(config_impersonation.as_ref()).map(|i| i.lifetime);
        let metrics = Arc::new(Metrics::new(settings.metrics_namespace.clone(), settings.function_name.clone()));
        let limits = AccountLimits {
            policy: lifetime.map_or(settings.cache, |l| settings.cache.for_lifetime(l)),
            max_slots: settings.limits.max_slots,
            default_scopes: default_scopes.clone(),
            limiter: Arc::new(MintLimiter::new(settings.limits.max_mints, settings.limits.mint_rate)),
        };
        let mut accounts: Vec<Account> = Vec::new();
        if let Some(id) = &settings.token_secret_id {
            // Central minting: the minter impersonates; this account only reads what it wrote.
            let account = Account::stored(id.clone(), store.clone(), &limits, metrics.clone());
            return Ok(Self::with_accounts(settings, vec![account], default_scopes, metrics));
        }
        if let Some(config) = &settings.credential_config {
            let aws = settings.aws.clone().ok_or(BrokerError::NoAwsCredentials)?;
            let federation = Federation::new(config.clone(), aws, settings.http_timeout);
            accounts.push(Account::federated(federation, config_impersonation, iam.clone(), &limits, metrics.clone()));
        }
        for id in &settings.secret_ids {
            let (store, tokens) = (store.clone(), tokens.clone());
            accounts.push(Account::rotated_key(
                id.clone(),
                store,
                tokens,
                settings.secret_ttl,
                &limits,
                metrics.clone(),
            ));
        }
        // VERTEX_BROKER_IMPERSONATE applies to the default account.
        if let Some(i) = impersonation {
            let first = accounts.remove(0).impersonating(i, iam);
            accounts.insert(0, first);
        }
        Ok(Self::with_accounts(settings, accounts, default_scopes, metrics))
    }

    fn with_accounts(
        settings: &BrokerSettings,
        accounts: Vec<Account>,
        default_scopes: ScopeKey,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            accounts: accounts.into_iter().map(Arc::new).collect(),
            default_scopes,
            limits: settings.limits,
            project_id: settings.project_id.clone(),
            started: std::time::Instant::now(),
            gateway: Gateway::new(settings.vertex.clone(), settings.http_timeout),
            metrics,
            invocation: CurrentInvocation::default(),
            token_endpoints: settings.token_endpoints,
            audit: settings.audit,
        }
    }

    /// Every served account, `default` first.
    pub fn accounts(&self) -> &[Arc<Account>] {
        &self.accounts
    }

    /// Scopes of `/token` without `scopes=`.
    pub fn default_scopes(&self) -> &ScopeKey {
        &self.default_scopes
    }

    /// The bounds it keeps against its neighbours.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The configured project id, if any (else the served account's project is answered).
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// The Vertex gateway's settings and client.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Its metrics, flushed as EMF.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the metadata token and identity endpoints hand out (`VERTEX_BROKER_TOKEN_ENDPOINTS`).
    pub fn token_endpoints(&self) -> TokenEndpoints {
        self.token_endpoints
    }

    /// Whether gateway calls write audit lines.
    pub fn audit(&self) -> bool {
        self.audit
    }

    /// The Lambda invocation running now, if any.
    pub fn invocation(&self) -> Option<Invocation> {
        self.invocation.get()
    }

    /// An INVOKE event began: its request id and deadline (ms since the epoch).
    pub fn begin_invocation(&self, request_id: &str, deadline_ms: u64) {
        self.invocation.begin(request_id, deadline_ms);
    }

    /// Time since it started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Loads every key and mints the default-scope token, so the first request is a cache hit.
    pub async fn warm_up(&self) {
        let mut set = tokio::task::JoinSet::new();
        for a in &self.accounts {
            let (a, key) = (a.clone(), self.default_scopes.clone());
            set.spawn(async move {
                if a.prepare().await {
                    let _ = a.access_token(&key).await;
                }
            });
        }
        set.join_all().await;
    }

    /// An INVOKE event's work: starts the secret re-checks and token renewals that are due (they
    /// overlap the function's own run) and waits for them at most `budget`; what is left goes on
    /// in the background, and whatever it renews stays servable meanwhile. Returns at once when
    /// nothing is due.
    pub async fn on_invoke(&self, budget: Duration) -> InvokeWork {
        let work: Vec<_> = self.accounts.iter().filter_map(|a| a.start_due_work()).collect();
        if work.is_empty() {
            return InvokeWork::Nothing;
        }
        let all = async {
            for w in work {
                let _ = w.await;
            }
        };
        match tokio::time::timeout(budget, all).await {
            Ok(()) => InvokeWork::Done,
            Err(_) => InvokeWork::Continuing,
        }
    }

    /// Re-reads every account's secret now (SIGHUP), whatever SECRET_TTL says.
    pub async fn reload_all(&self) {
        let mut set = tokio::task::JoinSet::new();
        for a in &self.accounts {
            let a = a.clone();
            set.spawn(async move { a.reload().await });
        }
        let loaded = set.join_all().await.into_iter().filter(|ok| *ok).count();
        tracing::info!(loaded, accounts = self.accounts.len(), "re-read the secrets (SIGHUP)");
    }

    /// `default`, or an account by its email (loading keys first if needed).
    pub async fn account(&self, name: &str) -> Option<Arc<Account>> {
        if name == "default" {
            return self.accounts.first().cloned();
        }
        if let Some(a) = self.accounts.iter().find(|a| a.email().as_deref() == Some(name)) {
            return Some(a.clone());
        }
        for a in self.accounts.iter().filter(|a| a.email().is_none()) {
            a.prepare().await;
        }
        self.accounts.iter().find(|a| a.email().as_deref() == Some(name)).cloned()
    }
}
