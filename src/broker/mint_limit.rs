//! `MintLimiter`: how much Google quota the broker's neighbours can make it spend. Two caps, shared
//! by every account: mints in flight at once, and first mints per second (a token bucket that
//! holds one second's worth). A first mint is one for a scope set or audience that holds no token
//! yet: that is what a neighbour inventing names can multiply. Renewing a token already held is
//! bounded by the slot cap and the refresh window instead, so a flood of new names cannot starve
//! the renewals that keep working clients served.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A mint was refused because a limit was reached (answered 429 with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error("{max} token mints are already in flight to Google (VERTEX_BROKER_MAX_MINTS={max})")]
    InFlight { max: usize },
    #[error("new scope sets and audiences are minted at most {rate} per second (VERTEX_BROKER_MINT_RATE={rate})")]
    Rate { rate: u32, retry_after: u64 },
}

impl Limited {
    /// Seconds to wait before asking again.
    pub fn retry_after(&self) -> u64 {
        match self {
            Limited::InFlight { .. } => 1,
            Limited::Rate { retry_after, .. } => *retry_after,
        }
    }
}

/// Leave to mint; the in-flight place is given back when it is dropped.
pub struct MintPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// Whether a mint is a first mint (counted against the per-second rate) or a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintKind {
    First,
    Renewal,
}

pub struct MintLimiter {
    in_flight: Arc<Semaphore>,
    max: usize,
    rate: u32,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl MintLimiter {
    pub fn new(max_in_flight: usize, rate_per_second: u32) -> Self {
        let (max, rate) = (max_in_flight.max(1), rate_per_second.max(1));
        Self {
            in_flight: Arc::new(Semaphore::new(max)),
            max,
            rate,
            bucket: Mutex::new(Bucket { tokens: rate as f64, at: Instant::now() }),
        }
    }

    /// Leave to mint now, or why not: for a client waiting on the answer.
    pub fn try_admit(&self, kind: MintKind) -> Result<MintPermit, Limited> {
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| Limited::InFlight { max: self.max })?;
        if kind == MintKind::First {
            self.take_rate_token().map_err(|wait| Limited::Rate {
                rate: self.rate,
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            })?;
        }
        Ok(MintPermit(permit))
    }

    /// Leave to mint, waiting for it: for the broker's own background work.
    pub async fn admit(&self, kind: MintKind) -> MintPermit {
        let permit = self.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        if kind == MintKind::First {
            while let Err(wait) = self.take_rate_token() {
                tokio::time::sleep(wait).await;
            }
        }
        MintPermit(permit)
    }

    /// Takes one token from the bucket, or says how long until one is there.
    fn take_rate_token(&self) -> Result<(), Duration> {
        let mut bucket = crate::lock(&self.bucket);
        let now = Instant::now();
        let rate = self.rate as f64;
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_mints_are_held_to_the_rate_renewals_only_to_the_in_flight_cap() {
        let limiter = MintLimiter::new(100, 5);
        let admitted = (0..20).filter_map(|_| limiter.try_admit(MintKind::First).ok()).count();
        assert_eq!(admitted, 5, "one second's worth at once");
        match limiter.try_admit(MintKind::First) {
            Err(Limited::Rate { rate: 5, retry_after: 1 }) => {}
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("admitted past the rate"),
        }
        assert!(limiter.try_admit(MintKind::Renewal).is_ok(), "renewals do not take from the bucket");
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!((0..20).filter_map(|_| limiter.try_admit(MintKind::First).ok()).count(), 2, "refilled 2 in 0.4 s");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..20).filter_map(|_| limiter.try_admit(MintKind::First).ok()).count(), 5, "never more than 1 s");
    }

    #[tokio::test(start_paused = true)]
    async fn the_in_flight_cap_refuses_clients_and_queues_background_work() {
        let limiter = Arc::new(MintLimiter::new(2, 100));
        let a = limiter.try_admit(MintKind::Renewal).unwrap();
        let _b = limiter.try_admit(MintKind::First).unwrap();
        let refused = limiter.try_admit(MintKind::Renewal).err().unwrap();
        assert_eq!(refused, Limited::InFlight { max: 2 });
        assert!(refused.to_string().contains("VERTEX_BROKER_MAX_MINTS=2"), "{refused}");
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.admit(MintKind::Renewal).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        waiting.await.unwrap();
    }
}
