//! The one retry schedule the crate uses (Google IAM calls, token mints, key propagation, the
//! Vertex gateway): backon's exponential backoff, doubling from a first delay up to a cap, with
//! jitter so that many callers retrying together spread out.

use std::time::Duration;

use backon::ExponentialBuilder;

/// How often and how fast to retry a retryable failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first wait.
    pub first_delay: Duration,
    /// The longest wait; waits double up to it.
    pub max_delay: Duration,
    /// Retries after the first attempt (`usize::MAX`: until a deadline the caller keeps).
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(4), max_retries: 4 }
    }
}

impl RetryPolicy {
    /// The delays: `first_delay` doubling up to `max_delay`, each plus up to as much again at
    /// random, at most `max_retries` of them.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_count() {
        let policy =
            RetryPolicy { first_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1), max_retries: 5 };
        let delays: Vec<Duration> = policy.backoff().build().collect();
        assert_eq!(delays.len(), 5);
        for (i, d) in delays.iter().enumerate() {
            let base = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(1));
            assert!(*d >= base && *d <= base * 2, "delay {i}: {d:?} outside [{base:?}, 2×{base:?}]");
        }
    }
}
