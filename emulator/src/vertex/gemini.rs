//! Gemini's model calls: `:generateContent`, `:streamGenerateContent` (SSE with `?alt=sse`, else
//! a JSON array), `:countTokens`, `:computeTokens`, `:embedContent`, embeddings through
//! `:predict`, Veo's `:predictLongRunning` and `:fetchPredictOperation` (the video is "ready" at
//! once), and a deployed endpoint's `:predict`. Answers echo the prompt, a word per streamed
//! event; the last event carries `finishReason` and the full `usageMetadata`, as Vertex's does.
//! Claude's `:rawPredict` under `publishers/anthropic` goes to [`super::anthropic`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{admit, sse, words};
use crate::google_error::ApiError;
use crate::Shared;

fn not_found() -> Response {
    ApiError::new(404, "NOT_FOUND", "Method not found.").into_response()
}

fn invalid(message: &str) -> Response {
    ApiError::new(400, "INVALID_ARGUMENT", message).into_response()
}

pub async fn endpoint(
    State(shared): State<Arc<Shared>>,
    Path((project, location, endpoint_and_verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some((endpoint, "predict")) = endpoint_and_verb.split_once(':') else { return not_found() };
    let resource = format!("projects/{project}/locations/{location}/endpoints/{endpoint}");
    if let Err(refused) = admit(&shared, &headers, &location, &resource).await {
        return refused;
    }
    let instances = body.and_then(|Json(b)| b.get("instances").and_then(Value::as_array).cloned());
    let Some(instances) = instances.filter(|i| !i.is_empty()) else {
        return invalid("Invalid JSON payload: \"instances\" must be a non-empty list.");
    };
    let predictions: Vec<Value> = instances.into_iter().map(|i| json!({ "echo": i })).collect();
    Json(json!({
        "predictions": predictions,
        "deployedModelId": "emulator-model",
        "model": format!("projects/{project}/locations/{location}/models/emulator-model"),
    }))
    .into_response()
}

/// The text of `contents[].parts[].text`, or of one `content` (embedContent).
fn text_of(body: &Value) -> String {
    let contents: Vec<Value> = match (body.get("contents"), body.get("content")) {
        (Some(Value::Array(c)), _) => c.clone(),
        (_, Some(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let parts = contents.iter().flat_map(|c| c.get("parts").and_then(Value::as_array).cloned().unwrap_or_default());
    parts.filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string)).collect::<Vec<_>>().join(" ")
}

/// A deterministic embedding of `text`.
fn embedding(text: &str) -> Value {
    json!([words(text) as f64, text.len() as f64, 0.5])
}

pub async fn model(
    State(shared): State<Arc<Shared>>,
    Path((project, location, publisher, model_and_verb)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some((model, verb)) = model_and_verb.split_once(':') else { return not_found() };
    let resource = format!("projects/{project}/locations/{location}/publishers/{publisher}/models/{model}");
    if let Err(refused) = admit(&shared, &headers, &location, &resource).await {
        return refused;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    if publisher == "anthropic" {
        return super::anthropic::raw_predict(&shared, model, verb, body).await;
    }
    let text = text_of(&body);
    let n = words(&text);
    match verb {
        "generateContent" | "streamGenerateContent" => {}
        "countTokens" | "computeTokens" if text.is_empty() => return invalid("contents must not be empty."),
        "countTokens" => return Json(json!({"totalTokens": n, "totalBillableCharacters": text.len()})).into_response(),
        "computeTokens" => {
            let tokens: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            return Json(json!({"tokensInfo": [{"tokens": tokens, "role": "user"}]})).into_response();
        }
        "embedContent" if text.is_empty() => return invalid("content must not be empty."),
        "embedContent" => {
            return Json(json!({
                "embedding": {"values": embedding(&text)},
                "usageMetadata": {"promptTokenCount": n, "totalTokenCount": n},
                "truncated": false,
            }))
            .into_response()
        }
        "predict" => {
            let instances = body.get("instances").and_then(Value::as_array).cloned().unwrap_or_default();
            let contents: Option<Vec<&str>> =
                instances.iter().map(|i| i.get("content").and_then(Value::as_str)).collect();
            let Some(contents) = contents.filter(|c| !c.is_empty()) else {
                return invalid("Invalid JSON payload: \"instances\" must be a non-empty list of {\"content\": ...}.");
            };
            let predictions: Vec<Value> = contents
                .iter()
                .map(|c| json!({"embeddings": {"values": embedding(c), "statistics": {"token_count": words(c), "truncated": false}}}))
                .collect();
            return Json(json!({"predictions": predictions})).into_response();
        }
        "predictLongRunning" => {
            if body.pointer("/instances/0/prompt").and_then(Value::as_str).is_none_or(str::is_empty) {
                return invalid("instances[0].prompt is required.");
            }
            let mut world = shared.world();
            world.vertex.next_id += 1;
            let name = format!("{resource}/operations/{:016x}", world.vertex.next_id);
            let video =
                json!({"gcsUri": format!("gs://emulator/{:016x}.mp4", world.vertex.next_id), "mimeType": "video/mp4"});
            let done = json!({"name": name, "done": true, "response": {
                "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse", "videos": [video]}});
            world.vertex.operations.insert(name.clone(), done);
            return Json(json!({"name": name})).into_response();
        }
        "fetchPredictOperation" => {
            let name = body.get("operationName").and_then(Value::as_str).unwrap_or_default();
            return match shared.world().vertex.operations.get(name) {
                Some(op) => Json(op.clone()).into_response(),
                None => ApiError::new(404, "NOT_FOUND", format!("Operation {name} not found.")).into_response(),
            };
        }
        _ => return not_found(),
    }
    if text.is_empty() {
        return invalid("Unable to submit request because it has an empty contents field.");
    }
    let usage = json!({"promptTokenCount": n, "candidatesTokenCount": n + 1, "totalTokenCount": 2 * n + 1});
    let reply = format!("echo: {text}");
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
    if verb == "generateContent" {
        return Json(response(&reply, true)).into_response();
    }
    let pieces: Vec<String> = reply.split_inclusive(' ').map(str::to_string).collect();
    let events: Vec<Value> = pieces.iter().enumerate().map(|(i, p)| response(p, i + 1 == pieces.len())).collect();
    if query.get("alt").map(String::as_str) != Some("sse") {
        return Json(Value::Array(events)).into_response();
    }
    sse(events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect(), between)
}
