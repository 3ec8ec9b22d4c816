//! The request body on its way to Vertex: [`Upload`] carries the caller's body as it arrives
//! (counting it against the size limit, and keeping a copy within the broker-wide budget of
//! [`super::held`] so that a 429 can be retried), and [`Attempt`] is what each attempt sends
//! (the streamed body, or the held copy). The answer comes back through [`super::download`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::held::{Budget, Held, HeldBytes};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body as each attempt sends it: streamed the first time (with a copy kept for
/// retries within the budget), or held whole.
pub enum Outgoing {
    /// Streamed up as it arrives.
    Streamed {
        /// The first attempt's body, until it is sent.
        first: Option<Upload>,
        /// The copy for retries.
        state: UploadState,
    },
    /// Read whole already.
    Held(HeldBytes),
}

impl Outgoing {
    /// The body for the next attempt; `None` if it cannot be sent again.
    pub fn attempt(&mut self) -> Option<Attempt> {
        match self {
            Self::Streamed { first, state } => {
                first.take().map(Attempt::Streamed).or_else(|| state.replay().map(Attempt::whole))
            }
            Self::Held(held) => Some(Attempt::whole(held.bytes().clone())),
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

/// One attempt's request body: the caller's, streamed, or bytes held whole (a retry, a body
/// read first). Empty once sent.
pub enum Attempt {
    /// The caller's body, as it arrives.
    Streamed(Upload),
    /// Bytes held whole; `None` once sent.
    Whole(Option<Bytes>),
}

impl Attempt {
    fn whole(bytes: Bytes) -> Self {
        Self::Whole(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl Body for Attempt {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Streamed(upload) => Pin::new(upload).poll_frame(cx),
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed(upload) => upload.is_end_stream(),
            Self::Whole(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(upload) => upload.size_hint(),
            Self::Whole(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// The copy of a request body kept for a retry.
enum Copy {
    /// Being read.
    Keeping(Held),
    /// Read to its end: every retry sends these bytes.
    Whole(HeldBytes),
    /// Not kept: the budget could not hold it.
    Dropped,
}

/// What the gateway keeps of a streamed request body.
struct Replay {
    copy: Copy,
    complete: bool,
    too_large: bool,
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
    /// Trailers that came behind data sent first.
    stashed: Option<Frame<Bytes>>,
}

/// What the gateway knows of the request body after an attempt.
#[derive(Clone)]
pub struct UploadState(Arc<Mutex<Replay>>);

impl Upload {
    pub fn new(inner: Incoming, limit: usize, budget: Budget) -> (Self, UploadState) {
        let replay = Arc::new(Mutex::new(Replay {
            copy: Copy::Keeping(Held::new(budget)),
            // An empty body is never polled.
            complete: inner.is_end_stream(),
            too_large: false,
        }));
        (Self { inner, seen: 0, limit, replay: replay.clone(), stashed: None }, UploadState(replay))
    }
}

impl UploadState {
    /// The whole body again, if it was read to its end and kept.
    pub fn replay(&self) -> Option<Bytes> {
        let mut r = crate::lock(&self.0);
        if !r.complete {
            return None;
        }
        if let Copy::Keeping(_) = r.copy {
            let Copy::Keeping(held) = std::mem::replace(&mut r.copy, Copy::Dropped) else { unreachable!() };
            r.copy = Copy::Whole(held.freeze());
        }
        match &r.copy {
            Copy::Whole(bytes) => Some(bytes.bytes().clone()),
            _ => None,
        }
    }

    /// Whether [`Self::replay`] would give the body.
    pub fn replayable(&self) -> bool {
        let r = crate::lock(&self.0);
        r.complete && !matches!(r.copy, Copy::Dropped)
    }

    pub fn too_large(&self) -> bool {
        crate::lock(&self.0).too_large
    }
}

impl Upload {
    /// Counts `data` against the limit and keeps its copy for retries.
    fn account(&mut self, data: &[u8]) -> Result<(), TooLarge> {
        self.seen += data.len();
        let mut replay = crate::lock(&self.replay);
        if self.seen > self.limit {
            replay.too_large = true;
            return Err(TooLarge);
        }
        // Copied, not kept as the frame's own handle: that would pin the buffer the frame was
        // read into, however small the frame.
        if let Copy::Keeping(held) = &mut replay.copy {
            if !held.extend(data) {
                replay.copy = Copy::Dropped;
            }
        }
        // A body of known length ends with its last data frame: it is not polled again.
        if self.inner.is_end_stream() {
            replay.complete = true;
        }
        Ok(())
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BoxError;

    /// The next frame up: frames that are ready at once are sent as one (up to [`COALESCE`]
    /// bytes), so a body of a million one-byte chunks is not a million writes upstream.
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        if let Some(frame) = me.stashed.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let mut batch = Batch::default();
        loop {
            match Pin::new(&mut me.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Err(e) = me.account(&data) {
                            return Poll::Ready(Some(Err(Box::new(e))));
                        }
                        batch.push(data);
                        if batch.len() >= COALESCE || me.inner.is_end_stream() {
                            return Poll::Ready(batch.take());
                        }
                    }
                    Err(trailers) if batch.is_empty() => return Poll::Ready(Some(Ok(trailers))),
                    Err(trailers) => {
                        me.stashed = Some(trailers);
                        return Poll::Ready(batch.take());
                    }
                },
                Poll::Ready(None) => {
                    crate::lock(&me.replay).complete = true;
                    return Poll::Ready(batch.take());
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Pending if batch.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(batch.take()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stashed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes sent upstream as one frame at most, when frames come faster than they are sent.
const COALESCE: usize = 16 * 1024;

/// Frames ready at once, becoming one: the first kept as it is, copied only when a second comes.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    more: Option<bytes::BytesMut>,
}

impl Batch {
    fn push(&mut self, data: Bytes) {
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(first), None) => {
                let mut more = bytes::BytesMut::with_capacity((first.len() + data.len()).max(1024));
                more.extend_from_slice(first);
                more.extend_from_slice(&data);
                self.more = Some(more);
            }
            (Some(_), Some(more)) => more.extend_from_slice(&data),
        }
    }

    fn len(&self) -> usize {
        self.more.as_ref().map(|m| m.len()).or(self.first.as_ref().map(Bytes::len)).unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The frame to send, if any.
    fn take(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        let data = match (self.first.take(), self.more.take()) {
            (_, Some(more)) => more.freeze(),
            (Some(first), None) => first,
            (None, None) => return None,
        };
        Some(Ok(Frame::data(data)))
    }
}
