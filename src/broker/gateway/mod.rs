//! The Vertex gateway: `http://127.0.0.1:PORT/vertex/{v1,v1beta1}/...` forwards Vertex AI calls
//! with the served account's access token, so function code in any language calls Vertex with a
//! plain HTTP request and never holds a Google token. Both bodies stream; 429 and 503 are retried
//! within the call's deadline; each call leaves an audit line and its metrics.
//!
//! | module | what it does |
//! |---|---|
//! | [`route`] | the table of what is forwarded (path shape, method, name), the upstream host per location, the model allowlist |
//! | [`retry`] | when to try again: backoff with jitter, `Retry-After`, the deadline |
//! | [`body`] | the request body streamed up (size limit, copy kept for retries), what each attempt sends |
//! | [`download`] | the answer streamed down: usage read, an echoed token masked, the deadline kept, the call reported at its end |
//! | [`held`] | request bytes held (a retry's copy, a body read whole): one coalesced buffer each, charged to one budget |
//! | [`error`] | the gateway's own answers, in Google's error format |
//! | [`forward`] | one call's attempts at Vertex: headers passed up, retries, the answer passed back (hop-by-hop headers dropped) |
//! | [`redact`] | the bearer token masked wherever an answer's headers or body echo it |
//! | [`usage`] | token counts read from the answer's head and tail, per surface (Gemini, OpenAI, Anthropic) |
//! | [`caller_token`] | the gateway token handed out by `VERTEX_BROKER_TOKEN_ENDPOINTS=gateway` |
//! | [`report`] | the audit line and the call's metrics, written when the answer ends; request ids outside Lambda |
//! | [`upstream`] | the pooled connections to Vertex (hyper's client over rustls, made on the first call) |

pub(crate) mod body;
pub(crate) mod caller_token;
pub(crate) mod download;
pub(crate) mod error;
pub(crate) mod forward;
pub mod held;
pub mod redact;
pub(crate) mod report;
pub(crate) mod retry;
pub mod route;
pub(crate) mod upstream;
pub(crate) mod usage;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderName, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::time::Instant;

use self::body::{Outgoing, Upload};
pub use self::caller_token::GatewayToken;
use self::download::Download;
use self::error::{no_token, too_large};
use self::forward::{pass_through, Call};
use self::held::{read_whole, Budget, ReadError};
use self::redact::{Redactor, SentToken};
use self::report::{CallReport, RequestIds};
use self::route::table::BodyModel;
use self::route::VertexCall;
use self::upstream::Upstream;
use super::guard;
use super::Broker;
pub(crate) use crate::broker::refusal::Refusal;
use crate::config::VertexGateway;
use crate::google::scopes::ScopeKey;

/// The answer's body: the gateway's own (errors) or Vertex's, streamed.
pub type ResponseBody = Either<Full<Bytes>, Download>;

/// Header naming the account to call as (the path prefix `/vertex/accounts/{email}/` also does).
pub const ACCOUNT_HEADER: HeaderName = HeaderName::from_static("x-vertex-broker-account");
/// Header bounding a call's retries to this many milliseconds from its arrival.
pub const TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-vertex-broker-timeout-ms");
/// Header on every forwarded answer: how many attempts it took.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-vertex-broker-attempts");
/// Google's own header, which the SDKs send when given a timeout (seconds).
const SERVER_TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-server-timeout");
/// Request bodies held at once (retry copies, bodies read whole), broker-wide.
const HELD_BUDGET: usize = 64 * 1024 * 1024;
/// Kept back from a Lambda invocation's deadline: the function still has to answer.
const LAMBDA_MARGIN: Duration = Duration::from_millis(200);
/// The gateway's shared parts: settings, the upstream client, the budget for held request bodies, the
/// gateway token.
pub struct Gateway {
    settings: VertexGateway,
    upstream: Upstream,
    held: Budget,
    scopes: ScopeKey,
    caller_token: GatewayToken,
    request_ids: RequestIds,
    /// The last token sent: its `Authorization` value and searcher, reused while it lasts.
    last_sent: Mutex<Option<Arc<SentToken>>>,
}

impl Gateway {
    /// The gateway with its own upstream connection pool; `connect_timeout` bounds each connect.
    pub fn new(settings: VertexGateway, connect_timeout: Duration) -> Self {
        Self {
            upstream: Upstream::new(connect_timeout, settings.proxies.clone()),
            settings,
            held: Budget::new(HELD_BUDGET),
            scopes: ScopeKey::cloud_platform(),
            caller_token: GatewayToken::new(),
            request_ids: RequestIds::new(),
            last_sent: Mutex::new(None),
        }
    }

    /// `token` as calls send and watch for it, made once per token (the last one is kept).
    fn sent_token(&self, token: &str) -> Option<Arc<SentToken>> {
        let mut last = crate::lock(&self.last_sent);
        if let Some(sent) = last.as_ref().filter(|s| s.is(token)) {
            return Some(sent.clone());
        }
        let sent = Arc::new(SentToken::new(token)?);
        *last = Some(sent.clone());
        Some(sent)
    }

    /// The token `VERTEX_BROKER_TOKEN_ENDPOINTS=gateway` hands out: this gateway's only.
    pub fn caller_token(&self) -> &GatewayToken {
        &self.caller_token
    }

    /// When a call must end (the configured bound, a shorter one the caller names, the Lambda
    /// invocation's deadline), and when its retries must (in Lambda, a margin earlier: the
    /// function still has to answer).
    fn deadlines(&self, headers: &HeaderMap, lambda: Option<Instant>, arrived: Instant) -> Deadlines {
        let mut end = arrived + self.settings.deadline;
        let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(ms) = header(&TIMEOUT_HEADER).and_then(|v| v.parse::<u64>().ok()) {
            end = end.min(arrived + Duration::from_millis(ms));
        }
        if let Some(s) =
            header(&SERVER_TIMEOUT_HEADER).and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0)
        {
            end = end.min(arrived + Duration::from_secs_f64(s.min(3600.0)));
        }
        let mut retries = end;
        if let Some(lambda) = lambda {
            end = end.min(lambda);
            retries = end.min(lambda.checked_sub(LAMBDA_MARGIN).unwrap_or(arrived)).max(arrived);
        }
        Deadlines { end, retries }
    }
}

/// A call's two deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadlines {
    /// Vertex must have answered by then, or the caller gets 504.
    end: Instant,
    /// No retry starts that would not finish by then.
    retries: Instant,
}

/// Serves one gateway request.
pub async fn handle(broker: &Broker, req: Request<Incoming>) -> Response<ResponseBody> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    if let Err(refusal) = guard::check_caller(&parts.uri, &parts.headers) {
        return error::response(&refusal);
    }
    let gateway = broker.gateway();
    let call = VertexCall::parse(parts.uri.path(), parts.uri.query(), &parts.method, &gateway.settings.location);
    let mut call = match call {
        Ok(call) => call,
        Err(e) => return error::response(&e),
    };
    if matches!(parts.method, Method::POST | Method::PATCH) && !body.is_end_stream() && !is_json(&parts.headers) {
        let e = Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON, with Content-Type: application/json",
        );
        return error::response(&e);
    }
    let name = call
        .account
        .clone()
        .or_else(|| parts.headers.get(&ACCOUNT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    let (request_id, lambda_deadline) = match broker.invocation() {
        Some(i) => (i.request_id, Some(i.deadline)),
        None => (gateway.request_ids.next(), None),
    };
    let mut report = CallReport {
        metrics: broker.metrics().clone(),
        audit: broker.audit(),
        request_id,
        account: name.clone(),
        model: call.model_label(),
        method: call.method,
        status: 0,
        started: arrived,
        attempts: 0,
        upstream_errors: 0,
        token_echoes: 0,
    };
    let refuse = |mut report: CallReport, e: Refusal| {
        report.status = e.status.as_u16();
        report.finish("refused", None);
        error::response(&e)
    };
    // Refused before anything is looked up or minted, and audited: a model this function may not
    // call is worth a line.
    if let Err(e) = call.check_model(&gateway.settings.allowed_models) {
        return refuse(report, e);
    }
    let Some(account) = broker.account(&name).await else {
        let e = Refusal::not_found(format!(
            "no service account {}; this broker serves `default` and the emails it lists under \
             /computeMetadata/v1/instance/service-accounts/",
            crate::text::printable(&name)
        ));
        return refuse(report, e);
    };
    let max_body = gateway.settings.max_body;
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return refuse(report, too_large(max_body));
    }
    let deadlines = gateway.deadlines(&parts.headers, lambda_deadline, arrived);
    // A body that names the model is read whole first: the allowlist decides before anything
    // goes up, and `"stream": true` decides how the answer is retried.
    let outgoing = if call.body == BodyModel::No {
        let (upload, state) = Upload::new(body, max_body, gateway.held.clone());
        Outgoing::Streamed { first: Some(upload), state }
    } else {
        let held = match tokio::time::timeout_at(deadlines.end, read_whole(body, max_body, &gateway.held)).await {
            Ok(Ok(held)) => held,
            Ok(Err(ReadError::TooLarge)) => return refuse(report, too_large(max_body)),
            Ok(Err(ReadError::Busy)) => {
                let e = Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway is holding its budget of request bodies; retry shortly",
                );
                return refuse(report, e.retry_after(1));
            }
            Ok(Err(e)) => return refuse(report, Refusal::invalid(e.to_string())),
            Err(_) => {
                return refuse(
                    report,
                    Refusal::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body did not arrive within the call's deadline",
                    ),
                )
            }
        };
        if let Err(e) = call.read_body(held.bytes()).and_then(|()| call.check_model(&gateway.settings.allowed_models)) {
            return refuse(report, e);
        }
        report.model = call.model_label();
        Outgoing::Held(held)
    };
    let token = match account.access_token(&gateway.scopes).await {
        Ok(t) => t,
        Err(e) => return refuse(report, no_token(e)),
    };
    // Known once a token is: a key's account is read with the key.
    if let Some(email) = account.email() {
        report.account = email;
    }
    let Some(sent) = gateway.sent_token(token.bearer.expose()) else {
        return refuse(
            report,
            Refusal::new(StatusCode::BAD_GATEWAY, "the account's access token is not a valid header value"),
        );
    };
    let call = Call { gateway, route: &call, parts: &parts, authorization: sent.authorization(), deadlines, arrived };
    match call.forward(outgoing, &mut report).await {
        Ok((answer, retry_after)) => {
            report.status = answer.status().as_u16();
            let redactor = Redactor::of(sent.clone());
            pass_through(answer, report, retry_after, call.route.dialect, redactor, deadlines.end)
        }
        Err(e) => refuse(report, e),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::forward::{forwarded, returned};
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    #[tokio::test(start_paused = true)]
    async fn the_shortest_deadline_wins() {
        let g = Gateway::new(VertexGateway::default(), Duration::from_secs(1));
        let now = Instant::now();
        let at = |ms| now + Duration::from_millis(ms);
        let mut h = HeaderMap::new();
        assert_eq!(
            g.deadlines(&h, None, now),
            Deadlines { end: at(30_000), retries: at(30_000) },
            "the configured bound"
        );
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("1500"));
        assert_eq!(g.deadlines(&h, None, now).end, at(1500));
        h.insert(SERVER_TIMEOUT_HEADER, HeaderValue::from_static("0.5"));
        assert_eq!(g.deadlines(&h, None, now).end, at(500));
        assert_eq!(
            g.deadlines(&h, Some(at(300)), now),
            Deadlines { end: at(300), retries: at(100) },
            "the invocation's; its retries a margin earlier"
        );
        assert_eq!(g.deadlines(&h, Some(at(100)), now), Deadlines { end: at(100), retries: now }, "no time to retry");
        h.insert(SERVER_TIMEOUT_HEADER, HeaderValue::from_static("NaN"));
        assert_eq!(g.deadlines(&h, None, now).end, at(1500), "nonsense is ignored");
    }

    #[test]
    fn a_token_is_prepared_once_while_it_lasts() {
        let g = Gateway::new(VertexGateway::default(), Duration::from_secs(1));
        let first = g.sent_token("ya29.one").unwrap();
        assert!(Arc::ptr_eq(&first, &g.sent_token("ya29.one").unwrap()), "the same token: the same value");
        assert_eq!(first.authorization(), "Bearer ya29.one");
        assert!(first.authorization().is_sensitive());
        let second = g.sent_token("ya29.two").unwrap();
        assert!(!Arc::ptr_eq(&first, &second) && second.is("ya29.two"));
        assert!(g.sent_token("bad\ntoken").is_none(), "not a header value");
    }

    /// Headers from name-value pairs, repeated names appended.
    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_vertex_own_headers_do_not_come_back() {
        let h = headers(&[
            ("content-type", "application/json"),
            ("connection", "keep-alive, X-Hop"),
            ("connection", "x-other-hop"),
            ("x-hop", "1"),
            ("x-other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "a=b"),
            ("vary", "Origin"),
            ("vary", "X-Origin"),
            ("x-goog-request-id", "r"),
        ]);
        let back = returned(h);
        let mut names: Vec<(&str, &str)> = back.iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("content-type", "application/json"),
                ("vary", "Origin"),
                ("vary", "X-Origin"),
                ("x-goog-request-id", "r")
            ]
        );
    }

    #[test]
    fn only_listed_headers_go_upstream() {
        let mut h = headers(&[
            ("authorization", "Bearer caller"),
            ("cookie", "a=b"),
            ("content-type", "application/json"),
            ("accept-encoding", "gzip"),
            ("x-goog-api-client", "genai-py"),
            ("anthropic-beta", "context-1m-2025-08-07"),
            ("anthropic-version", "2023-06-01"),
            ("accept-language", "*"),
            ("sec-fetch-mode", "cors"),
        ]);
        let out = forwarded(&h);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["anthropic-beta", "anthropic-version", "content-type", "x-goog-api-client"]);
        assert!(is_json(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h), "a browser's form post is not JSON");
    }
}
