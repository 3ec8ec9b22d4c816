//! The example function behind API Gateway (HTTP API, payload 2.0): takes the request body, calls
//! the configured Vertex AI endpoint through the vertex-broker layer's gateway on 127.0.0.1 (which
//! adds the Google token, retries Vertex's 429s within the invocation's deadline, and writes the
//! audit line and metrics), and answers small JSON. The function never holds a Google token.
//! Vertex's 401/403/429/5xx become clear API errors (429 stays 429 with Retry-After). Logs carry
//! request ids, statuses and latencies, never bodies or tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest request body passed on (Vertex's own limit is about 1.5 MB).
pub const MAX_BODY: usize = 1_500_000;
/// Kept back from the function's remaining time to answer even when Vertex is slow.
const MARGIN: Duration = Duration::from_millis(500);
/// The gateway answers 504 itself at the deadline it is given; the client waits a little longer.
const GATEWAY_GRACE: Duration = Duration::from_millis(250);

/// The parts of an API Gateway HTTP API (payload 2.0) event the proxy reads.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiRequest {
    /// The request body: the prompt as JSON text (base64 when `is_base64_encoded`).
    #[serde(default)]
    pub body: Option<String>,
    /// Whether API Gateway base64-encoded the body.
    #[serde(default)]
    pub is_base64_encoded: bool,
    /// Where the request id comes from.
    #[serde(default)]
    pub request_context: RequestContext,
}

/// The request context of an HTTP API event: the part the proxy logs.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// API Gateway's id for the request, echoed in the answer and the log.
    #[serde(default)]
    pub request_id: String,
}

/// An HTTP API (payload 2.0) response.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiResponse {
    /// The HTTP status API Gateway answers with.
    pub status_code: u16,
    /// Answer headers.
    pub headers: HashMap<String, String>,
    /// The answer body, JSON text.
    pub body: String,
}

impl HttpApiResponse {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status_code: status,
            headers: HashMap::from([("content-type".to_string(), "application/json".to_string())]),
            body: body.to_string(),
        }
    }
    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({ "error": message.into() }))
    }
}

/// The proxy's configuration and HTTP client.
pub struct Proxy {
    http: reqwest::Client,
    /// The Vertex URL's path on the broker's gateway: `http://127.0.0.1:PORT/vertex/v1/...`.
    gateway_url: String,
}

/// The broker's default port on 127.0.0.1.
pub const BROKER_PORT: u16 = 2775;

impl Proxy {
    /// `broker` is `127.0.0.1:PORT`; `vertex_url` the full `:predict` or `:generateContent` URL,
    /// whose path the gateway forwards to the same Vertex endpoint.
    pub fn new(broker: &str, vertex_url: &str) -> Self {
        let path = vertex_url.split_once("://").map_or("", |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        Self { http: reqwest::Client::new(), gateway_url: format!("http://{broker}/vertex{path}") }
    }

    /// From `VERTEX_ENDPOINT_URL` and `VERTEX_BROKER_PORT` (default: the broker's, 2775).
    pub fn from_env() -> Result<Self, String> {
        let url = std::env::var("VERTEX_ENDPOINT_URL")
            .ok()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or("VERTEX_ENDPOINT_URL must be the full Vertex AI URL (…:predict or …:generateContent)")?;
        let port = std::env::var("VERTEX_BROKER_PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(BROKER_PORT);
        Ok(Self::new(&format!("127.0.0.1:{port}"), &url))
    }

    fn is_generate_content(&self) -> bool {
        self.gateway_url.ends_with(":generateContent")
    }

    /// Handles one request; `remaining` is the function's time left.
    pub async fn handle(&self, req: HttpApiRequest, remaining: Duration) -> HttpApiResponse {
        let started = Instant::now();
        let request_id = req.request_context.request_id.clone();
        let (response, vertex_status) = self.answer(req, remaining).await;
        tracing::info!(
            request_id = %request_id,
            status = response.status_code,
            vertex_status = vertex_status.unwrap_or(0),
            latency_ms = started.elapsed().as_millis() as u64,
            "request handled"
        );
        response
    }

    async fn answer(&self, req: HttpApiRequest, remaining: Duration) -> (HttpApiResponse, Option<u16>) {
        let body = match request_body(&req, self.is_generate_content()) {
            Ok(b) => b,
            Err(r) => return (r, None),
        };
        let budget = remaining.saturating_sub(MARGIN).max(Duration::from_secs(1));
        let sent = self
            .http
            .post(&self.gateway_url)
            .header("x-vertex-broker-timeout-ms", budget.as_millis().to_string())
            .timeout(budget + GATEWAY_GRACE)
            .json(&body)
            .send()
            .await;
        let timed_out =
            || HttpApiResponse::error(504, format!("Vertex AI did not answer within {} ms", budget.as_millis()));
        let resp = match sent {
            Ok(r) if r.status() == 504 => return (timed_out(), None),
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (timed_out(), None),
            Err(_) => {
                return (
                    HttpApiResponse::error(
                        503,
                        "the vertex-broker gateway is not reachable on 127.0.0.1 (is the layer attached?)",
                    ),
                    None,
                )
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        let google_message = answer["error"]["message"].as_str().unwrap_or("").to_string();
        let response = match status {
            200 => HttpApiResponse::json(200, summarize(&answer)),
            400 => HttpApiResponse::error(400, format!("Vertex AI rejected the request: {google_message}")),
            401 => HttpApiResponse::error(502, "Vertex AI did not accept the broker's token (401); check the broker's status endpoint"),
            403 => HttpApiResponse::error(
                502,
                format!("the service account may not call this endpoint (403: {google_message}); grant it roles/aiplatform.user"),
            ),
            429 => {
                let mut r = HttpApiResponse::error(429, "Vertex AI quota exhausted; retry later");
                r.headers.insert("retry-after".into(), retry_after.unwrap_or_else(|| "10".into()));
                r
            }
            // The gateway's own answers (no token yet, a path it does not forward) say what to do.
            s if google_message.starts_with("vertex-broker:") => HttpApiResponse::error(s.max(500), google_message),
            s if s >= 500 => HttpApiResponse::error(502, format!("Vertex AI failed (HTTP {s}); retry later")),
            s => HttpApiResponse::error(502, format!("unexpected answer from Vertex AI (HTTP {s})")),
        };
        (response, Some(status))
    }
}

/// The Vertex request: a `{"prompt": "..."}` shorthand, or a Vertex body passed as is.
fn request_body(req: &HttpApiRequest, generate_content: bool) -> Result<Value, HttpApiResponse> {
    let raw = req.body.as_deref().unwrap_or("");
    let bytes = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| HttpApiResponse::error(400, "the body is marked base64 but is not"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY {
        return Err(HttpApiResponse::error(413, format!("the body is over {MAX_BODY} bytes")));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| HttpApiResponse::error(400, "send JSON: {\"prompt\": \"...\"}, or a Vertex AI request body"))?;
    match value.get("prompt").and_then(Value::as_str) {
        Some(prompt) if generate_content => Ok(json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})),
        Some(prompt) => Ok(json!({"instances": [{"prompt": prompt}]})),
        None if value.is_object() => Ok(value),
        None => {
            Err(HttpApiResponse::error(400, "send a JSON object: {\"prompt\": \"...\"}, or a Vertex AI request body"))
        }
    }
}

/// The small JSON answer: the generated text, or the predictions.
fn summarize(answer: &Value) -> Value {
    if let Some(candidates) = answer.get("candidates").and_then(Value::as_array) {
        let first = candidates.first().cloned().unwrap_or(Value::Null);
        let text: String = first["content"]["parts"]
            .as_array()
            .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""))
            .unwrap_or_default();
        return json!({"text": text, "finishReason": first["finishReason"], "usage": answer.get("usageMetadata")});
    }
    json!({"predictions": answer.get("predictions").cloned().unwrap_or(Value::Null)})
}
