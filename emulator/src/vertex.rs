//! Vertex AI `:predict` and `:generateContent`, answering deterministically to emulator tokens only.

use std::sync::Arc;

use axum::extract::{Path, State};
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
    if let Some(err) = shared.fault("vertex").await {
        return err.into_response();
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

pub async fn model(
    State(shared): State<Arc<Shared>>,
    Path((project, location, publisher, model_and_verb)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some((model, "generateContent")) = model_and_verb.split_once(':') else {
        return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response();
    };
    if let Some(err) = shared.fault("vertex").await {
        return err.into_response();
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
    Json(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": format!("echo: {prompt}")}]},
            "finishReason": "STOP"
        }],
        "usageMetadata": {"promptTokenCount": words, "candidatesTokenCount": words + 1, "totalTokenCount": 2 * words + 1},
        "modelVersion": model,
    }))
    .into_response()
}
