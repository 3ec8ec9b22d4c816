//! What the cache answers its callers: a lookup's result, why no token was served, how a mint
//! gets leave, and what the status endpoint may see of the slots.

use chrono::Utc;

use crate::broker::mint_limit::{Limited, MintPermit};
use crate::google::token::Token;

/// What `lookup` found for a request.
pub enum Lookup {
    /// A servable token; `refresh` says a background refresh is due (and none is running).
    Hit {
        /// The token to serve.
        token: Token,
        /// A background refresh is due and none is running: the caller should start one.
        refresh: bool,
    },
    /// No servable token: the caller must mint (via `fill`).
    Miss,
}

/// Upstream failed and no still-valid token can stand in.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Unavailable {
    /// Why, for the caller.
    pub message: String,
    /// Seconds until the broker will ask Google again.
    pub retry_after: u64,
}

/// Why no token was served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoToken {
    /// No servable token, and minting one failed or is backing off.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// Over the broker's mint limits.
    #[error(transparent)]
    Limited(#[from] Limited),
    /// Central minting holds no token for what was asked, and never will until the minter is
    /// configured for it.
    #[error("{0}")]
    NotMinted(String),
}

/// How a mint gets leave from the [`MintLimiter`].
pub enum Admission {
    /// A client waits for the answer: refuse at once over a limit.
    Refuse,
    /// The broker's own background work: wait for a place.
    Wait,
    /// Leave already taken (when the slot was created).
    Granted(MintPermit),
}

/// Counts for the status endpoint, cheap whatever the number of slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Slots in use.
    pub slots: usize,
    /// Holding a token that may be served.
    pub servable: usize,
    /// Whose last mint failed.
    pub failing: usize,
}

/// One slot as the status endpoint shows it.
#[derive(Debug, Clone)]
pub struct SlotView<K> {
    /// Its key (a scope set or an audience).
    pub key: K,
    /// When its token expires, if it holds one.
    pub expires_at: Option<chrono::DateTime<Utc>>,
    /// Its last upstream failure, if the last mint failed.
    pub last_error: Option<String>,
}
