//! The Vertex gateway: `http://127.0.0.1:PORT/vertex/{v1,v1beta1}/...` forwards Vertex AI calls
//! with the served account's access token, so function code in any language calls Vertex with a
//! plain HTTP request and never holds a Google token. Both bodies stream; 429 and 503 are retried
//! within the call's deadline; each call leaves an audit line and its metrics.
//!
//! | module | what it does |
//! |---|---|
//! | [`route`] | which paths and methods are Vertex model calls, and the upstream URL for each |
//! | [`retry`] | when to try again: backoff with jitter, `Retry-After`, the deadline |
//! | [`body`] | the request body streamed up (size limit, copy kept for retries), the answer streamed down |
//! | [`usage`] | token counts read from the answer's tail |
//! | [`report`] | the audit line and the call's metrics, written when the answer ends |

pub mod body;
pub mod report;
pub mod retry;
pub mod route;
pub mod usage;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response};
use tokio::time::Instant;

use self::body::{Download, ReplayBudget, Upload, UploadState};
use self::report::CallReport;
use self::retry::{Decision, Retries};
use self::route::VertexCall;
use super::guard;
use super::token_cache::NoToken;
use super::Broker;
use crate::config::{VertexGateway, DEFAULT_SCOPE};

/// The answer's body: the gateway's own (errors) or Vertex's, streamed.
pub type ResponseBody = Either<Full<Bytes>, Download>;

/// Header naming the account to call as (the path prefix `/vertex/accounts/{email}/` also does).
pub const ACCOUNT_HEADER: &str = "x-vertex-broker-account";
/// Header bounding a call's retries to this many milliseconds from its arrival.
pub const TIMEOUT_HEADER: &str = "x-vertex-broker-timeout-ms";
/// Header on every forwarded answer: how many attempts it took.
pub const ATTEMPTS_HEADER: &str = "x-vertex-broker-attempts";
/// Request bodies held for retries at once, broker-wide.
const REPLAY_BUDGET: usize = 64 * 1024 * 1024;
/// Kept back from a Lambda invocation's deadline: the function still has to answer.
const LAMBDA_MARGIN: Duration = Duration::from_millis(200);
/// Request headers passed to Vertex; everything else (cookies, the caller's `Authorization`,
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
/// Answer headers not passed back: hop-by-hop, framing (hyper sets it), and cookies.
const NOT_RETURNED: [&str; 7] =
    ["connection", "keep-alive", "transfer-encoding", "content-length", "set-cookie", "alt-svc", "upgrade"];

/// A refusal or failure answered by the gateway itself, in Google's error format so that SDKs
/// read it as they read Vertex's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl GatewayError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: format!("vertex-broker: {}", message.into()), retry_after: None }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn method(message: impl Into<String>) -> Self {
        Self::new(405, message)
    }

    /// Google's `status` for an HTTP status.
    fn google_status(&self) -> &'static str {
        match self.status {
            400 | 411 | 413 | 415 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 | 405 => "NOT_FOUND",
            429 => "RESOURCE_EXHAUSTED",
            502 | 503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        }
    }

    fn response(&self) -> Response<ResponseBody> {
        let body = serde_json::json!({
            "error": {"code": self.status, "message": self.message, "status": self.google_status()}
        });
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
        *resp.status_mut() = hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The gateway's shared parts: settings, the upstream client, the retry copy budget.
pub struct Gateway {
    settings: VertexGateway,
    client: reqwest::Client,
    replay: ReplayBudget,
    scope_key: String,
}

impl Gateway {
    pub fn new(settings: VertexGateway, connect_timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { settings, client, replay: ReplayBudget::new(REPLAY_BUDGET), scope_key: DEFAULT_SCOPE.to_string() }
    }

    /// When a call must end (the configured bound, a shorter one the caller names, the Lambda
    /// invocation's deadline), and when its retries must (in Lambda, a margin earlier: the
    /// function still has to answer).
    fn deadlines(&self, headers: &HeaderMap, lambda: Option<Instant>, arrived: Instant) -> Deadlines {
        let mut end = arrived + self.settings.deadline;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(ms) = header(TIMEOUT_HEADER).and_then(|v| v.parse::<u64>().ok()) {
            end = end.min(arrived + Duration::from_millis(ms));
        }
        // Google's own header, which the SDKs send when given a timeout (seconds).
        if let Some(s) =
            header("x-server-timeout").and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite() && *s > 0.0)
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
        return GatewayError { status: refusal.status, message: refusal.reason, retry_after: None }.response();
    }
    let call = match VertexCall::parse(parts.uri.path(), parts.uri.query(), &parts.method) {
        Ok(call) => call,
        Err(e) => return e.response(),
    };
    if parts.method == Method::POST && !is_json(&parts.headers) {
        return GatewayError::new(415, "send the request body as JSON, with Content-Type: application/json").response();
    }
    let gateway = broker.gateway();
    let name = call
        .account
        .clone()
        .or_else(|| parts.headers.get(ACCOUNT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    let Some(account) = broker.account(&name).await else {
        return GatewayError::not_found(format!(
            "no service account {}; this broker serves `default` and the emails it lists under \
             /computeMetadata/v1/instance/service-accounts/",
            guard::printable(&name)
        ))
        .response();
    };
    let (request_id, lambda_deadline) = match broker.invocation() {
        Some(i) => (i.request_id, Some(i.deadline)),
        None => (uuid::Uuid::new_v4().to_string(), None),
    };
    let mut report = CallReport {
        metrics: broker.metrics().clone(),
        audit: broker.audit(),
        request_id,
        account: name.clone(),
        model: call.model.clone(),
        method: call.method.clone(),
        status: 0,
        started: arrived,
        attempts: 0,
        upstream_errors: 0,
    };
    let refuse = |mut report: CallReport, e: GatewayError| {
        report.status = e.status;
        report.finish("refused", None);
        e.response()
    };
    let max_body = gateway.settings.max_body;
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return refuse(report, too_large(max_body));
    }
    let token = match account.access_token(&gateway.scope_key).await {
        Ok(t) => t,
        Err(e) => return refuse(report, no_token(e)),
    };
    // Known once a token is: a key's account is read with the key.
    if let Some(email) = account.email() {
        report.account = email;
    }
    let deadlines = gateway.deadlines(&parts.headers, lambda_deadline, arrived);
    let (upload, upload_state) = Upload::new(body, max_body, gateway.replay.clone());
    let mut first_body = Some(reqwest::Body::wrap(upload));
    let mut retries = Retries::new(gateway.settings.retries, deadlines.retries);
    let mut global = false;
    loop {
        report.attempts += 1;
        let attempt_started = Instant::now();
        // A retry is decided only with the whole body kept; the refusal is a second lock.
        let body = match first_body.take().or_else(|| upload_state.replay().map(reqwest::Body::from)) {
            Some(body) => body,
            None => return refuse(report, GatewayError::new(502, "the request body could not be sent again")),
        };
        let url = call.url(gateway.settings.endpoint.as_deref(), global);
        let request = gateway
            .client
            .request(parts.method.clone(), &url)
            .headers(forwarded(&parts.headers))
            .bearer_auth(token.secret.expose())
            .body(body);
        let sent = tokio::time::timeout_at(deadlines.end, request.send()).await;
        let answer = match sent {
            Err(_) => {
                report.upstream_errors += 1;
                let waited = deadlines.end.saturating_duration_since(arrived);
                return refuse(
                    report,
                    GatewayError::new(
                        504,
                        format!(
                            "Vertex did not answer within the call's deadline ({} ms: VERTEX_BROKER_VERTEX_DEADLINE, \
                             {TIMEOUT_HEADER}, x-server-timeout or the Lambda invocation's)",
                            waited.as_millis()
                        ),
                    ),
                );
            }
            Ok(Err(e)) => {
                if upload_state.too_large() {
                    return refuse(report, too_large(max_body));
                }
                report.upstream_errors += 1;
                // The URL names the project: the log and the answer say the host only.
                let e = e.without_url().to_string();
                tracing::warn!(model = %call.model, error = %e, "cannot reach Vertex");
                match retry(&mut retries, &upload_state, attempt_started.elapsed()) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => {
                        let host = url.split('/').take(3).collect::<Vec<_>>().join("/");
                        return refuse(report, GatewayError::new(502, format!("cannot reach Vertex at {host}: {e}")));
                    }
                }
            }
            Ok(Ok(answer)) => answer,
        };
        let status = answer.status().as_u16();
        let mut retry_after = None;
        if retry::retryable(status) {
            report.upstream_errors += 1;
            let asked = retry::parse_retry_after(answer.headers().get(RETRY_AFTER));
            match retries.next(asked, attempt_started.elapsed(), Instant::now()) {
                Decision::After(wait) if upload_state.replayable() => {
                    drop(answer);
                    if status == 429 && gateway.settings.fallback_global && call.may_use_global() {
                        global = true;
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Decision::After(wait) => retry_after = Some(wait.as_secs().max(1)),
                Decision::GiveUp { retry_after_s } => retry_after = Some(retry_after_s),
            }
        }
        report.status = status;
        return pass_through(answer, report, retry_after);
    }
}

/// The wait before retrying an attempt that got no answer, if the body can be sent again and
/// the deadline allows.
fn retry(retries: &mut Retries, upload: &UploadState, took: Duration) -> Option<Duration> {
    if !upload.replayable() {
        return None;
    }
    match retries.next(None, took, Instant::now()) {
        Decision::After(wait) => Some(wait),
        Decision::GiveUp { .. } => None,
    }
}

/// Vertex's answer, headers and streamed body, to the caller.
fn pass_through(answer: reqwest::Response, report: CallReport, retry_after: Option<u64>) -> Response<ResponseBody> {
    let attempts = report.attempts;
    let answer: hyper::Response<reqwest::Body> = answer.into();
    let (mut parts, body) = answer.into_parts();
    for name in NOT_RETURNED {
        parts.headers.remove(name);
    }
    if let Some(s) = retry_after {
        parts.headers.entry(RETRY_AFTER).or_insert(HeaderValue::from(s));
    }
    parts.headers.insert(HeaderName::from_static(ATTEMPTS_HEADER), HeaderValue::from(attempts));
    Response::from_parts(parts, Either::Right(Download::new(body, report)))
}

fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED {
        for value in headers.get_all(name) {
            out.append(HeaderName::from_static(name), value.clone());
        }
    }
    out
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        413,
        format!(
            "request body larger than {} MB (VERTEX_BROKER_VERTEX_MAX_BODY_MB); put large media in Cloud Storage \
             and send its fileData URI",
            max / (1024 * 1024)
        ),
    )
}

fn no_token(e: NoToken) -> GatewayError {
    match e {
        NoToken::Unavailable(u) => GatewayError {
            retry_after: Some(u.retry_after),
            ..GatewayError::new(503, format!("no access token to call Vertex with: {}", u.message))
        },
        NoToken::Limited(l) => GatewayError {
            retry_after: Some(l.retry_after()),
            ..GatewayError::new(429, format!("no access token to call Vertex with: {l}"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        h.insert("x-server-timeout", HeaderValue::from_static("0.5"));
        assert_eq!(g.deadlines(&h, None, now).end, at(500));
        assert_eq!(
            g.deadlines(&h, Some(at(300)), now),
            Deadlines { end: at(300), retries: at(100) },
            "the invocation's; its retries a margin earlier"
        );
        assert_eq!(g.deadlines(&h, Some(at(100)), now), Deadlines { end: at(100), retries: now }, "no time to retry");
        h.insert("x-server-timeout", HeaderValue::from_static("NaN"));
        assert_eq!(g.deadlines(&h, None, now).end, at(1500), "nonsense is ignored");
    }

    #[test]
    fn only_listed_headers_go_upstream() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer caller"),
            ("cookie", "a=b"),
            ("content-type", "application/json"),
            ("accept-encoding", "gzip"),
            ("x-goog-api-client", "genai-py"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = forwarded(&h);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-type", "x-goog-api-client"]);
        assert!(is_json(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h), "a browser's form post is not JSON");
    }

    #[test]
    fn gateway_errors_read_like_googles() {
        let e = GatewayError { retry_after: Some(3), ..GatewayError::new(429, "busy") };
        let resp = e.response();
        assert_eq!(resp.headers()[RETRY_AFTER], "3");
        assert_eq!(e.google_status(), "RESOURCE_EXHAUSTED");
        assert_eq!(GatewayError::new(504, "x").google_status(), "DEADLINE_EXCEEDED");
    }
}
