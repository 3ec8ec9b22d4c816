//! The broker's bounds against its neighbours on 127.0.0.1, and how each is read.

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

/// What a neighbour on 127.0.0.1 can make the broker hold or spend. Over a limit the broker
/// answers 429 with `Retry-After` and the limit's variable; it never grows. Defaults fit a
/// 128 MB function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `VERTEX_BROKER_MAX_CONNECTIONS`: open connections; at the cap the least recently active
    /// idle one is closed to make room, and when every one is busy a newcomer gets 429.
    pub max_connections: usize,
    /// `VERTEX_BROKER_HEADER_TIMEOUT`: how long a connection may take to send a whole request
    /// head, counted from when it opens or its previous answer ends (so it also closes idle
    /// keep-alive connections).
    pub header_timeout: Duration,
    /// `VERTEX_BROKER_WRITE_TIMEOUT`: how long a connection's peer may take nothing of its
    /// answer before the connection is closed (a caller that stops reading frees its slot).
    pub write_timeout: Duration,
    /// `VERTEX_BROKER_DRAIN_TIMEOUT`: how long requests in flight may finish on SIGTERM or
    /// SHUTDOWN (in Lambda, further bounded by the SHUTDOWN deadline).
    pub drain_timeout: Duration,
    /// `VERTEX_BROKER_MAX_SLOTS`: cached scope sets per account, and audiences per account;
    /// the least recently used is evicted beyond it.
    pub max_slots: usize,
    /// `VERTEX_BROKER_MAX_MINTS`: token mints in flight to Google at once.
    pub max_mints: usize,
    /// `VERTEX_BROKER_MINT_RATE`: mints per second for tokens not yet held (new scope sets and
    /// audiences); renewing a held token is bounded by the slot cap instead.
    pub mint_rate: u32,
    /// `VERTEX_BROKER_INVOKE_BUDGET`: how long the extension lets due refreshes run on an INVOKE
    /// before it asks Lambda for the next event; the rest go on in the background.
    pub invoke_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            max_slots: 64,
            max_mints: 4,
            mint_rate: 5,
            invoke_budget: Duration::from_millis(100),
        }
    }
}

impl Limits {
    /// Each limit's variable, else its default.
    pub(super) fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_connections: vars.count("VERTEX_BROKER_MAX_CONNECTIONS", defaults.max_connections)?,
            header_timeout: vars.duration("VERTEX_BROKER_HEADER_TIMEOUT", defaults.header_timeout)?,
            write_timeout: vars.duration("VERTEX_BROKER_WRITE_TIMEOUT", defaults.write_timeout)?,
            drain_timeout: vars.duration("VERTEX_BROKER_DRAIN_TIMEOUT", defaults.drain_timeout)?,
            max_slots: vars.count("VERTEX_BROKER_MAX_SLOTS", defaults.max_slots)?,
            max_mints: vars.count("VERTEX_BROKER_MAX_MINTS", defaults.max_mints)?,
            mint_rate: vars.count("VERTEX_BROKER_MINT_RATE", defaults.mint_rate as usize)? as u32,
            invoke_budget: vars.duration("VERTEX_BROKER_INVOKE_BUDGET", defaults.invoke_budget)?,
        })
    }
}
