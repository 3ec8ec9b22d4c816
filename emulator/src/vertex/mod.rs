//! Vertex AI as its clients see it, under `v1` and `v1beta1`: Gemini's model calls
//! ([`gemini`]), the OpenAI-compatible Chat Completions ([`openai`]), Claude's Messages through
//! `:rawPredict` ([`anthropic`]), and the resources the GenAI SDK manages: model metadata,
//! context caches, batch prediction jobs ([`resources`]). Every call answers emulator tokens
//! only, with configurable latency and Vertex's own 429 body for injected faults.

mod anthropic;
mod gemini;
mod openai;
mod resources;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::google_error::ApiError;
use crate::iam::bearer;
use crate::Shared;

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What Vertex holds between calls: caches, batch jobs and operations by name, and the last call's
/// request headers (for tests that check what reached Vertex).
#[derive(Default)]
pub struct VertexState {
    pub caches: BTreeMap<String, serde_json::Value>,
    pub jobs: BTreeMap<String, serde_json::Value>,
    /// Long-running operations (Veo's `:predictLongRunning`) by name.
    pub operations: BTreeMap<String, serde_json::Value>,
    pub next_id: u64,
    pub last_headers: HashMap<String, String>,
}

/// Vertex's routes, under both API versions.
pub fn routes() -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for v in ["v1", "v1beta1"] {
        let located = format!("/{v}/projects/{{project}}/locations/{{location}}");
        router = router
            .route(&format!("{located}/endpoints/{{endpoint}}"), post(gemini::endpoint))
            .route(&format!("{located}/endpoints/openapi/chat/completions"), post(openai::chat_completions))
            .route(
                &format!("{located}/publishers/{{publisher}}/models/{{model}}"),
                post(gemini::model).get(resources::model_in_location),
            )
            .route(&format!("/{v}/publishers/{{publisher}}/models/{{model}}"), get(resources::model))
            .route(
                &format!("{located}/publishers/{{publisher}}/models/{{model}}/operations/{{id}}"),
                get(resources::get_operation),
            )
            .route(&format!("{located}/cachedContents"), post(resources::create_cache).get(resources::list_caches))
            .route(
                &format!("{located}/cachedContents/{{id}}"),
                get(resources::get_cache).patch(resources::patch_cache).delete(resources::delete_cache),
            )
            .route(&format!("{located}/batchPredictionJobs"), post(resources::create_job).get(resources::list_jobs))
            .route(
                &format!("{located}/batchPredictionJobs/{{id}}"),
                get(resources::get_job).post(resources::cancel_job),
            );
    }
    router
}

/// Accepts only an unexpired token we issued with the cloud-platform scope, for an account
/// that holds the Vertex permission; records the call's headers.
fn authorize(shared: &Shared, headers: &HeaderMap, permission: &str, resource: &str) -> Result<(), ApiError> {
    let mut world = shared.world();
    world.vertex.last_headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .filter(|(k, _)| k != "authorization")
        .collect();
    let token = bearer(headers).and_then(|t| world.bearer(t)).ok_or_else(ApiError::unauthenticated)?;
    if !token.scopes.iter().any(|s| s == CLOUD_PLATFORM) {
        return Err(ApiError::insufficient_scopes());
    }
    if !world.may_use_vertex(token) {
        return Err(ApiError::permission_denied(permission, resource));
    }
    Ok(())
}

/// What Vertex says when a model is over quota (the message of its 429 for Gemini models).
const RESOURCE_EXHAUSTED: &str = "Resource exhausted. Please try again later. Please refer to \
    https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.";

/// An injected fault as Vertex answers it: 429 is Vertex's RESOURCE_EXHAUSTED.
async fn vertex_fault(shared: &Shared) -> Option<Response> {
    let status = shared.take_fault("vertex").await?;
    Some(match status {
        429 => ApiError::new(429, "RESOURCE_EXHAUSTED", RESOURCE_EXHAUSTED).into_response(),
        other => ApiError::for_status(other).into_response(),
    })
}

/// What every model call passes first: counted by location, an injected fault, the token.
async fn admit(shared: &Shared, headers: &HeaderMap, location: &str, resource: &str) -> Result<(), Response> {
    // Which location was called, for tests of a fall-back to `global` (`calls("vertex@LOCATION")`).
    *shared.world().calls.entry(format!("vertex@{location}")).or_default() += 1;
    if let Some(fault) = vertex_fault(shared).await {
        return Err(fault);
    }
    authorize(shared, headers, "aiplatform.endpoints.predict", resource).map_err(IntoResponse::into_response)
}

/// Server-sent events, one at a time `between` apart after `first_byte`: a client sees the
/// first before the last is sent.
fn sse(frames: Vec<String>, between: Duration) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(between).await;
            }
            if tx.send(Ok(frame)).await.is_err() {
                return; // the client went away
            }
        }
    });
    (
        [("content-type", "text/event-stream"), ("cache-control", "no-cache")],
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}

/// A chat message's text, as OpenAI's and Anthropic's APIs both write it: a string, or the
/// `text` of its `[{"type": "text", "text": ...}]` parts.
fn message_text(message: &serde_json::Value) -> String {
    match message.get("content") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(serde_json::Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// The emulator's tokenizer: one token per word.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A project's number, as Vertex writes resource names (stable per project id).
fn project_number(project: &str) -> String {
    if project.bytes().all(|b| b.is_ascii_digit()) {
        return project.to_string();
    }
    let hash = project.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}
