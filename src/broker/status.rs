//! `/vertex-broker/v1/status`: what is in use and how it is going, for an operator. Cheap
//! whatever the number of slots (counts, and only the few most recently used slots), and nothing
//! a neighbour could use: no token, no key id, no token endpoint, and other clients' audiences
//! cut to their origin.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::account::Origin;
use super::token_cache::{SlotView, TokenCache};
use super::Broker;
use crate::google::scopes::{Audience, ScopeKey};

/// Slots listed per cache; the rest are only counted.
pub const LISTED_SLOTS: usize = 8;

/// The status document.
pub fn report(broker: &Broker) -> String {
    let now = Utc::now();
    let accounts: Vec<Value> = broker
        .accounts()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (current, secret_error) = a.key_status().unwrap_or_default();
            let counters = a.counters();
            json!({
                "alias": if i == 0 { Some("default") } else { None },
                "source": match a.origin() {
                    Origin::RotatedKey { .. } => "rotated key",
                    Origin::Federation { .. } => "federation",
                    Origin::Stored { .. } => "central minting",
                },
                "secret_id": match a.origin() {
                    Origin::RotatedKey { secret_id } | Origin::Stored { secret_id } => Some(secret_id),
                    Origin::Federation { .. } => None,
                },
                "stored_tokens": a.stored_status().map(|(held, error)| json!({
                    "written_at": held.as_ref().map(|h| h.written_at.to_rfc3339()),
                    "least_life_left_s": held.as_ref().and_then(|h| h.least_life_left(now)),
                    "error": error,
                })),
                "email": current.as_ref().map(|c| c.key.client_email()),
                "secret_version": current.as_ref().map(|c| c.version_id.as_str()),
                "secret_error": secret_error,
                "access_tokens": cache(a.access_cache(), now, |scopes: &ScopeKey| json!(scopes)),
                "id_tokens": cache(a.id_cache(), now, |audience: &Audience| json!(redact_audience(audience.as_str()))),
                "counters": {
                    "hits": counters.hits.load(Ordering::Relaxed),
                    "mints": counters.mints.load(Ordering::Relaxed),
                    "upstream_errors": counters.upstream_errors.load(Ordering::Relaxed),
                    "key_reloads": counters.key_reloads.load(Ordering::Relaxed),
                    "limited": counters.limited.load(Ordering::Relaxed),
                },
            })
        })
        .collect();
    let l = broker.limits();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": broker.uptime().as_secs(),
        "limits": {
            "max_connections": l.max_connections,
            "header_timeout_s": l.header_timeout.as_secs_f64(),
            "max_slots": l.max_slots,
            "max_mints": l.max_mints,
            "mint_rate": l.mint_rate,
            "invoke_budget_ms": l.invoke_budget.as_millis() as u64,
        },
        "accounts": accounts,
    })
    .to_string()
}

fn cache<K: std::hash::Hash + Eq + Clone>(
    cache: &TokenCache<K>,
    now: DateTime<Utc>,
    show_key: impl Fn(&K) -> Value,
) -> Value {
    let counts = cache.counts();
    let listed: Vec<Value> = cache
        .recent(LISTED_SLOTS)
        .into_iter()
        .map(|SlotView { key, expires_at, last_error }| {
            json!({
                "key": show_key(&key),
                "token": expires_at.map(|t| json!({"expires_at": t.to_rfc3339(), "expires_in": (t - now).num_seconds()})),
                "last_error": last_error,
            })
        })
        .collect();
    json!({
        "slots": counts.slots,
        "servable": counts.servable,
        "failing": counts.failing,
        "evicted": cache.evictions(),
        "recent": listed,
    })
}

/// An audience as the status shows it: a URL's scheme and host, anything else's first
/// characters, then `…` when something was cut.
pub fn redact_audience(audience: &str) -> String {
    let kept = match audience.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            audience.len().min(scheme.len() + 3 + host.len())
        }
        None => audience.char_indices().nth(8).map_or(audience.len(), |(i, _)| i),
    };
    if kept < audience.len() {
        format!("{}…", &audience[..kept])
    } else {
        audience.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_cut_to_their_origin() {
        assert_eq!(redact_audience("https://example.run.app"), "https://example.run.app");
        assert_eq!(redact_audience("https://example.run.app/private/path?x=1"), "https://example.run.app…");
        assert_eq!(redact_audience("32555940559.apps.googleusercontent.com"), "32555940…");
        assert_eq!(redact_audience("short"), "short");
        assert_eq!(redact_audience("ééééééééééé"), "éééééééé…");
    }
}
