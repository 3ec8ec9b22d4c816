//! When a Vertex call is tried again: 429 and 503 (and a connection that failed before any
//! answer) with jittered exponential backoff, a `Retry-After` honoured as the least wait, and
//! only while the deadline leaves room for the wait plus another attempt as long as the last.

use std::time::Duration;

use backon::BackoffBuilder;
use tokio::time::Instant;

use crate::retry::RetryPolicy;

/// First backoff; each retry doubles it, plus up to as much again of jitter.
const MIN_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// A call's retry budget: attempts left and the deadline they must fit in.
pub struct Retries {
    delays: backon::ExponentialBackoff,
    deadline: Instant,
}

/// What to do after an answer that may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    After(Duration),
    /// Pass the answer on; the caller may retry after this many seconds.
    GiveUp { retry_after_s: u64 },
}

impl Retries {
    /// `retries` tries after the first, all within `deadline`.
    pub fn new(retries: u32, deadline: Instant) -> Self {
        let policy = RetryPolicy { first_delay: MIN_DELAY, max_delay: MAX_DELAY, max_retries: retries as usize };
        let delays = policy.backoff().build();
        Self { delays, deadline }
    }

    /// After a retryable answer: the wait before the next attempt, or why not. `retry_after` is
    /// the upstream's header; `last_attempt` how long that attempt took to answer (the estimate
    /// of the next one's).
    pub fn next(&mut self, retry_after: Option<Duration>, last_attempt: Duration, now: Instant) -> Decision {
        let backoff = self.delays.next();
        let wait = match (backoff, retry_after) {
            (Some(b), Some(r)) => Some(b.max(r)),
            (Some(b), None) => Some(b),
            (None, _) => None,
        };
        let suggested = retry_after.or(wait).unwrap_or(MIN_DELAY);
        let give_up = Decision::GiveUp { retry_after_s: suggested.as_secs_f64().ceil().max(1.0) as u64 };
        match wait {
            Some(wait) if now + wait + last_attempt < self.deadline => Decision::After(wait),
            _ => give_up,
        }
    }
}

/// Statuses worth another attempt: Vertex's RESOURCE_EXHAUSTED and UNAVAILABLE.
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// `Retry-After` as seconds (Google sends seconds; an HTTP date is not honoured, only bounded
/// by the backoff).
pub fn parse_retry_after(value: Option<&hyper::header::HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backs_off_with_jitter_until_the_attempts_run_out() {
        let now = Instant::now();
        let mut r = Retries::new(3, now + Duration::from_secs(60));
        let mut previous = Duration::ZERO;
        for i in 0..3 {
            let Decision::After(wait) = r.next(None, Duration::from_millis(10), now) else { panic!("attempt {i}") };
            let floor = MIN_DELAY * 2u32.pow(i);
            assert!(wait >= floor && wait < floor * 2, "retry {i}: {wait:?}");
            assert!(wait > previous / 2);
            previous = wait;
        }
        assert!(matches!(r.next(None, Duration::from_millis(10), now), Decision::GiveUp { .. }), "3 retries at most");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_the_least_wait_and_the_deadline_decides() {
        let now = Instant::now();
        let mut r = Retries::new(3, now + Duration::from_secs(5));
        assert_eq!(
            r.next(Some(Duration::from_secs(2)), Duration::from_millis(10), now),
            Decision::After(Duration::from_secs(2))
        );
        // 4 s wait + a 2 s attempt do not fit in what is left: pass the 429 on, saying when.
        assert_eq!(
            r.next(Some(Duration::from_secs(4)), Duration::from_secs(2), now),
            Decision::GiveUp { retry_after_s: 4 }
        );
        let mut near = Retries::new(3, now + Duration::from_millis(50));
        assert_eq!(near.next(None, Duration::from_millis(40), now), Decision::GiveUp { retry_after_s: 1 });
        let mut none = Retries::new(0, now + Duration::from_secs(60));
        assert!(matches!(none.next(None, Duration::ZERO, now), Decision::GiveUp { .. }), "retries off");
    }

    #[test]
    fn retry_after_header() {
        let v = |s: &'static str| hyper::header::HeaderValue::from_static(s);
        assert_eq!(parse_retry_after(Some(&v("7"))), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some(&v("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
        assert_eq!(parse_retry_after(Some(&v("999999"))), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after(None), None);
        assert!(retryable(429) && retryable(503) && !retryable(500) && !retryable(400));
    }
}
