//! Vertex's answer on its way back to the caller, frame by frame: token usage read as it
//! passes, an echoed bearer token masked, the call's deadline kept, and the call reported when
//! the answer ends, fails, or the caller goes away.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::redact::Redactor;
use super::report::CallReport;
use super::route::table::Dialect;
use super::usage::UsageReader;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Vertex's answer on its way to the caller: every frame is passed on as it comes, the bearer
/// token masked if the answer echoes it. The call is reported (audit line, metrics) when the
/// answer ends, fails, or the caller goes away.
pub struct Download {
    inner: Incoming,
    usage: UsageReader,
    redactor: Redactor,
    report: Option<CallReport>,
    /// The upstream's body has ended (and what the redactor held is passed on).
    ended: bool,
    /// The call's deadline covers its answer too: a stream still going then is cut.
    deadline: tokio::time::Instant,
    /// Armed at the deadline once the answer keeps the call waiting.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Download {
    pub fn new(
        inner: Incoming,
        report: CallReport,
        dialect: Dialect,
        redactor: Redactor,
        deadline: tokio::time::Instant,
    ) -> Self {
        Self {
            inner,
            usage: UsageReader::new(dialect),
            redactor,
            report: Some(report),
            ended: false,
            deadline,
            timer: None,
        }
    }

    /// Vertex's answer has ended: the call is reported complete; what the redactor held back
    /// is still to be passed on.
    fn end(&mut self) -> Bytes {
        self.ended = true;
        let rest = self.redactor.finish();
        self.finish("complete");
        rest
    }

    fn finish(&mut self, outcome: &'static str) {
        if let Some(mut report) = self.report.take() {
            report.token_echoes = self.redactor.found;
            report.finish(outcome, self.usage.usage());
        }
    }
}

impl Body for Download {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            // The timer is armed only while the answer keeps the call waiting: one that is ready
            // whole costs none.
            let passed = match polled {
                Poll::Pending => {
                    let deadline = self.deadline;
                    self.timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                }
                Poll::Ready(_) => tokio::time::Instant::now() >= self.deadline,
            };
            if passed {
                self.finish("deadline_passed");
                return Poll::Ready(Some(Err("the call's deadline passed before Vertex's answer ended".into())));
            }
            match std::task::ready!(polled) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.usage.push(&data);
                        let mut out = self.redactor.chunk(data);
                        if self.inner.is_end_stream() {
                            // The last frame of a sized answer: the call is reported before
                            // it is written, so the caller's wake-up is the last thing the
                            // call does (hyper may drop the body without polling it again).
                            let rest = self.end();
                            if !rest.is_empty() {
                                out = [out, rest].concat().into();
                            }
                            if out.is_empty() {
                                return Poll::Ready(None);
                            }
                        }
                        // All of it held back (it may begin the token): wait for the next chunk.
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                None => {
                    let rest = self.end();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
                Some(Err(e)) => {
                    self.finish("upstream_broke_off");
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        // hyper stops polling once a body says it has ended; that is a whole answer too.
        let outcome = if self.ended || self.inner.is_end_stream() { "complete" } else { "caller_went_away" };
        self.finish(outcome);
    }
}
