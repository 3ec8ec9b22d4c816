//! What a gateway call leaves behind: one JSON audit line on standard output (who called which
//! model how, and what it cost; never prompt or answer content, never a token) and its share of
//! the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::usage::Usage;
use crate::broker::metrics::{Metrics, VertexCallMetric};

/// The audit line of one gateway call, written as one JSON object by [`AuditLine::write`].
#[derive(Debug)]
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
    pub usage: Option<Usage>,
}

impl AuditLine<'_> {
    /// The line, camelCase members, `usage` left out when unknown. Written member by member
    /// rather than through serde's derive: a line per call, and its strings rarely need escaping.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event\":");
        json_str(out, self.event);
        for (name, value) in
            [("requestId", self.request_id), ("account", self.account), ("model", self.model), ("method", self.method)]
        {
            member(out, name);
            json_str(out, value);
        }
        member(out, "status");
        json_number(out, self.status);
        member(out, "latencyMs");
        json_number(out, self.latency_ms);
        member(out, "attempts");
        json_number(out, self.attempts);
        member(out, "outcome");
        json_str(out, self.outcome);
        if let Some(u) = self.usage {
            out.extend_from_slice(b",\"usage\":{\"promptTokenCount\":");
            json_number(out, u.prompt_token_count);
            out.extend_from_slice(b",\"candidatesTokenCount\":");
            json_number(out, u.candidates_token_count);
            out.extend_from_slice(b",\"totalTokenCount\":");
            json_number(out, u.total_token_count);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// `,"name":`
fn member(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string: copied as it is when nothing in it needs escaping, else escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A number as serde_json writes it.
fn json_number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// Everything known about a call when its answer starts; finished when the answer ends.
pub struct CallReport {
    pub metrics: Arc<Metrics>,
    pub audit: bool,
    pub request_id: String,
    pub account: String,
    pub model: String,
    pub method: &'static str,
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
                method: self.method,
                status: self.status,
                latency_ms: millis(latency),
                attempts: self.attempts,
                outcome,
                usage,
            };
            let mut json = Vec::with_capacity(384);
            line.write(&mut json);
            json.push(b'\n');
            crate::telemetry::emit_line(&json);
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
    fn the_audit_line_is_json_with_every_member_and_strings_escaped() {
        let line = |model: &str, usage| {
            let mut out = Vec::new();
            AuditLine {
                event: "vertex-broker.audit",
                request_id: "0b3f-id",
                account: "sa@p.iam.gserviceaccount.com",
                model,
                method: "generateContent",
                status: 429,
                latency_ms: 12.345,
                attempts: 3,
                outcome: "complete",
                usage,
            }
            .write(&mut out);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let usage = Usage { prompt_token_count: 2, candidates_token_count: 3, total_token_count: 5 };
        assert_eq!(
            line("gemini-2.0-flash", Some(usage)),
            serde_json::json!({
                "event": "vertex-broker.audit", "requestId": "0b3f-id", "account": "sa@p.iam.gserviceaccount.com",
                "model": "gemini-2.0-flash", "method": "generateContent", "status": 429, "latencyMs": 12.345,
                "attempts": 3, "outcome": "complete",
                "usage": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}
            })
        );
        let odd = "a\"b\\c\nd\u{1}é😀";
        let v = line(odd, None);
        assert_eq!(v["model"], odd, "quotes, backslashes, control and non-ASCII characters survive");
        assert!(v.get("usage").is_none(), "left out when unknown");
    }

    #[test]
    fn request_ids_are_uuids_and_never_repeat() {
        let ids = RequestIds::new();
        let seen: std::collections::HashSet<String> = (0..1000).map(|_| ids.next()).collect();
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().all(|id| uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)));
        assert_ne!(RequestIds::new().next(), RequestIds::new().next(), "another process starts elsewhere");
    }
}
