//! `Account`: one account the broker serves, its token [`Source`] (the AWSCURRENT key of a
//! secret, re-read when the version moves, or AWS workload identity federation), optional
//! impersonation on top, and its access-token and ID-token caches. Every source shares the
//! caches' rules: refresh ahead, single-flight, backoff and outage handling.

mod limits;
mod mint;
mod refusal;

pub use limits::{AccountLimits, Counters};
pub use mint::MintError;
pub use refusal::{explain_step, Refusal, Step};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::mint_limit::MintLimiter;
use super::token_cache::{epoch, Admission, Lookup, NoToken, Slot, TokenCache, Unavailable};
use crate::google::federation::Federation;
use crate::google::iam_credentials::{IamCredentials, Impersonation};
use crate::google::token::{Token, TokenClient};
use crate::key::ServiceAccountKey;
use crate::store::{SecretStore, AWSCURRENT};

/// While no key is loaded, how often a failed secret read may be tried again.
const NO_KEY_RETRY: Duration = Duration::from_secs(1);

/// Which cache: access tokens by scope set, or ID tokens by audience.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Access,
    Id,
}

/// The key the broker signs with, and the secret version it came from.
#[derive(Clone)]
pub struct CurrentKey {
    /// The parsed key.
    pub key: ServiceAccountKey,
    /// The AWSCURRENT version it was read from.
    pub version_id: String,
}

/// Where an account's own tokens come from.
pub enum Source {
    /// The rotated key in the secret `secret_id`.
    Key,
    /// AWS workload identity federation; with the configuration's own impersonation, if any.
    Federation {
        /// The exchange of AWS credentials for a federated token at Google STS.
        federation: Box<Federation>,
        /// The account the configuration impersonates with that token, if it names one.
        impersonation: Option<Impersonation>,
    },
}

/// The scope a caller token for impersonation carries.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A cached caller token is reused while it has at least this long left.
const CALLER_MIN_LIFE: Duration = Duration::from_secs(300);

/// One served account: where its tokens come from, and its caches of access and ID tokens.
pub struct Account {
    /// The secret holding the key (`Source::Key`); a label for other sources.
    pub secret_id: String,
    source: Source,
    /// `VERTEX_BROKER_IMPERSONATE`: tokens served are this account's.
    impersonation: Option<Impersonation>,
    iam_credentials: IamCredentials,
    /// The caller token for `impersonation` (the source's), reused while fresh.
    caller: tokio::sync::Mutex<Option<Token>>,
    /// The federated token the configuration's own impersonation is called with.
    federated: tokio::sync::Mutex<Option<Token>>,
    store: Arc<dyn SecretStore>,
    tokens: TokenClient,
    secret_ttl: Duration,
    key: RwLock<Option<Arc<CurrentKey>>>,
    /// Single-flight for secret reads.
    key_check: tokio::sync::Mutex<()>,
    /// Microseconds since `epoch()` of the last AWSCURRENT check, +1 (0: never). The one record
    /// of it, read lock-free on every request.
    last_check_us: AtomicU64,
    key_error: Mutex<Option<String>>,
    access: TokenCache<String>,
    id: TokenCache<String>,
    limiter: Arc<MintLimiter>,
    metrics: Arc<Metrics>,
    /// Hits, mints, errors and key reloads, for the status endpoint.
    pub counters: Counters,
}

impl Account {
    /// An account whose key is read from the secret `secret_id` (re-read every `secret_ttl`).
    pub fn new(
        secret_id: String,
        store: Arc<dyn SecretStore>,
        tokens: TokenClient,
        secret_ttl: Duration,
        limits: AccountLimits,
    ) -> Self {
        let AccountLimits { policy, max_slots, default_scope_key, limiter, metrics } = limits;
        Self {
            secret_id,
            source: Source::Key,
            impersonation: None,
            iam_credentials: IamCredentials::new(tokens.timeout()),
            caller: tokio::sync::Mutex::new(None),
            federated: tokio::sync::Mutex::new(None),
            store,
            tokens,
            secret_ttl,
            key: RwLock::new(None),
            key_check: tokio::sync::Mutex::new(()),
            last_check_us: AtomicU64::new(0),
            key_error: Mutex::new(None),
            access: TokenCache::new(policy, max_slots, Some(default_scope_key)),
            id: TokenCache::new(policy, max_slots, None),
            limiter,
            metrics,
            counters: Counters::default(),
        }
    }

    /// An account whose tokens come from AWS workload identity federation (no secret).
    pub fn federated(
        federation: Federation,
        config_impersonation: Option<Impersonation>,
        store: Arc<dyn SecretStore>,
        tokens: TokenClient,
        limits: AccountLimits,
    ) -> Self {
        // The store is never read: the source is not a key.
        let mut account = Self::new("federation".into(), store, tokens, Duration::MAX, limits);
        account.source = Source::Federation { federation: Box::new(federation), impersonation: config_impersonation };
        account
    }

    /// Serves `impersonation.target`'s tokens, minted with this account's own.
    pub fn impersonating(mut self, impersonation: Impersonation) -> Self {
        self.impersonation = Some(impersonation);
        self
    }

    /// Where its tokens come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The account it impersonates (`VERTEX_BROKER_IMPERSONATE`), if any.
    pub fn impersonation(&self) -> Option<&Impersonation> {
        self.impersonation.as_ref()
    }

    /// Holds a key from a secret (re-read on SECRET_TTL and SIGHUP).
    pub fn has_secret(&self) -> bool {
        matches!(self.source, Source::Key)
    }

    /// The account whose tokens are served: the impersonated one, the key's, or the one the
    /// federation configuration impersonates. `Ok(None)`: federation without impersonation
    /// serves a federated principal, which has no email.
    pub async fn served_email(self: &Arc<Self>) -> Result<Option<String>, Unavailable> {
        if let Some(i) = &self.impersonation {
            return Ok(Some(i.target.clone()));
        }
        match &self.source {
            Source::Key => Ok(Some(self.key(false).await?.key.client_email().to_string())),
            Source::Federation { impersonation, .. } => Ok(impersonation.as_ref().map(|i| i.target.clone())),
        }
    }

    /// Ready to mint: for a key, it has been loaded.
    pub async fn prepare(self: &Arc<Self>) -> bool {
        !self.has_secret() || self.key(false).await.is_ok()
    }

    /// The key in use, if one has been loaded.
    pub fn current(&self) -> Option<Arc<CurrentKey>> {
        crate::read(&self.key).clone()
    }

    /// The served account's email when known without I/O (see [`Self::served_email`]).
    pub fn email(&self) -> Option<String> {
        if let Some(i) = &self.impersonation {
            return Some(i.target.clone());
        }
        match &self.source {
            Source::Key => self.current().map(|k| k.key.client_email().to_string()),
            Source::Federation { impersonation, .. } => impersonation.as_ref().map(|i| i.target.clone()),
        }
    }

    /// Why the last secret read failed, if it did (cleared by the next good read).
    pub fn key_error(&self) -> Option<String> {
        crate::lock(&self.key_error).clone()
    }

    fn last_check(&self) -> Option<Instant> {
        match self.last_check_us.load(Ordering::Relaxed) {
            0 => None,
            at => Some(epoch() + Duration::from_micros(at - 1)),
        }
    }

    fn check_due(&self) -> bool {
        self.has_secret() && self.last_check().is_none_or(|t| t.elapsed() >= self.secret_ttl)
    }

    /// Starts a background re-check of the secret when SECRET_TTL has passed. Cheap when not.
    fn recheck_if_due(self: &Arc<Self>) {
        if self.check_due() {
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.reload(false).await;
            });
        }
    }

    /// The key to sign with: loads it on first use; re-reads it when SECRET_TTL has passed (in
    /// the background when a key is already there) or at once when `force`d (invalid_grant).
    pub async fn key(self: &Arc<Self>, force: bool) -> Result<Arc<CurrentKey>, Unavailable> {
        match self.current() {
            Some(current) if !force => {
                self.recheck_if_due();
                Ok(current)
            }
            _ => self.reload(force).await,
        }
    }

    /// Re-checks which version is AWSCURRENT (DescribeSecret) and reads it only when it moved.
    /// A failure keeps the key already loaded: Secrets Manager outages do not stop the broker.
    pub async fn reload(&self, force: bool) -> Result<Arc<CurrentKey>, Unavailable> {
        let started = Instant::now();
        let _single_flight = self.key_check.lock().await;
        match (self.last_check(), self.current()) {
            // Someone checked while we waited for the lock.
            (Some(at), Some(current)) if at >= started || (!force && at.elapsed() < self.secret_ttl) => {
                return Ok(current)
            }
            // No key yet and the last read failed moments ago: requests must not turn into a
            // flood of Secrets Manager calls, so they share that failure for a second.
            (Some(at), None) if !force && at.elapsed() < NO_KEY_RETRY => {
                let message = self.key_error().unwrap_or_else(|| "the secret is being read".into());
                return Err(Unavailable { message, retry_after: 1 });
            }
            _ => {}
        }
        let result = self.read_current().await;
        self.last_check_us.store(epoch().elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        match result {
            Ok(Some(new)) => {
                self.counters.key_reloads.fetch_add(1, Ordering::Relaxed);
                self.metrics.key_reload();
                tracing::info!(secret = %self.secret_id, version = %new.version_id, key_id = %new.key.private_key_id(), "loaded the AWSCURRENT key");
                let new = Arc::new(new);
                *crate::write(&self.key) = Some(new.clone());
                *crate::lock(&self.key_error) = None;
                // Tokens of the old key stay servable; new mints use the new key.
                self.access.mark_stale();
                self.id.mark_stale();
                Ok(new)
            }
            Ok(None) => Ok(self.current().expect("unchanged version implies a loaded key")),
            Err(message) => {
                self.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(secret = %self.secret_id, error = %message, "could not read the secret");
                *crate::lock(&self.key_error) = Some(message.clone());
                match self.current() {
                    Some(current) => Ok(current),
                    None => Err(Unavailable { message, retry_after: 1 }),
                }
            }
        }
    }

    /// The AWSCURRENT key if its version differs from the loaded one (None when unchanged).
    async fn read_current(&self) -> Result<Option<CurrentKey>, String> {
        let loaded = self.current().map(|c| c.version_id.clone());
        if let Some(loaded) = &loaded {
            let desc = self.store.describe(&self.secret_id).await.map_err(|e| e.to_string())?;
            if desc.version_with(AWSCURRENT) == Some(loaded.as_str()) {
                return Ok(None);
            }
        }
        let value = self.store.get(&self.secret_id, None, Some(AWSCURRENT)).await.map_err(|e| e.to_string())?;
        let key = ServiceAccountKey::parse(&value.value).map_err(|e| {
            format!("the AWSCURRENT value of secret {} is not a usable service-account key: {e}", self.secret_id)
        })?;
        Ok(Some(CurrentKey { key, version_id: value.version_id.clone() }))
    }

    /// An access token for a scope set given as its cache key: the normalized scopes (sorted,
    /// deduplicated) joined by single spaces, as [`crate::google::scopes::scope_key`] builds it.
    pub async fn access_token(self: &Arc<Self>, scope_key: &str) -> Result<Token, NoToken> {
        self.cached(Kind::Access, scope_key).await
    }

    /// A Google-signed ID token for `audience`.
    pub async fn id_token(self: &Arc<Self>, audience: &str) -> Result<Token, NoToken> {
        self.cached(Kind::Id, audience).await
    }

    fn cache(&self, kind: Kind) -> &TokenCache<String> {
        match kind {
            Kind::Access => &self.access,
            Kind::Id => &self.id,
        }
    }

    /// The cache hit path, with a background refresh when one is due; a miss mints in line,
    /// within the mint limits.
    async fn cached(self: &Arc<Self>, kind: Kind, key: &str) -> Result<Token, NoToken> {
        let cache = self.cache(kind);
        let (slot, admission) = match cache.lookup(key) {
            Some((slot, Lookup::Hit { token, refresh })) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                if refresh {
                    let (me, key) = (self.clone(), key.to_string());
                    tokio::spawn(async move { me.refresh(kind, &key, &slot, Admission::Refuse).await });
                }
                self.recheck_if_due();
                return Ok(token);
            }
            Some((slot, Lookup::Miss)) => (slot, Admission::Refuse),
            None => cache.insert(key, &self.limiter).map_err(|e| self.limited(e))?,
        };
        cache.fill(&slot, false, admission, &self.limiter, || self.mint_kind(kind, key)).await.map_err(|e| match e {
            NoToken::Limited(l) => self.limited(l),
            other => other,
        })
    }

    fn limited(&self, limited: super::mint_limit::Limited) -> NoToken {
        self.counters.limited.fetch_add(1, Ordering::Relaxed);
        NoToken::Limited(limited)
    }

    /// Mints a replacement for `key`'s token (single-flight with any other mint of it).
    async fn refresh(self: &Arc<Self>, kind: Kind, key: &str, slot: &Slot, admission: Admission) {
        let _ = self.cache(kind).fill(slot, true, admission, &self.limiter, || self.mint_kind(kind, key)).await;
    }

    /// Starts this account's work for an INVOKE event (a frozen Lambda runs no timers): the
    /// secret re-check when SECRET_TTL has passed, then renewals of the tokens that are due, in
    /// parallel within the mint cap. `None` when nothing is due: the INVOKE costs nothing.
    pub fn start_due_work(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let recheck = self.has_secret() && (self.current().is_none() || self.check_due());
        if !recheck && self.access.due().is_empty() && self.id.due().is_empty() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            if recheck {
                let _ = me.reload(false).await; // a new key marks every token stale: due now
            }
            let mut renewals = tokio::task::JoinSet::new();
            for kind in [Kind::Access, Kind::Id] {
                for (key, slot) in me.cache(kind).due() {
                    let me = me.clone();
                    renewals.spawn(async move { me.refresh(kind, &key, &slot, Admission::Wait).await });
                }
            }
            renewals.join_all().await;
        }))
    }

    /// Slot counts, evictions and the most recently used slots of one cache, for the status.
    pub fn access_cache(&self) -> &TokenCache<String> {
        &self.access
    }

    /// The same for ID tokens, one slot per audience.
    pub fn id_cache(&self) -> &TokenCache<String> {
        &self.id
    }
}
