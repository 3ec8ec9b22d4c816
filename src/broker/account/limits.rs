//! How an account's caches are bounded, and what it counts for the status endpoint.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::broker::metrics::Metrics;
use crate::broker::mint_limit::MintLimiter;
use crate::broker::token_cache::CachePolicy;

/// How an account's caches are bounded.
#[derive(Clone)]
pub struct AccountLimits {
    /// When tokens are renewed and how failures back off.
    pub policy: CachePolicy,
    /// Slots per cache (scope sets; audiences).
    pub max_slots: usize,
    /// The default scope set's key: its slot is never evicted.
    pub default_scope_key: String,
    /// Shared by every account.
    pub limiter: Arc<MintLimiter>,
    /// The broker's metrics: mints, key reloads, exchanges, upstream errors.
    pub metrics: Arc<Metrics>,
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
