//! A Lambda Runtime API on 127.0.0.1, enough to drive a real `bootstrap` the way Lambda does:
//! hand out events one at a time and collect each invocation's response or error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

/// What the function answered for one invocation.
#[derive(Debug)]
pub enum Answer {
    /// The invocation's response.
    Response(Value),
    /// An invocation error (`errorType`, `errorMessage`).
    Error(Value),
    /// An error during init.
    InitError(Value),
}

struct Shared {
    events: Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    answers: mpsc::UnboundedSender<(String, Answer)>,
    first_poll: std::sync::Mutex<Option<Instant>>,
}

/// The Runtime API a function's `bootstrap` runs against; serves until the test ends.
pub struct RuntimeApi {
    /// Where it listens; give it as `AWS_LAMBDA_RUNTIME_API`.
    pub addr: std::net::SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    answers: mpsc::UnboundedReceiver<(String, Answer)>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: Mutex::new(events_rx),
            answers: answers_tx,
            first_poll: std::sync::Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, events: events_tx, answers: answers_rx, shared }
    }

    /// When the function first asked for an event (it is initialised and waiting).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap()
    }

    /// Invokes the function with `event` and waits for its answer.
    pub async fn invoke(&mut self, event: Value, timeout: Duration) -> Answer {
        let id = uuid::Uuid::new_v4().to_string();
        self.events.send((id.clone(), event)).unwrap();
        loop {
            let (answered, answer) = tokio::time::timeout(timeout, self.answers.recv())
                .await
                .expect("the function answered in time")
                .expect("runtime API alive");
            if answered == id || matches!(answer, Answer::InitError(_)) {
                return answer;
            }
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
    let (id, event) = shared.events.lock().await.recv().await.expect("events channel open");
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap() + Duration::from_secs(120);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline.as_millis() as u64));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:vertex-broker-rotation"),
    );
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    (headers, axum::Json(event))
}

fn body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, bytes: axum::body::Bytes) -> &'static str {
    let _ = shared.answers.send((id, Answer::Response(body(&bytes))));
    "{\"status\":\"OK\"}"
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, bytes: axum::body::Bytes) -> &'static str {
    let _ = shared.answers.send((id, Answer::Error(body(&bytes))));
    "{\"status\":\"OK\"}"
}

async fn init_error(State(shared): State<Arc<Shared>>, bytes: axum::body::Bytes) -> &'static str {
    let _ = shared.answers.send(("init".into(), Answer::InitError(body(&bytes))));
    "{\"status\":\"OK\"}"
}
