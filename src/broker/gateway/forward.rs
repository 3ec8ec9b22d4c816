//! One call on its way to Vertex and back: the request headers that go up, the attempts (again
//! after a 429 or 503 while the deadline allows, at `global` with the fall-back), and Vertex's
//! answer passed back with the headers that may be.

use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, RETRY_AFTER};
use hyper::{Request, Response, StatusCode, Uri};
use tokio::time::Instant;

use super::body::Outgoing;
use super::download::Download;
use super::error::too_large;
use super::redact::Redactor;
use super::report::CallReport;
use super::retry::{self, Decision, Retries};
use super::route::table::Dialect;
use super::route::VertexCall;
use super::upstream::describe;
use super::{Deadlines, Gateway, Refusal, ResponseBody, ATTEMPTS_HEADER, TIMEOUT_HEADER};

/// Request headers passed to Vertex, with every `anthropic-*` one (`anthropic-version`,
/// `anthropic-beta`: Claude's features); everything else (cookies, the caller's `Authorization`,
/// compression that would hide the usage counts) stays here.
const FORWARDED: [&str; 7] = [
    "content-type",
    "accept",
    "user-agent",
    "x-goog-api-client",
    "x-goog-user-project",
    "x-goog-request-params",
    "x-server-timeout",
];
/// Answer headers not passed back, with any the answer's own `Connection` names.
const NOT_RETURNED: [&str; 12] = [
    // Hop-by-hop (RFC 9110 §7.6.1) and the proxy's own (§11.7.1): they were meant for us.
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
    // Framing, which hyper sets; cookies and alternative services, which are Vertex's own.
    "content-length",
    "set-cookie",
    "alt-svc",
];

/// One gateway call on its way to Vertex.
pub(super) struct Call<'a> {
    pub(super) gateway: &'a Gateway,
    pub(super) route: &'a VertexCall,
    pub(super) parts: &'a hyper::http::request::Parts,
    /// `Bearer {token}`, marked sensitive.
    pub(super) authorization: &'a HeaderValue,
    pub(super) deadlines: Deadlines,
    pub(super) arrived: Instant,
}

impl Call<'_> {
    /// Sends the call, and again after a retryable answer while the deadline allows: Vertex's
    /// answer to pass on (with the `Retry-After` to add, if any), or the gateway's own error.
    pub(super) async fn forward(
        &self,
        mut upload: Outgoing,
        report: &mut CallReport,
    ) -> Result<(Response<Incoming>, Option<u64>), Refusal> {
        let settings = &self.gateway.settings;
        let mut retries = Retries::new(settings.retries, self.deadlines.retries);
        let mut global = false;
        loop {
            report.attempts += 1;
            let attempt_started = Instant::now();
            // A retry is decided only with the whole body kept; the error is a second lock.
            let body = upload
                .attempt()
                .ok_or_else(|| Refusal::new(StatusCode::BAD_GATEWAY, "the request body could not be sent again"))?;
            let url = self.route.url(settings.endpoint.as_deref(), global);
            let uri = Uri::try_from(url.as_str()).map_err(|e| {
                Refusal::new(StatusCode::BAD_GATEWAY, format!("cannot call Vertex at {}: {e}", host_of(&url)))
            })?;
            let mut request = Request::new(body);
            *request.method_mut() = self.parts.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = forwarded(&self.parts.headers);
            request.headers_mut().insert(AUTHORIZATION, self.authorization.clone());
            let answer = match tokio::time::timeout_at(self.deadlines.end, self.gateway.upstream.send(request)).await {
                Err(_) => {
                    report.upstream_errors += 1;
                    return Err(self.deadline_passed());
                }
                Ok(Err(_)) if upload.too_large() => return Err(too_large(settings.max_body)),
                Ok(Err(e)) => {
                    report.upstream_errors += 1;
                    // The error names no URL: the log and the answer say the host only.
                    let e = describe(&e);
                    tracing::warn!(model = %self.route.model_label(), error = %e, "cannot reach Vertex");
                    match retry(&mut retries, &upload, attempt_started.elapsed()) {
                        Some(wait) => {
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => {
                            let host = host_of(&url);
                            return Err(Refusal::new(
                                StatusCode::BAD_GATEWAY,
                                format!("cannot reach Vertex at {host}: {e}"),
                            ));
                        }
                    }
                }
                Ok(Ok(answer)) => answer,
            };
            let status = answer.status().as_u16();
            if answer.status().is_informational() {
                // A 101 (or any 1xx) as the final answer: an upgrade nobody asked for.
                return Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!("Vertex answered {status}, which no caller asked for"),
                ));
            }
            if !retry::retryable(status) {
                return Ok((answer, None));
            }
            report.upstream_errors += 1;
            let asked = retry::parse_retry_after(answer.headers().get(RETRY_AFTER));
            match retries.next(asked, attempt_started.elapsed(), Instant::now()) {
                Decision::After(wait) if upload.replayable() => {
                    drop(answer);
                    if status == 429 && settings.fallback_global && self.route.may_use_global() {
                        global = true;
                    }
                    tokio::time::sleep(wait).await;
                }
                Decision::After(wait) => return Ok((answer, Some(wait.as_secs().max(1)))),
                Decision::GiveUp { retry_after_s } => return Ok((answer, Some(retry_after_s))),
            }
        }
    }

    fn deadline_passed(&self) -> Refusal {
        let allowed = self.deadlines.end.saturating_duration_since(self.arrived);
        Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "Vertex did not answer within the call's deadline ({} ms: VERTEX_BROKER_VERTEX_DEADLINE, \
                 {}, x-server-timeout or the Lambda invocation's)",
                allowed.as_millis(),
                TIMEOUT_HEADER.as_str()
            ),
        )
    }
}

/// `scheme://host[:port]` of a URL: what an error may name (the path names the project).
fn host_of(url: &str) -> String {
    url.split('/').take(3).collect::<Vec<_>>().join("/")
}

/// The wait before retrying an attempt that got no answer, if the body can be sent again and
/// the deadline allows.
fn retry(retries: &mut Retries, upload: &Outgoing, took: Duration) -> Option<Duration> {
    if !upload.replayable() {
        return None;
    }
    match retries.next(None, took, Instant::now()) {
        Decision::After(wait) => Some(wait),
        Decision::GiveUp { .. } => None,
    }
}

/// Vertex's answer, headers and streamed body, to the caller.
pub(super) fn pass_through(
    answer: Response<Incoming>,
    report: CallReport,
    retry_after: Option<u64>,
    dialect: Dialect,
    mut redactor: Redactor,
    deadline: Instant,
) -> Response<ResponseBody> {
    let attempts = report.attempts;
    let (mut parts, body) = answer.into_parts();
    parts.headers = returned(std::mem::take(&mut parts.headers));
    redactor.headers(&mut parts.headers);
    if let Some(s) = retry_after {
        parts.headers.entry(RETRY_AFTER).or_insert(HeaderValue::from(s));
    }
    parts.headers.insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
    Response::from_parts(parts, Either::Right(Download::new(body, report, dialect, redactor, deadline)))
}

/// The answer's headers that may go back: one pass that moves each kept value, instead of a
/// lookup per header that may not (each hashing its name).
pub(super) fn returned(headers: HeaderMap) -> HeaderMap {
    // Names the answer's own `Connection` lists are hop-by-hop too (RFC 9110 §7.6.1).
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len() + 1);
    let mut name = None;
    for (n, value) in headers {
        // `None`: another value of the previous header.
        if let Some(n) = n {
            name = Some(n);
        }
        let Some(n) = name.as_ref() else { continue };
        let n_str = n.as_str();
        if !NOT_RETURNED.contains(&n_str) && !named.iter().any(|c| c == n_str) {
            kept.append(n.clone(), value);
        }
    }
    kept
}

pub(super) fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if FORWARDED.contains(&name.as_str()) || name.as_str().starts_with("anthropic-") {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
