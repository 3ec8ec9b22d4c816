//! The rotated key: the AWSCURRENT service-account key of a Secrets Manager secret, and the
//! tokens it signs. Re-read when SECRET_TTL has passed (DescribeSecret; the value only when the
//! version moved), at once on SIGHUP or when Google says the key is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::books::Books;
use super::diagnosis::explain;
use super::MintError;
use crate::broker::token_cache::{epoch, Unavailable};
use crate::google::scopes::ScopeKey;
use crate::google::token::{Token, TokenClient, TokenError};
use crate::key::ServiceAccountKey;
use crate::store::{SecretStore, AWSCURRENT};

/// While no key is loaded, how often a failed secret read may be tried again.
const NO_KEY_RETRY: Duration = Duration::from_secs(1);

/// The key the broker signs with, and the secret version it came from.
#[derive(Clone)]
pub struct CurrentKey {
    /// The parsed key.
    pub key: ServiceAccountKey,
    /// The AWSCURRENT version it was read from.
    pub version_id: String,
}

/// The key in one secret, as loaded, with what its last read said.
pub(super) struct RotatedKey {
    secret_id: String,
    store: Arc<dyn SecretStore>,
    tokens: TokenClient,
    /// How long a read stands before AWSCURRENT is checked again.
    ttl: Duration,
    loaded: RwLock<Option<Arc<CurrentKey>>>,
    /// Single-flight for secret reads.
    reading: tokio::sync::Mutex<()>,
    /// Microseconds since `epoch()` of the last AWSCURRENT check, +1 (0: never). The one record
    /// of it, read lock-free on every request.
    last_check_us: AtomicU64,
    error: Mutex<Option<String>>,
}

impl RotatedKey {
    /// The key of `secret_id` (not read yet), re-checked every `ttl`.
    pub fn new(secret_id: String, store: Arc<dyn SecretStore>, tokens: TokenClient, ttl: Duration) -> Self {
        Self {
            secret_id,
            store,
            tokens,
            ttl,
            loaded: RwLock::new(None),
            reading: tokio::sync::Mutex::new(()),
            last_check_us: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The key in use, if one has been loaded.
    pub fn current(&self) -> Option<Arc<CurrentKey>> {
        crate::read(&self.loaded).clone()
    }

    /// Why the last read failed, if it did (cleared by the next good read).
    pub fn error(&self) -> Option<String> {
        crate::lock(&self.error).clone()
    }

    fn last_check(&self) -> Option<Instant> {
        match self.last_check_us.load(Ordering::Relaxed) {
            0 => None,
            at => Some(epoch() + Duration::from_micros(at - 1)),
        }
    }

    /// No key yet, or SECRET_TTL has passed since the last check.
    pub fn check_due(&self) -> bool {
        self.current().is_none() || self.ttl_passed()
    }

    /// Never checked, or SECRET_TTL has passed since the last check.
    fn ttl_passed(&self) -> bool {
        self.last_check().is_none_or(|t| t.elapsed() >= self.ttl)
    }

    /// Starts a background re-check when SECRET_TTL has passed. Cheap when not.
    pub fn recheck_if_due(self: &Arc<Self>, books: &Arc<Books>) {
        if self.ttl_passed() {
            let (me, books) = (self.clone(), books.clone());
            tokio::spawn(async move {
                let _ = me.reload(false, &books).await;
            });
        }
    }

    /// The key to sign with: loads it on first use; re-reads it when SECRET_TTL has passed (in
    /// the background when a key is already there) or at once when `force`d (invalid_grant).
    pub async fn key(self: &Arc<Self>, force: bool, books: &Arc<Books>) -> Result<Arc<CurrentKey>, Unavailable> {
        match self.current() {
            Some(current) if !force => {
                self.recheck_if_due(books);
                Ok(current)
            }
            _ => self.reload(force, books).await,
        }
    }

    /// Re-checks which version is AWSCURRENT (DescribeSecret) and reads it only when it moved.
    /// A failure keeps the key already loaded: Secrets Manager outages do not stop the broker.
    pub async fn reload(&self, force: bool, books: &Books) -> Result<Arc<CurrentKey>, Unavailable> {
        let started = Instant::now();
        let _single_flight = self.reading.lock().await;
        match (self.last_check(), self.current()) {
            // Someone checked while we waited for the lock.
            (Some(at), Some(current)) if at >= started || (!force && at.elapsed() < self.ttl) => return Ok(current),
            // No key yet and the last read failed moments ago: requests must not turn into a
            // flood of Secrets Manager calls, so they share that failure for a second.
            (Some(at), None) if !force && at.elapsed() < NO_KEY_RETRY => {
                let message = self.error().unwrap_or_else(|| "the secret is being read".into());
                return Err(Unavailable { message, retry_after: 1 });
            }
            _ => {}
        }
        let result = self.read_current().await;
        self.last_check_us.store(epoch().elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
        match result {
            Ok(Some(new)) => {
                tracing::info!(secret = %self.secret_id, version = %new.version_id, key_id = %new.key.private_key_id(), "loaded the AWSCURRENT key");
                let new = Arc::new(new);
                *crate::write(&self.loaded) = Some(new.clone());
                *crate::lock(&self.error) = None;
                books.new_key();
                Ok(new)
            }
            Ok(None) => Ok(self.current().expect("unchanged version implies a loaded key")),
            Err(message) => {
                books.read_failed();
                tracing::warn!(secret = %self.secret_id, error = %message, "could not read the secret");
                *crate::lock(&self.error) = Some(message.clone());
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

    /// The key's own access token for `scopes`.
    pub async fn access_token(self: &Arc<Self>, scopes: &ScopeKey, books: &Arc<Books>) -> Result<Token, MintError> {
        let scopes = scopes.to_vec();
        self.mint(books, |key| {
            let scopes = &scopes;
            async move { self.tokens.access_token(&key, scopes).await }
        })
        .await
    }

    /// A Google-signed ID token of the key's account for `audience`.
    pub async fn id_token(self: &Arc<Self>, audience: &str, books: &Arc<Books>) -> Result<Token, MintError> {
        self.mint(books, |key| async move { self.tokens.id_token(&key, audience).await }).await
    }

    /// Mints with the current key; after `invalid_grant` (the key was rotated away) re-reads the
    /// secret at once and tries the new key. The error is what a client may be told: what failed
    /// and what to do, never a key id or an endpoint (the log line has those).
    async fn mint<F, Fut>(self: &Arc<Self>, books: &Arc<Books>, mint: F) -> Result<Token, MintError>
    where
        F: Fn(ServiceAccountKey) -> Fut,
        Fut: std::future::Future<Output = Result<Token, TokenError>>,
    {
        let current = self.key(false, books).await.map_err(MintError::NoKey)?;
        let result = match mint(current.key.clone()).await {
            Err(e) if e.is_invalid_grant() => {
                let reloaded = self.key(true, books).await.map_err(MintError::NoKey)?;
                if reloaded.version_id != current.version_id {
                    mint(reloaded.key.clone()).await
                } else {
                    Err(e)
                }
            }
            other => other,
        };
        books.record(result, |e| MintError::Google(explain(e)))
    }
}
