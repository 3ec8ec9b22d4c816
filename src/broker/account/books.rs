//! An account's books: its two token caches, how they are bounded, and what it counts. Its
//! token source writes to them: each Google call's outcome, and a new key, which marks every
//! cached token stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::diagnosis::{diagnose, GoogleCall};
use super::MintError;
use crate::broker::metrics::Metrics;
use crate::broker::mint_limit::MintLimiter;
use crate::broker::token_cache::{CachePolicy, TokenCache};
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::{Token, TokenError};

/// How an account's caches are bounded.
#[derive(Clone)]
pub struct AccountLimits {
    /// When tokens are renewed and how failures back off.
    pub policy: CachePolicy,
    /// Slots per cache (scope sets; audiences).
    pub max_slots: usize,
    /// The default scope set: its slot is never evicted.
    pub default_scopes: ScopeKey,
    /// First mints and mints in flight, shared by every account.
    pub limiter: Arc<MintLimiter>,
}

/// Request and upstream counters, for the status endpoint.
#[derive(Default)]
pub struct Counters {
    /// Token requests answered from the cache.
    pub hits: AtomicU64,
    /// Tokens minted at Google.
    pub mints: AtomicU64,
    /// Mints and secret reads that failed upstream.
    pub upstream_errors: AtomicU64,
    /// Times a new key was loaded from the secret.
    pub key_reloads: AtomicU64,
    /// Requests refused by a mint limit (429).
    pub limited: AtomicU64,
}

/// The caches, counters and metrics of one account.
pub(super) struct Books {
    /// Names the account in log lines: its secret, or its source.
    pub label: String,
    pub counters: Counters,
    pub metrics: Arc<Metrics>,
    /// Access tokens, one slot per scope set.
    pub access: TokenCache<ScopeKey>,
    /// ID tokens, one slot per audience.
    pub id: TokenCache<Audience>,
}

impl Books {
    pub fn new(label: String, limits: &AccountLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            label,
            counters: Counters::default(),
            metrics,
            access: TokenCache::new(limits.policy, limits.max_slots, Some(limits.default_scopes.clone())),
            id: TokenCache::new(limits.policy, limits.max_slots, None),
        }
    }

    /// A new key was loaded: tokens of the old key stay servable, new mints use the new key.
    pub fn new_key(&self) {
        self.counters.key_reloads.fetch_add(1, Ordering::Relaxed);
        self.metrics.key_reload();
        self.access.mark_stale();
        self.id.mark_stale();
    }

    /// A secret read failed.
    pub fn read_failed(&self) {
        self.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a federation or impersonation call's outcome; a failure becomes what a client may
    /// be told. `lifetime`: the impersonated lifetime asked for, if any.
    pub fn counted(
        &self,
        result: Result<Token, TokenError>,
        call: GoogleCall,
        lifetime: Option<Duration>,
    ) -> Result<Token, MintError> {
        if call == GoogleCall::Exchange {
            self.metrics.federation_exchange();
        }
        self.record(result, |e| MintError::Refused(diagnose(call, e, lifetime)))
    }

    /// Counts a mint's outcome and logs a failure in full; `explain` turns it into what a client
    /// may be told.
    pub fn record(
        &self,
        result: Result<Token, TokenError>,
        explain: impl FnOnce(&TokenError) -> MintError,
    ) -> Result<Token, MintError> {
        match result {
            Ok(token) => {
                self.counters.mints.fetch_add(1, Ordering::Relaxed);
                Ok(token)
            }
            Err(e) => {
                self.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                self.metrics.upstream_error();
                tracing::warn!(account = %self.label, error = %e, "minting a token failed");
                Err(explain(&e))
            }
        }
    }
}
