//! Per-second quotas on the token endpoints (Google STS, the OAuth token endpoint), as Google
//! enforces per project: beyond the quota a call is answered 429 with a `RESOURCE_EXHAUSTED`
//! body and counted, so that tests can show what a fleet does to Google.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::google_error::ApiError;

/// One endpoint's quota and its current one-second window.
#[derive(Debug, Clone)]
struct Window {
    per_second: u32,
    started: Instant,
    used: u32,
    refused: u64,
}

/// Every endpoint's quota.
#[derive(Debug, Default)]
pub struct Quotas {
    windows: HashMap<String, Window>,
}

impl Quotas {
    /// Allows `endpoint` at most `per_second` calls in any one-second window from now.
    pub fn set(&mut self, endpoint: &str, per_second: u32) {
        let window = Window { per_second, started: Instant::now(), used: 0, refused: 0 };
        self.windows.insert(endpoint.to_string(), window);
    }

    /// Takes one call of `endpoint` from its quota; the error to answer when none is left.
    pub fn take(&mut self, endpoint: &str) -> Result<(), ApiError> {
        let Some(w) = self.windows.get_mut(endpoint) else { return Ok(()) };
        if w.started.elapsed() >= Duration::from_secs(1) {
            (w.started, w.used) = (Instant::now(), 0);
        }
        if w.used < w.per_second {
            w.used += 1;
            return Ok(());
        }
        w.refused += 1;
        let metric = match endpoint {
            "sts" => "Exchange token requests (non-workforce identity federation)",
            _ => "Token requests",
        };
        Err(ApiError::new(
            429,
            "RESOURCE_EXHAUSTED",
            format!("Quota exceeded for quota metric '{metric}' and limit '{metric} per second'."),
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {"quota_limit_value": w.per_second.to_string()}
        })))
    }

    /// How many calls of `endpoint` its quota refused.
    pub fn refused(&self, endpoint: &str) -> u64 {
        self.windows.get(endpoint).map_or(0, |w| w.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_quota_within_a_second_and_counts_it() {
        let mut q = Quotas::default();
        assert!(q.take("sts").is_ok(), "no quota set: no limit");
        q.set("sts", 2);
        assert!(q.take("sts").is_ok() && q.take("sts").is_ok());
        let e = q.take("sts").unwrap_err();
        assert_eq!((e.code, e.status), (429, "RESOURCE_EXHAUSTED"));
        assert_eq!(q.refused("sts"), 1);
        q.windows.get_mut("sts").unwrap().started -= Duration::from_secs(1);
        assert!(q.take("sts").is_ok(), "a new second, a new quota");
    }
}
