//! `TokenCache`: short-lived tokens per key (a normalized scope set, or an audience), with the
//! broker's rules: refresh ahead of expiry, never serve a token about to expire, one upstream
//! mint per key at a time (single-flight), serve the still-valid token through upstream failures,
//! back off after failures instead of hammering Google, and hold at most `capacity` keys, evicting
//! the least recently used (a key refused by a limit leaves no slot behind).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::mint_limit::{Limited, MintKind, MintLimiter};
use crate::google::token::Token;

mod answers;
pub use answers::{Admission, Lookup, NoToken, SlotCounts, SlotView, Unavailable};

/// When to refresh and what may be served.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Refresh when a token has less than this left (in the background while it is servable).
    pub refresh_ahead: Duration,
    /// Never serve a token with less than this left.
    pub min_life: Duration,
    /// First wait after an upstream failure; doubles per failure up to `backoff_max`.
    pub backoff_first: Duration,
    /// The longest wait between failed mints.
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

impl CachePolicy {
    /// The policy for tokens living `lifetime`: below an hour, refresh-ahead and minimum life
    /// shrink in proportion (a 600 s token is renewed with 100 s left, never served under 50 s).
    pub fn for_lifetime(self, lifetime: Duration) -> Self {
        let hour = crate::google::token::DEFAULT_LIFETIME;
        if lifetime >= hour {
            return self;
        }
        let scale = |d: Duration| d.mul_f64(lifetime.as_secs_f64() / hour.as_secs_f64());
        Self { refresh_ahead: scale(self.refresh_ahead), min_life: scale(self.min_life), ..self }
    }
}

/// The last upstream failure of a slot, and when minting may be tried again.
#[derive(Debug, Clone)]
pub struct MintFailure {
    /// What went wrong, for the caller.
    pub message: String,
    /// Failures in a row.
    pub count: u32,
    /// No mint before then.
    pub retry_at: Instant,
}

#[derive(Default)]
struct SlotState {
    /// The token and when it expires on tokio's clock: the cache's one clock, so that tests
    /// can pause time and every expiry decision follows.
    token: Option<(Token, Instant)>,
    failure: Option<MintFailure>,
    /// Bumped by every successful mint, so waiters can tell a mint finished while they waited.
    /// Zero: never minted, so the next mint is a first mint.
    generation: u64,
    /// Minted with a key that has since been replaced: servable, but refresh now.
    stale: bool,
    /// Cache hits since the token was minted: a token nobody came back for is not renewed
    /// ahead of time (see [`TokenCache::due`]).
    hits: u64,
}

/// One key's token and its single-flight lock.
#[derive(Default)]
pub struct Slot {
    state: Mutex<SlotState>,
    flight: tokio::sync::Mutex<()>,
    /// Milliseconds since [`epoch`] of the last request for it, for eviction.
    last_used: AtomicU64,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        crate::lock(&self.state)
    }

    fn touch(&self) {
        self.last_used.store(millis(Instant::now()), Ordering::Relaxed);
    }

    /// A mint for it is in flight.
    pub fn is_minting(&self) -> bool {
        self.flight.try_lock().is_err()
    }
}

/// Tokens by key (scope set or audience), bounded, with single-flight minting and refresh-ahead.
pub struct TokenCache<K> {
    slots: RwLock<HashMap<K, Arc<Slot>>>,
    policy: CachePolicy,
    capacity: usize,
    /// Never evicted (the default scope set).
    pinned: Option<K>,
    evictions: AtomicU64,
}

/// A freshly minted token with its expiry on tokio's clock (its `expires_at` is wall time).
fn held(token: Token) -> (Token, Instant) {
    let life = (token.expires_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    (token, Instant::now() + life)
}

fn life_left(held: &(Token, Instant)) -> Duration {
    held.1.saturating_duration_since(Instant::now())
}

/// A fixed instant the broker measures elapsed times from (tokio's clock, so tests can pause it).
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

impl<K: Hash + Eq + Clone> TokenCache<K> {
    /// A cache of at most `capacity` slots; `pinned` is never evicted.
    pub fn new(policy: CachePolicy, capacity: usize, pinned: Option<K>) -> Self {
        Self { slots: RwLock::default(), policy, capacity: capacity.max(1), pinned, evictions: AtomicU64::new(0) }
    }

    /// The existing slot for `key` and what it holds; marks it used. A shared read lock.
    pub fn lookup<Q>(&self, key: &Q) -> Option<(Arc<Slot>, Lookup)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = crate::read(&self.slots).get(key)?.clone();
        slot.touch();
        let mut state = slot.state();
        let found = match &state.token {
            Some(t) if life_left(t) > self.policy.min_life => {
                let due = life_left(t) <= self.policy.refresh_ahead || state.stale;
                let backing_off = state.failure.as_ref().is_some_and(|f| f.retry_at > Instant::now());
                let token = t.0.clone();
                state.hits += 1;
                Lookup::Hit { token, refresh: due && !backing_off && !slot.is_minting() }
            }
            _ => Lookup::Miss,
        };
        drop(state);
        Some((slot, found))
    }

    /// The slot for `key`, created if missing. A new slot needs leave for its first mint, taken
    /// here so that a refused request leaves nothing behind; at capacity it replaces the least
    /// recently used slot (slots holding no token first, never the pinned one or one minting).
    pub fn insert<Q>(&self, key: &Q, limiter: &MintLimiter) -> Result<(Arc<Slot>, Admission), Limited>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut slots = crate::write(&self.slots);
        if let Some(slot) = slots.get(key) {
            slot.touch();
            return Ok((slot.clone(), Admission::Refuse));
        }
        let permit = limiter.try_admit(MintKind::First)?;
        if slots.len() >= self.capacity {
            let victim = slots
                .iter()
                .filter(|(k, s)| Some(*k) != self.pinned.as_ref() && !s.is_minting())
                .min_by_key(|(_, s)| (s.state().token.is_some(), s.last_used.load(Ordering::Relaxed)))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                slots.remove::<K>(&victim);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let slot = Arc::new(Slot::default());
        slot.touch();
        slots.insert(key.to_owned(), slot.clone());
        Ok((slot, Admission::Granted(permit)))
    }

    /// Mints into `slot` with at most one mint in flight: concurrent callers wait for it and
    /// share its result. `force` mints even when a fresh token is cached (after a key change).
    /// A refusal by the limiter is not a failure: it leaves no back-off behind.
    pub async fn fill<F, Fut, E>(
        &self,
        slot: &Slot,
        force: bool,
        admission: Admission,
        limiter: &MintLimiter,
        mint: F,
    ) -> Result<Token, NoToken>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
        E: std::fmt::Display,
    {
        let seen = slot.state().generation;
        let _flight = slot.flight.lock().await;
        let kind = {
            let state = slot.state();
            if let Some(t) = &state.token {
                let fresh = life_left(t) > self.policy.refresh_ahead;
                // A mint finished while we waited for the flight, or nothing asks for a new one.
                if fresh && (state.generation != seen || !force) {
                    return Ok(t.0.clone());
                }
            }
            if let Some(f) = &state.failure {
                if f.retry_at > Instant::now() {
                    return self.stale_or_unavailable(&state, f);
                }
            }
            if state.generation == 0 {
                MintKind::First
            } else {
                MintKind::Renewal
            }
        };
        let _permit = match admission {
            Admission::Granted(permit) => permit,
            Admission::Refuse => limiter.try_admit(kind)?,
            Admission::Wait => limiter.admit(kind).await,
        };
        let result = mint().await;
        let mut state = slot.state();
        match result {
            Ok(token) => {
                state.token = Some(held(token.clone()));
                state.failure = None;
                state.stale = false;
                state.generation += 1;
                state.hits = 0;
                Ok(token)
            }
            Err(e) => {
                let count = state.failure.as_ref().map_or(1, |f| f.count + 1);
                let wait =
                    self.policy.backoff_first.saturating_mul(1 << (count - 1).min(16)).min(self.policy.backoff_max);
                let failure = MintFailure { message: e.to_string(), count, retry_at: Instant::now() + wait };
                state.failure = Some(failure.clone());
                self.stale_or_unavailable(&state, &failure)
            }
        }
    }

    /// The cached token while it is still servable, else the failure.
    fn stale_or_unavailable(&self, state: &SlotState, failure: &MintFailure) -> Result<Token, NoToken> {
        match &state.token {
            Some(t) if life_left(t) > self.policy.min_life => Ok(t.0.clone()),
            _ => Err(NoToken::Unavailable(Unavailable {
                message: failure.message.clone(),
                retry_after: failure.retry_at.saturating_duration_since(Instant::now()).as_secs().max(1),
            })),
        }
    }

    /// Marks every token as minted by a replaced key.
    pub fn mark_stale(&self) {
        for slot in crate::read(&self.slots).values() {
            slot.state().stale = true;
        }
    }

    /// Slots worth renewing now, without anyone asking: holding a token that is stale or within
    /// the refresh window, served at least once since it was minted (so someone comes back for
    /// it), not backing off after a failure, and not being minted already. Slots that never
    /// minted are left to the requests that want them.
    pub fn due(&self) -> Vec<(K, Arc<Slot>)> {
        let now = Instant::now();
        let slots = crate::read(&self.slots);
        slots
            .iter()
            .filter(|(_, slot)| {
                let state = slot.state();
                let renew =
                    state.stale || state.token.as_ref().is_some_and(|t| life_left(t) <= self.policy.refresh_ahead);
                renew
                    && state.hits > 0
                    && state.failure.as_ref().is_none_or(|f| f.retry_at <= now)
                    && !slot.is_minting()
            })
            .map(|(k, slot)| (k.clone(), slot.clone()))
            .collect()
    }

    /// How many slots, and in what state.
    pub fn counts(&self) -> SlotCounts {
        let slots = crate::read(&self.slots);
        let mut counts = SlotCounts { slots: slots.len(), ..SlotCounts::default() };
        for slot in slots.values() {
            let state = slot.state();
            counts.servable += state.token.as_ref().is_some_and(|t| life_left(t) > self.policy.min_life) as usize;
            counts.failing += state.failure.is_some() as usize;
        }
        counts
    }

    /// How many slots were evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The `limit` most recently used slots, newest first, for the status endpoint.
    pub fn recent(&self, limit: usize) -> Vec<SlotView<K>> {
        let slots = crate::read(&self.slots);
        let mut recent: Vec<(u64, &K, &Arc<Slot>)> =
            slots.iter().map(|(k, s)| (s.last_used.load(Ordering::Relaxed), k, s)).collect();
        let limit = limit.min(recent.len());
        if limit < recent.len() {
            recent.select_nth_unstable_by(limit, |a, b| b.0.cmp(&a.0));
            recent.truncate(limit);
        }
        recent.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        recent
            .into_iter()
            .map(|(_, key, slot)| {
                let state = slot.state();
                SlotView {
                    key: key.clone(),
                    expires_at: state.token.as_ref().map(|t| t.0.expires_at),
                    last_error: state.failure.as_ref().map(|f| f.message.clone()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
