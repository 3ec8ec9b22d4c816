//! Vertex AI `:predict`, `:generateContent` and `:streamGenerateContent` (SSE), under `v1` and
//! `v1beta1`, answering deterministically to emulator tokens only, with configurable latency and
//! Vertex's own 429 body for injected faults.

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::google_error::ApiError;
use crate::iam::bearer;
use crate::Shared;

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Accepts only an unexpired token we issued with the cloud-platform scope, for an account
/// that holds the Vertex permission.
fn authorize(shared: &Shared, headers: &HeaderMap, permission: &str, resource: &str) -> Result<(), ApiError> {
    let world = shared.world();
    let token = bearer(headers).and_then(|t| world.bearer(t)).ok_or_else(ApiError::unauthenticated)?;
    if !token.scopes.iter().any(|s| s == CLOUD_PLATFORM) {
        return Err(ApiError::insufficient_scopes());
    }
    if !world.may_use_vertex(token) {
        return Err(ApiError::permission_denied(permission, resource));
    }
    Ok(())
}

pub async fn endpoint(
    State(shared): State<Arc<Shared>>,
    Path((project, location, endpoint_and_verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some((endpoint, "predict")) = endpoint_and_verb.split_once(':') else {
        return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response();
    };
    if let Some(fault) = vertex_fault(&shared).await {
        return fault;
    }
    let resource = format!("projects/{project}/locations/{location}/endpoints/{endpoint}");
    if let Err(e) = authorize(&shared, &headers, "aiplatform.endpoints.predict", &resource) {
        return e.into_response();
    }
    let instances = body.and_then(|Json(b)| b.get("instances").and_then(Value::as_array).cloned());
    let Some(instances) = instances.filter(|i| !i.is_empty()) else {
        return ApiError::new(400, "INVALID_ARGUMENT", "Invalid JSON payload: \"instances\" must be a non-empty list.")
            .into_response();
    };
    let predictions: Vec<Value> = instances.into_iter().map(|i| json!({ "echo": i })).collect();
    Json(json!({
        "predictions": predictions,
        "deployedModelId": "emulator-model",
        "model": format!("projects/{project}/locations/{location}/models/emulator-model"),
    }))
    .into_response()
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

/// `:generateContent`, and `:streamGenerateContent` as server-sent events (`?alt=sse`) or as a
/// JSON array of the same responses. The answer echoes the prompt, a word per streamed event;
/// the last event carries `finishReason` and the full `usageMetadata`, as Vertex's does.
pub async fn model(
    State(shared): State<Arc<Shared>>,
    Path((project, location, publisher, model_and_verb)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let (model, streaming) = match model_and_verb.split_once(':') {
        Some((model, "generateContent")) => (model.to_string(), false),
        Some((model, "streamGenerateContent")) => (model.to_string(), true),
        _ => return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response(),
    };
    // Which location was called, for tests of a fall-back to `global` (`calls("vertex@LOCATION")`).
    *shared.world().calls.entry(format!("vertex@{location}")).or_default() += 1;
    if let Some(fault) = vertex_fault(&shared).await {
        return fault;
    }
    let resource = format!("projects/{project}/locations/{location}/publishers/{publisher}/models/{model}");
    if let Err(e) = authorize(&shared, &headers, "aiplatform.endpoints.predict", &resource) {
        return e.into_response();
    }
    let text: Vec<String> = body
        .and_then(|Json(b)| b.get("contents").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.get("parts").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
        .collect();
    if text.is_empty() {
        return ApiError::new(
            400,
            "INVALID_ARGUMENT",
            "Unable to submit request because it has an empty contents field.",
        )
        .into_response();
    }
    let prompt = text.join(" ");
    let words = prompt.split_whitespace().count();
    let usage = json!({"promptTokenCount": words, "candidatesTokenCount": words + 1, "totalTokenCount": 2 * words + 1});
    let reply = format!("echo: {prompt}");
    let (first_byte, between) = shared.world().vertex_latency;
    tokio::time::sleep(first_byte).await;
    let response = |text: &str, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": [{"text": text}]}});
        let mut r = json!({"modelVersion": model, "responseId": "emulator"});
        if last {
            candidate["finishReason"] = "STOP".into();
            r["usageMetadata"] = usage.clone();
        }
        r["candidates"] = json!([candidate]);
        r
    };
    if !streaming {
        return Json(response(&reply, true)).into_response();
    }
    let pieces: Vec<String> = reply.split_inclusive(' ').map(str::to_string).collect();
    let events: Vec<Value> = pieces.iter().enumerate().map(|(i, p)| response(p, i + 1 == pieces.len())).collect();
    if query.get("alt").map(String::as_str) != Some("sse") {
        return Json(Value::Array(events)).into_response();
    }
    // One event at a time, `between` apart: a client sees the first before the last is sent.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(between).await;
            }
            if tx.send(Ok(format!("data: {event}\r\n\r\n"))).await.is_err() {
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
