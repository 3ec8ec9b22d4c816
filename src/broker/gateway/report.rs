//! What a gateway call leaves behind: one JSON audit line on standard output (who called which
//! model how, and what it cost; never prompt or answer content, never a token) and its share of
//! the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::usage::Usage;
use crate::broker::metrics::{Metrics, VertexCallMetric};

/// The audit line of one gateway call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLine<'a> {
    /// Always `vertex-broker.audit`, to filter on in CloudWatch Logs Insights.
    pub event: &'static str,
    /// The Lambda invocation's request id (in `serve`, one the broker makes up per call).
    pub request_id: &'a str,
    /// The served account's email, or `default` when it has none (federation).
    pub account: &'a str,
    pub model: &'a str,
    /// The Vertex method (`generateContent`), or `get`.
    pub method: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub attempts: u32,
    /// `complete`, `caller_went_away`, `upstream_broke_off`, `deadline_passed` (the answer was
    /// cut at the call's deadline), or `refused` (the gateway answered itself).
    pub outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Everything known about a call when its answer starts; finished when the answer ends.
pub struct CallReport {
    pub metrics: Arc<Metrics>,
    pub audit: bool,
    pub request_id: String,
    pub account: String,
    pub model: String,
    pub method: String,
    pub status: u16,
    pub started: Instant,
    pub attempts: u32,
    pub upstream_errors: u32,
    /// Times the answer echoed the bearer token (masked before it reached the caller).
    pub token_echoes: u32,
}

impl CallReport {
    /// Writes the audit line and counts the call.
    pub fn finish(self, outcome: &str, usage: Option<Usage>) {
        let latency = self.started.elapsed();
        if self.token_echoes > 0 {
            self.metrics.token_echoes(self.token_echoes);
            tracing::warn!(
                model = %self.model,
                echoes = self.token_echoes,
                "Vertex's answer echoed the bearer token; masked before it reached the caller. Check what \
                 VERTEX_BROKER_VERTEX_ENDPOINT points at"
            );
        }
        self.metrics.vertex_call(&VertexCallMetric {
            model: &self.model,
            status: self.status,
            latency,
            attempts: self.attempts,
            upstream_errors: self.upstream_errors,
            usage,
        });
        if self.audit {
            let line = AuditLine {
                event: "vertex-broker.audit",
                request_id: &self.request_id,
                account: &self.account,
                model: &self.model,
                method: &self.method,
                status: self.status,
                latency_ms: millis(latency),
                attempts: self.attempts,
                outcome,
                usage,
            };
            let mut json = Vec::with_capacity(384);
            if serde_json::to_writer(&mut json, &line).is_ok() {
                json.push(b'\n');
                crate::telemetry::emit_line(&json);
            }
        }
    }
}

/// Request ids for calls outside a Lambda invocation: UUID-shaped, unique, from one random draw
/// per process and a counter (no system call per call).
pub struct RequestIds {
    random: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let (random, start) = uuid::Uuid::new_v4().as_u64_pair();
        Self { random, next: AtomicU64::new(start) }
    }

    /// The next call's id.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let bytes = ((u128::from(self.random) << 64) | u128::from(n)).to_be_bytes();
        let mut text = uuid::Uuid::encode_buffer();
        uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text).to_string()
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids_and_never_repeat() {
        let ids = RequestIds::new();
        let seen: std::collections::HashSet<String> = (0..1000).map(|_| ids.next()).collect();
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().all(|id| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)));
        assert_ne!(RequestIds::new().next(), RequestIds::new().next(), "another process starts elsewhere");
    }
}
