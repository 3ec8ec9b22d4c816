//! The Lambda invocation running now, as the extension learns it from INVOKE: its request id
//! (for audit lines) and its deadline (the gateway retries only while it leaves time).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// One invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub deadline: Instant,
}

/// The current invocation; none outside Lambda and before the first INVOKE.
#[derive(Default)]
pub struct CurrentInvocation(Mutex<Option<Invocation>>);

impl CurrentInvocation {
    /// An INVOKE arrived: `deadline_ms` is Lambda's, milliseconds since the Unix epoch.
    pub fn begin(&self, request_id: &str, deadline_ms: u64) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let deadline = Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        // Request ids are UUIDs; anything else is cut so a log line stays bounded.
        let request_id = request_id.chars().take(64).collect();
        *crate::lock(&self.0) = Some(Invocation { request_id, deadline });
    }

    pub fn get(&self) -> Option<Invocation> {
        crate::lock(&self.0).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_read_from_wall_clock_milliseconds() {
        let current = CurrentInvocation::default();
        assert_eq!(current.get(), None);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        current.begin("req-1", now_ms + 3000);
        let i = current.get().unwrap();
        assert_eq!(i.request_id, "req-1");
        let left = i.deadline - Instant::now();
        assert!(left <= Duration::from_secs(3) && left > Duration::from_millis(2500), "{left:?}");
        current.begin("req-2", now_ms - 10);
        assert!(current.get().unwrap().deadline <= Instant::now(), "a past deadline leaves no time");
    }
}
