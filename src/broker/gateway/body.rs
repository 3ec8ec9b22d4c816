//! The bodies the gateway passes through, both streamed: [`Upload`] carries the caller's request
//! to Vertex as it arrives (counting it against the size limit, and keeping a copy within a
//! broker-wide budget so that a 429 can be retried), and [`Download`] carries Vertex's answer
//! back frame by frame, reading token usage from its tail and reporting the call when it ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::report::CallReport;
use super::route::table::Dialect;
use super::usage::UsageReader;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes of request bodies the gateway may hold at once for retries, broker-wide. Beyond it a
/// call still goes through, once: nothing a neighbour sends makes the broker grow without limit.
#[derive(Clone)]
pub struct ReplayBudget {
    held: Arc<AtomicUsize>,
    max: usize,
}

impl ReplayBudget {
    pub fn new(max: usize) -> Self {
        Self { held: Arc::new(AtomicUsize::new(0)), max }
    }

    fn take(&self, n: usize) -> bool {
        self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| (h + n <= self.max).then_some(h + n)).is_ok()
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// Takes `n` bytes for as long as the returned charge lives.
    fn charge(&self, n: usize) -> Option<Charge> {
        self.take(n).then(|| Charge { n, budget: self.clone() })
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
    budget: ReplayBudget,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.n);
    }
}

/// A request body read whole before the call goes up (its `model` decides whether it may go),
/// charged to the broker-wide budget while it is held; every attempt sends it again.
pub struct HeldBody {
    bytes: Bytes,
    _charges: Vec<Charge>,
}

impl HeldBody {
    /// The body.
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

/// Reads `body` whole: at most `limit` bytes, each charged to `budget` as it arrives.
pub async fn read_whole(mut body: Incoming, limit: usize, budget: &ReplayBudget) -> Result<HeldBody, ReadError> {
    let mut bytes = BytesMut::new();
    let mut charges = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        charges.push(budget.charge(data.len()).ok_or(ReadError::Busy)?);
        bytes.extend_from_slice(&data);
    }
    Ok(HeldBody { bytes: bytes.freeze(), _charges: charges })
}

/// The request body as each attempt sends it: streamed the first time (with a copy kept for
/// retries within the budget), or held whole.
pub enum Outgoing {
    /// Streamed up as it arrives.
    Streamed {
        /// The first attempt's body, until it is sent.
        first: Option<reqwest::Body>,
        /// The copy for retries.
        state: UploadState,
    },
    /// Read whole already.
    Held(HeldBody),
}

impl Outgoing {
    /// The body for the next attempt; `None` if it cannot be sent again.
    pub fn attempt(&mut self) -> Option<reqwest::Body> {
        match self {
            Self::Streamed { first, state } => first.take().or_else(|| state.replay().map(reqwest::Body::from)),
            Self::Held(held) => Some(reqwest::Body::from(held.bytes.clone())),
        }
    }

    /// Whether a retry could send it again.
    pub fn replayable(&self) -> bool {
        match self {
            Self::Streamed { state, .. } => state.replayable(),
            Self::Held(_) => true,
        }
    }

    /// Whether the streamed body was cut off at the size limit.
    pub fn too_large(&self) -> bool {
        matches!(self, Self::Streamed { state, .. } if state.too_large())
    }
}

/// The copy of a request body kept for a retry.
struct Replay {
    chunks: Vec<Bytes>,
    held: usize,
    /// Still keeping (false once the budget ran out).
    keeping: bool,
    complete: bool,
    too_large: bool,
    budget: ReplayBudget,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// A request body over the gateway's size limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than the gateway's limit")]
pub struct TooLarge;

/// The caller's request body on its first way to Vertex.
pub struct Upload {
    inner: Incoming,
    seen: usize,
    limit: usize,
    replay: Arc<Mutex<Replay>>,
}

/// What the gateway knows of the request body after an attempt.
#[derive(Clone)]
pub struct UploadState(Arc<Mutex<Replay>>);

impl Upload {
    pub fn new(inner: Incoming, limit: usize, budget: ReplayBudget) -> (Self, UploadState) {
        let replay = Arc::new(Mutex::new(Replay {
            chunks: Vec::new(),
            held: 0,
            keeping: true,
            // An empty body is never polled.
            complete: inner.is_end_stream(),
            too_large: false,
            budget,
        }));
        (Self { inner, seen: 0, limit, replay: replay.clone() }, UploadState(replay))
    }
}

impl UploadState {
    /// The whole body again, if it was read to its end and kept.
    pub fn replay(&self) -> Option<Bytes> {
        let r = crate::lock(&self.0);
        if !(r.complete && r.keeping) {
            return None;
        }
        let mut all = BytesMut::with_capacity(r.held);
        for c in &r.chunks {
            all.extend_from_slice(c);
        }
        Some(all.freeze())
    }

    /// Whether [`Self::replay`] would give the body.
    pub fn replayable(&self) -> bool {
        let r = crate::lock(&self.0);
        r.complete && r.keeping
    }

    pub fn too_large(&self) -> bool {
        crate::lock(&self.0).too_large
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        match Pin::new(&mut me.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else { return Poll::Ready(Some(Ok(frame))) };
                me.seen += data.len();
                let mut replay = crate::lock(&me.replay);
                if me.seen > me.limit {
                    replay.too_large = true;
                    return Poll::Ready(Some(Err(Box::new(TooLarge))));
                }
                if replay.keeping {
                    if replay.budget.take(data.len()) {
                        replay.held += data.len();
                        replay.chunks.push(data.clone());
                    } else {
                        replay.keeping = false;
                        let held = std::mem::take(&mut replay.held);
                        replay.budget.give_back(held);
                        replay.chunks = Vec::new();
                    }
                }
                // A body of known length ends with its last data frame: it is not polled again.
                if me.inner.is_end_stream() {
                    replay.complete = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                crate::lock(&me.replay).complete = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Vertex's answer on its way to the caller: every frame is passed on as it comes. The call is
/// reported (audit line, metrics) when the answer ends, fails, or the caller goes away.
pub struct Download {
    inner: http_body_util::combinators::BoxBody<Bytes, BoxError>,
    usage: UsageReader,
    report: Option<CallReport>,
}

impl Download {
    pub fn new(inner: reqwest::Body, report: CallReport, dialect: Dialect) -> Self {
        Self {
            inner: inner.map_err(|e| Box::new(e) as BoxError).boxed(),
            usage: UsageReader::new(dialect),
            report: Some(report),
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        if let Some(report) = self.report.take() {
            report.finish(outcome, self.usage.usage());
        }
    }
}

impl Body for Download {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.usage.push(data);
                }
            }
            Poll::Ready(None) => self.finish("complete"),
            Poll::Ready(Some(Err(_))) => self.finish("upstream_broke_off"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        // hyper stops polling once a body says it has ended; that is a whole answer too.
        let outcome = if self.inner.is_end_stream() { "complete" } else { "caller_went_away" };
        self.finish(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_budget_is_shared_and_given_back() {
        let budget = ReplayBudget::new(10);
        assert!(budget.take(6));
        assert!(!budget.take(6), "over the broker-wide budget");
        assert!(budget.take(4));
        budget.give_back(10);
        assert_eq!(budget.held(), 0);
        let charge = budget.charge(7).unwrap();
        assert!(budget.charge(4).is_none());
        drop(charge);
        assert_eq!(budget.held(), 0, "a charge is given back when dropped");
    }
}
