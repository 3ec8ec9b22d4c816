//! A Lambda Extensions API on 127.0.0.1: records registration and error reports, and hands
//! out INVOKE / SHUTDOWN events when the test says so.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;

/// What the extension under test sent to the Extensions API.
#[derive(Default, Debug, Clone)]
pub struct Seen {
    /// `Lambda-Extension-Name` of each registration, and the events asked for.
    pub registered: Vec<(String, Value)>,
    /// How many times `/event/next` was called.
    pub polls: usize,
    /// When each of those calls arrived.
    pub poll_times: Vec<std::time::Instant>,
    /// (error type header, body) of each `/init/error`.
    pub init_errors: Vec<(String, Value)>,
    /// (error type header, body) of each `/exit/error`.
    pub exit_errors: Vec<(String, Value)>,
}

struct Shared {
    seen: Mutex<Seen>,
    polled: tokio::sync::Notify,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
}

/// The Extensions API the extension under test registers with; serves until the test ends.
pub struct ExtensionsApi {
    /// Where it listens; give it as `AWS_LAMBDA_RUNTIME_API`.
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Value>,
}

impl ExtensionsApi {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            polled: tokio::sync::Notify::new(),
            events: tokio::sync::Mutex::new(rx),
        });
        let app = Router::new()
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(next))
            .route("/2020-01-01/extension/init/error", post(init_error))
            .route("/2020-01-01/extension/exit/error", post(exit_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared, events: tx }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Queues `event` (INVOKE or SHUTDOWN) for the extension's next `/event/next`.
    pub fn send(&self, event: Value) {
        self.events.send(event).unwrap();
    }

    /// When poll number `n` (1-based) arrived, waiting for it up to `timeout`.
    pub async fn poll_time(&self, n: usize, timeout: std::time::Duration) -> Option<std::time::Instant> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let polled = self.shared.polled.notified();
            if let Some(at) = self.seen().poll_times.get(n - 1) {
                return Some(*at);
            }
            tokio::time::timeout_at(until, polled).await.ok()?;
        }
    }

    /// Waits until `check` holds for what was seen, up to `timeout`.
    pub async fn wait_for(&self, timeout: std::time::Duration, check: impl Fn(&Seen) -> bool) -> Seen {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.seen();
            if check(&seen) || tokio::time::Instant::now() > until {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn register(State(s): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> impl IntoResponse {
    let name = headers.get("lambda-extension-name").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    s.seen.lock().unwrap().registered.push((name, json(&body)));
    let mut h = HeaderMap::new();
    h.insert("lambda-extension-identifier", HeaderValue::from_static("test-extension-id"));
    (h, axum::Json(serde_json::json!({"functionName": "fn", "functionVersion": "$LATEST", "handler": "bootstrap"})))
}

async fn next(State(s): State<Arc<Shared>>) -> axum::Json<Value> {
    {
        let mut seen = s.seen.lock().unwrap();
        seen.polls += 1;
        seen.poll_times.push(std::time::Instant::now());
    }
    s.polled.notify_waiters();
    let event = s.events.lock().await.recv().await.unwrap_or(Value::Null);
    axum::Json(event)
}

async fn init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> &'static str {
    let kind =
        headers.get("lambda-extension-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    s.seen.lock().unwrap().init_errors.push((kind, json(&body)));
    "{}"
}

async fn exit_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> &'static str {
    let kind =
        headers.get("lambda-extension-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    s.seen.lock().unwrap().exit_errors.push((kind, json(&body)));
    "{}"
}
