//! Vertex's OpenAI-compatible Chat Completions (`endpoints/openapi/chat/completions`): a
//! publisher-qualified `model` (`google/gemini-2.5-flash`) and `messages` are required; the
//! answer echoes the last user message, as one `chat.completion` or, with `"stream": true`, as
//! `chat.completion.chunk` events ending `data: [DONE]`, the usage in a last chunk only when
//! `stream_options.include_usage` asks for it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{admit, message_text, sse, words};
use crate::google_error::ApiError;
use crate::Shared;

fn invalid(message: &str) -> Response {
    ApiError::new(400, "INVALID_ARGUMENT", message).into_response()
}

pub async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let resource = format!("projects/{project}/locations/{location}/endpoints/openapi");
    if let Err(refused) = admit(&shared, &headers, &location, &resource).await {
        return refused;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let Some(model) = body.get("model").and_then(Value::as_str).map(str::to_string) else {
        return invalid("model is required.");
    };
    if model.split_once('/').is_none_or(|(publisher, id)| publisher.is_empty() || id.is_empty()) {
        return invalid("model must name its publisher, e.g. google/gemini-2.5-flash.");
    }
    let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(last) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return invalid("messages must include a user message.");
    };
    let prompt: String = messages.iter().map(message_text).collect::<Vec<_>>().join(" ");
    let reply = format!("echo: {}", message_text(last));
    let (prompt_tokens, completion_tokens) = (words(&prompt), words(&reply));
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let created = chrono::Utc::now().timestamp();
    let (first_byte, between) = shared.world().vertex_latency;
    tokio::time::sleep(first_byte).await;
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return Json(json!({
            "id": "chatcmpl-emulator",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let chunk = |choices: Value, usage: Value| {
        let mut c = json!({"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
        if include_usage {
            c["usage"] = usage;
        }
        format!("data: {c}\n\n")
    };
    let pieces: Vec<&str> = reply.split_inclusive(' ').collect();
    let mut frames: Vec<String> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let delta = if i == 0 { json!({"role": "assistant", "content": p}) } else { json!({"content": p}) };
            let finish = if i + 1 == pieces.len() { json!("stop") } else { Value::Null };
            chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish}]), Value::Null)
        })
        .collect();
    if include_usage {
        frames.push(chunk(json!([]), usage));
    }
    frames.push("data: [DONE]\n\n".to_string());
    sse(frames, between)
}
