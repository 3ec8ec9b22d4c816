//! Request bytes the gateway holds: a retry's copy of a streamed body, or a body read whole
//! before its call goes up. Each is one coalesced buffer (a body of a million one-byte chunks is
//! one allocation, not a million handles each pinning the buffer it was read into), charged to
//! a broker-wide budget for the memory it actually takes, its capacity, and given back on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Least a held buffer grows by, so that small frames do not reallocate each time.
const MIN_GROWTH: usize = 4 * 1024;

/// Bytes of request bodies the gateway may hold at once, broker-wide. Beyond it a streamed call
/// still goes through, once, unretried: nothing a neighbour sends makes the broker grow
/// without limit.
#[derive(Clone)]
pub struct Budget {
    held: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { held: Arc::new(AtomicUsize::new(0)), max }
    }

    fn take(&self, n: usize) -> bool {
        self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| (h + n <= self.max).then_some(h + n)).is_ok()
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Bytes taken from the budget, given back on drop.
struct Charge {
    n: usize,
    budget: Budget,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// A coalesced buffer charged to the budget for its capacity.
pub struct Held {
    data: BytesMut,
    charge: Charge,
}

impl Held {
    /// An empty buffer charged to `budget`.
    pub fn new(budget: Budget) -> Self {
        Self { data: BytesMut::new(), charge: Charge { n: 0, budget } }
    }

    /// Appends `bytes` if the budget can hold the buffer's growth; `false` (and nothing kept)
    /// if it cannot.
    pub fn extend(&mut self, bytes: &[u8]) -> bool {
        let need = self.data.len() + bytes.len();
        if need > self.data.capacity() {
            let want = need.max(self.data.capacity() * 2).max(MIN_GROWTH);
            if !self.grow_charge(want) {
                return false;
            }
            self.data.reserve(want - self.data.len());
        }
        self.data.extend_from_slice(bytes);
        // `reserve` may allocate more than asked: charge what it took, as far as the budget goes.
        let capacity = self.data.capacity();
        self.grow_charge(capacity);
        true
    }

    /// Raises the charge to `to` bytes, if the budget allows.
    fn grow_charge(&mut self, to: usize) -> bool {
        let more = to.saturating_sub(self.charge.n);
        if more > 0 && !self.charge.budget.take(more) {
            return false;
        }
        self.charge.n += more;
        true
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes as one shared buffer; the charge stays with them.
    pub fn freeze(self) -> HeldBytes {
        HeldBytes { bytes: self.data.freeze(), _charge: self.charge }
    }
}

/// Held bytes, frozen: clones are free, the charge is given back when this drops.
pub struct HeldBytes {
    bytes: Bytes,
    _charge: Charge,
}

impl HeldBytes {
    /// The bytes (a clone is a reference, not a copy).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Over the gateway's size limit.
    #[error("request body larger than the gateway's limit")]
    TooLarge,
    /// The broker-wide budget for held bodies is spent (other calls hold it).
    #[error("the gateway already holds its budget of request bodies")]
    Busy,
    /// The caller's body broke off.
    #[error("the request body broke off: {0}")]
    Broken(#[from] hyper::Error),
}

/// Reads `body` whole into one buffer: at most `limit` bytes, charged to `budget` as it grows.
pub async fn read_whole(mut body: Incoming, limit: usize, budget: &Budget) -> Result<HeldBytes, ReadError> {
    let mut held = Held::new(budget.clone());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        if held.len() + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        if !held.extend(&data) {
            return Err(ReadError::Busy);
        }
    }
    Ok(held.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_frames_coalesce_and_the_charge_is_what_the_buffer_takes() {
        let budget = Budget::new(1024 * 1024);
        let mut held = Held::new(budget.clone());
        for _ in 0..100_000 {
            assert!(held.extend(b"x"));
        }
        assert_eq!(held.len(), 100_000);
        let charged = budget.held();
        assert!((100_000..=2 * 100_000 + MIN_GROWTH).contains(&charged), "charged {charged} for 100000 bytes");
        let frozen = held.freeze();
        assert_eq!(frozen.bytes().len(), 100_000);
        assert_eq!(budget.held(), charged, "the frozen bytes keep the charge");
        drop(frozen);
        assert_eq!(budget.held(), 0, "given back");
    }

    #[test]
    fn the_budget_is_shared_and_a_buffer_it_cannot_hold_keeps_nothing_more() {
        let budget = Budget::new(10 * 1024);
        let mut a = Held::new(budget.clone());
        assert!(a.extend(&[0; 6 * 1024]));
        let mut b = Held::new(budget.clone());
        assert!(!b.extend(&[0; 6 * 1024]), "over the broker-wide budget");
        assert_eq!(b.len(), 0);
        drop(a);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
