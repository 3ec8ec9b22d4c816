//! `TokenCache`: short-lived tokens per key (a normalized scope set, or an audience), with the
//! broker's rules: refresh ahead of expiry, never serve a token about to expire, one upstream
//! mint per key at a time (single-flight), serve the still-valid token through upstream failures,
//! and back off after failures instead of hammering Google.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::google::token::Token;

/// When to refresh and what may be served.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Refresh when a token has less than this left (in the background while it is servable).
    pub refresh_ahead: Duration,
    /// Never serve a token with less than this left.
    pub min_life: Duration,
    /// First wait after an upstream failure; doubles per failure up to `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            refresh_ahead: Duration::from_secs(600),
            min_life: Duration::from_secs(300),
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// The last upstream failure of a slot, and when minting may be tried again.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub count: u32,
    pub retry_at: Instant,
}

#[derive(Default)]
struct SlotState {
    token: Option<Token>,
    failure: Option<Failure>,
    /// Bumped by every successful mint, so waiters can tell a mint finished while they waited.
    generation: u64,
    /// Minted with a key that has since been replaced: servable, but refresh now.
    stale: bool,
}

/// One key's token and its single-flight lock.
#[derive(Default)]
pub struct Slot {
    state: Mutex<SlotState>,
    flight: tokio::sync::Mutex<()>,
}

/// What `get` decided for a request.
pub enum Lookup {
    /// A servable token; `refresh` says a background refresh is due.
    Hit { token: Token, refresh: bool },
    /// No servable token: the caller must mint (via `fill`).
    Miss,
}

/// Why no token could be served.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Unavailable {
    pub message: String,
    /// Seconds until the broker will ask Google again.
    pub retry_after: u64,
}

pub struct TokenCache<K> {
    slots: RwLock<HashMap<K, Arc<Slot>>>,
    policy: CachePolicy,
}

fn life_left(token: &Token) -> Duration {
    (token.expires_at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

impl<K: Hash + Eq + Clone> TokenCache<K> {
    pub fn new(policy: CachePolicy) -> Self {
        Self { slots: RwLock::new(HashMap::new()), policy }
    }

    /// The slot for `key`, created on first use. Lookups of existing slots share a read lock.
    pub fn slot<Q>(&self, key: &Q) -> Arc<Slot>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(slot) = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return slot.clone();
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The fast path: a servable cached token, and whether it is due for refresh.
    pub fn lookup(&self, slot: &Slot) -> Lookup {
        let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
        match &state.token {
            Some(t) if life_left(t) > self.policy.min_life => {
                let due = life_left(t) <= self.policy.refresh_ahead || state.stale;
                let backing_off = state.failure.as_ref().is_some_and(|f| f.retry_at > Instant::now());
                Lookup::Hit { token: t.clone(), refresh: due && !backing_off }
            }
            _ => Lookup::Miss,
        }
    }

    /// Mints into `slot` with at most one mint in flight: concurrent callers wait for it and
    /// share its result. `force` mints even when a fresh token is cached (after a key change).
    pub async fn fill<F, Fut, E>(&self, slot: &Slot, force: bool, mint: F) -> Result<Token, Unavailable>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
        E: std::fmt::Display,
    {
        let seen = slot.state.lock().unwrap_or_else(|p| p.into_inner()).generation;
        let _flight = slot.flight.lock().await;
        {
            let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = &state.token {
                let fresh = life_left(t) > self.policy.refresh_ahead;
                // A mint finished while we waited for the flight, or nothing asks for a new one.
                if fresh && (state.generation != seen || !force) {
                    return Ok(t.clone());
                }
            }
            if let Some(f) = &state.failure {
                if f.retry_at > Instant::now() {
                    return self.stale_or_unavailable(&state, f);
                }
            }
        }
        let result = mint().await;
        let mut state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.failure = None;
                state.stale = false;
                state.generation += 1;
                Ok(token)
            }
            Err(e) => {
                let count = state.failure.as_ref().map_or(1, |f| f.count + 1);
                let wait =
                    self.policy.backoff_first.saturating_mul(1 << (count - 1).min(16)).min(self.policy.backoff_max);
                let failure = Failure { message: e.to_string(), count, retry_at: Instant::now() + wait };
                state.failure = Some(failure.clone());
                self.stale_or_unavailable(&state, &failure)
            }
        }
    }

    /// The cached token while it is still servable, else the failure.
    fn stale_or_unavailable(&self, state: &SlotState, failure: &Failure) -> Result<Token, Unavailable> {
        match &state.token {
            Some(t) if life_left(t) > self.policy.min_life => Ok(t.clone()),
            _ => Err(Unavailable {
                message: failure.message.clone(),
                retry_after: failure.retry_at.saturating_duration_since(Instant::now()).as_secs().max(1),
            }),
        }
    }

    /// Marks every token as minted by a replaced key.
    pub fn mark_stale(&self) {
        for slot in self.slots.read().unwrap_or_else(|p| p.into_inner()).values() {
            slot.state.lock().unwrap_or_else(|p| p.into_inner()).stale = true;
        }
    }

    /// Keys whose token is missing, stale or within the refresh window.
    pub fn due(&self) -> Vec<K> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .filter(|(_, slot)| {
                let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
                state.stale || state.token.as_ref().is_none_or(|t| life_left(t) <= self.policy.refresh_ahead)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Snapshot of every slot, for the status endpoint: key, expiry, last failure.
    pub fn snapshot(&self) -> Vec<(K, Option<chrono::DateTime<Utc>>, Option<String>)> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .map(|(k, slot)| {
                let state = slot.state.lock().unwrap_or_else(|p| p.into_inner());
                (
                    k.clone(),
                    state.token.as_ref().map(|t| t.expires_at),
                    state.failure.as_ref().map(|f| f.message.clone()),
                )
            })
            .collect()
    }
}
