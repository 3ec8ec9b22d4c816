//! `Account`: one account the broker serves: its token source (a type per source, behind
//! [`source`]), optional impersonation on top, and its books: the access-token and ID-token
//! caches and counters. Every source shares the caches' rules: refresh ahead, single-flight,
//! backoff and outage handling.

mod books;
mod diagnosis;
mod federated;
mod impersonated;
mod mint;
mod rotated_key;
mod source;
mod stored;

pub use books::{AccountLimits, Counters};
pub use diagnosis::{diagnose, Diagnosis, GoogleCall};
pub use mint::MintError;
pub use rotated_key::CurrentKey;
pub use source::Origin;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::mint_limit::{Limited, MintLimiter};
use super::token_cache::{Admission, Lookup, NoToken, Slot, TokenCache, Unavailable};
use crate::google::federation::Federation;
use crate::google::iam_credentials::{IamCredentials, Impersonation};
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::{Token, TokenClient};
use crate::store::SecretStore;
use books::Books;
use federated::Federated;
use impersonated::Impersonated;
use rotated_key::RotatedKey;
use source::Source;
use stored::StoredSource;

/// One served account: where its tokens come from, and its books.
pub struct Account {
    source: Source,
    /// `VERTEX_BROKER_IMPERSONATE`: tokens served are this account's.
    impersonated: Option<Impersonated>,
    books: Arc<Books>,
    limiter: Arc<MintLimiter>,
}

impl Account {
    /// An account whose key is read from the secret `secret_id` (re-read every `secret_ttl`).
    pub fn rotated_key(
        secret_id: String,
        store: Arc<dyn SecretStore>,
        tokens: TokenClient,
        secret_ttl: Duration,
        limits: &AccountLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let books = Books::new(secret_id.clone(), limits, metrics);
        let key = RotatedKey::new(secret_id, store, tokens, secret_ttl);
        Self::with(Source::Key(Arc::new(key)), books, limits)
    }

    /// An account whose tokens come from AWS workload identity federation (no secret), with
    /// the configuration's own impersonation, if it names one.
    pub fn federated(
        federation: Federation,
        config_impersonation: Option<Impersonation>,
        iam: IamCredentials,
        limits: &AccountLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let books = Books::new("federation".into(), limits, metrics);
        let impersonated = config_impersonation.map(|to| Impersonated::new(to, iam));
        Self::with(Source::Federation(Box::new(Federated { federation, impersonated })), books, limits)
    }

    /// An account that serves the minter's tokens from the token secret `secret_id` and mints
    /// nothing (central minting).
    pub fn stored(
        secret_id: String,
        store: Arc<dyn SecretStore>,
        limits: &AccountLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let books = Books::new(secret_id.clone(), limits, metrics);
        Self::with(Source::Stored(Arc::new(StoredSource::new(secret_id, store))), books, limits)
    }

    fn with(source: Source, books: Books, limits: &AccountLimits) -> Self {
        Self { source, impersonated: None, books: Arc::new(books), limiter: limits.limiter.clone() }
    }

    /// Serves `to`'s tokens, minted with this account's own.
    pub fn impersonating(mut self, to: Impersonation, iam: IamCredentials) -> Self {
        self.impersonated = Some(Impersonated::new(to, iam));
        self
    }

    /// Which source it has, for `doctor`.
    pub fn origin(&self) -> Origin<'_> {
        self.source.origin()
    }

    /// The account it impersonates (`VERTEX_BROKER_IMPERSONATE`), if any.
    pub fn impersonation(&self) -> Option<&Impersonation> {
        self.impersonated.as_ref().map(|i| &i.to)
    }

    /// Names the account in logs, `doctor` and the status: its secret, or its source.
    pub fn label(&self) -> &str {
        &self.books.label
    }

    /// The lifetime asked for served tokens when impersonating (outer first); `None`: tokens
    /// live as Google issues them.
    pub fn lifetime(&self) -> Option<Duration> {
        self.impersonation().map(|i| i.lifetime).or_else(|| self.source.lifetime())
    }

    /// The account whose tokens are served: the impersonated one, the key's, or the one the
    /// federation configuration impersonates. `Ok(None)`: federation without impersonation
    /// serves a federated principal, which has no email.
    pub async fn served_email(&self) -> Result<Option<String>, Unavailable> {
        match self.impersonation() {
            Some(i) => Ok(Some(i.target.clone())),
            None => self.source.load_email(&self.books).await,
        }
    }

    /// The served account's email when known without I/O (see [`Self::served_email`]).
    pub fn email(&self) -> Option<String> {
        match self.impersonation() {
            Some(i) => Some(i.target.clone()),
            None => self.source.email(),
        }
    }

    /// The served account's project: the key's own, else the project in the served account's
    /// email, else the federation pool's project number.
    pub async fn project(&self) -> Result<Option<String>, Unavailable> {
        if self.impersonated.is_none() {
            if let Origin::RotatedKey { .. } | Origin::Stored { .. } = self.origin() {
                return self.source.project(&self.books).await;
            }
        }
        let from_email = self
            .email()
            .and_then(|e| e.split_once('@')?.1.strip_suffix(".iam.gserviceaccount.com").map(str::to_string));
        match from_email {
            Some(p) => Ok(Some(p)),
            None if matches!(self.origin(), Origin::Federation { .. }) => self.source.project(&self.books).await,
            None => Ok(None),
        }
    }

    /// Ready to mint: for a key, it has been loaded.
    pub async fn prepare(&self) -> bool {
        self.source.prepare(&self.books).await
    }

    /// Re-reads the source now (SIGHUP), whatever SECRET_TTL says; whether it is usable.
    pub async fn reload(&self) -> bool {
        self.source.reload(&self.books).await
    }

    /// The rotated key, loaded if needed; `None` for other sources.
    pub async fn key(&self) -> Option<Result<Arc<CurrentKey>, Unavailable>> {
        self.source.key(&self.books).await
    }

    /// The loaded key and the last read's error; `None` for other sources.
    pub fn key_status(&self) -> Option<(Option<Arc<CurrentKey>>, Option<String>)> {
        self.source.key_status()
    }

    /// Hits, mints, errors and key reloads, for the status endpoint.
    pub fn counters(&self) -> &Counters {
        &self.books.counters
    }

    /// An access token for a scope set.
    pub async fn access_token(self: &Arc<Self>, scopes: &ScopeKey) -> Result<Token, NoToken> {
        match self.source.stored() {
            Some(stored) => self.served(stored.access_token(scopes).await),
            None => self.cached(scopes).await,
        }
    }

    /// A Google-signed ID token for `audience`.
    pub async fn id_token(self: &Arc<Self>, audience: &Audience) -> Result<Token, NoToken> {
        match self.source.stored() {
            Some(stored) => self.served(stored.id_token(audience).await),
            None => self.cached(audience).await,
        }
    }

    /// Counts a token served from the token secret as a hit.
    fn served(&self, result: Result<Token, NoToken>) -> Result<Token, NoToken> {
        if result.is_ok() {
            self.books.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The minter's tokens as last read, and the last read's error; `None` for other sources.
    pub fn stored_status(&self) -> Option<(Option<Arc<crate::minter::stored::StoredTokens>>, Option<String>)> {
        self.source.stored_status()
    }

    /// The cache hit path, with a background refresh when one is due; a miss mints in line,
    /// within the mint limits.
    async fn cached<K: SlotKey>(self: &Arc<Self>, key: &K) -> Result<Token, NoToken> {
        let cache = K::cache(&self.books);
        let (slot, admission) = match cache.lookup(key) {
            Some((slot, Lookup::Hit { token, refresh })) => {
                self.books.counters.hits.fetch_add(1, Ordering::Relaxed);
                if refresh {
                    let (me, key) = (self.clone(), key.clone());
                    tokio::spawn(async move { me.refresh(&key, &slot, Admission::Refuse).await });
                }
                self.source.reread_if_due(&self.books);
                return Ok(token);
            }
            Some((slot, Lookup::Miss)) => (slot, Admission::Refuse),
            None => cache.insert(key, &self.limiter).map_err(|e| self.limited(e))?,
        };
        cache.fill(&slot, false, admission, &self.limiter, || K::mint(self, key)).await.map_err(|e| match e {
            NoToken::Limited(l) => self.limited(l),
            other => other,
        })
    }

    /// Mints a replacement for `key`'s token (single-flight with any other mint of it).
    async fn refresh<K: SlotKey>(self: &Arc<Self>, key: &K, slot: &Slot, admission: Admission) {
        let _ = K::cache(&self.books).fill(slot, true, admission, &self.limiter, || K::mint(self, key)).await;
    }

    /// Starts this account's work for an INVOKE event (a frozen Lambda runs no timers): the
    /// source's re-read when due, then renewals of the tokens that are due, in parallel within
    /// the mint cap. `None` when nothing is due: the INVOKE costs nothing.
    pub fn start_due_work(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let reread = self.source.reread_due();
        if !reread && self.books.access.due().is_empty() && self.books.id.due().is_empty() {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            if reread {
                me.source.reread(&me.books).await; // a new key marks every token stale: due now
            }
            let mut renewals = tokio::task::JoinSet::new();
            for (key, slot) in me.books.access.due() {
                let me = me.clone();
                renewals.spawn(async move { me.refresh(&key, &slot, Admission::Wait).await });
            }
            for (key, slot) in me.books.id.due() {
                let me = me.clone();
                renewals.spawn(async move { me.refresh(&key, &slot, Admission::Wait).await });
            }
            renewals.join_all().await;
        }))
    }

    /// Slot counts, evictions and the most recently used slots of the access-token cache.
    pub fn access_cache(&self) -> &TokenCache<ScopeKey> {
        &self.books.access
    }

    /// The same for ID tokens, one slot per audience.
    pub fn id_cache(&self) -> &TokenCache<Audience> {
        &self.books.id
    }

    fn limited(&self, limited: Limited) -> NoToken {
        self.books.counters.limited.fetch_add(1, Ordering::Relaxed);
        NoToken::Limited(limited)
    }
}

/// What keys a token slot: a scope set (access tokens) or an audience (ID tokens); each has
/// its cache and its mint.
trait SlotKey: std::hash::Hash + Eq + Clone + Send + Sync + 'static {
    fn cache(books: &Books) -> &TokenCache<Self>;
    fn mint(account: &Arc<Account>, key: &Self) -> impl std::future::Future<Output = Result<Token, MintError>> + Send;
}

impl SlotKey for ScopeKey {
    fn cache(books: &Books) -> &TokenCache<Self> {
        &books.access
    }
    fn mint(account: &Arc<Account>, key: &Self) -> impl std::future::Future<Output = Result<Token, MintError>> + Send {
        account.mint_access(key)
    }
}

impl SlotKey for Audience {
    fn cache(books: &Books) -> &TokenCache<Self> {
        &books.id
    }
    fn mint(account: &Arc<Account>, key: &Self) -> impl std::future::Future<Output = Result<Token, MintError>> + Send {
        account.mint_id(key)
    }
}
