//! Claude on Vertex: Anthropic's Messages API through `:rawPredict` and `:streamRawPredict`
//! under `publishers/anthropic/models/{model}`, and token counting at
//! `publishers/anthropic/models/count-tokens:rawPredict`. As Vertex has it: the model is in the
//! path (a `model` in the body is refused) except for count-tokens, `anthropic_version` is in the
//! body; the answer echoes the last user message, and a stream is Anthropic's events from
//! `message_start` (input tokens) to `message_stop`, the output count in `message_delta`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{message_text, sse, words};
use crate::Shared;

/// Anthropic's error body (Vertex passes the model's own errors through).
fn invalid(message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
    (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The prompt's words: system and every message.
fn prompt_tokens(body: &Value, messages: &[Value]) -> u64 {
    let system = match body.get("system") {
        Some(Value::String(s)) => words(s),
        Some(blocks @ Value::Array(_)) => words(&message_text(&json!({"content": blocks}))),
        _ => 0,
    };
    system + messages.iter().map(|m| words(&message_text(m))).sum::<u64>()
}

pub async fn raw_predict(shared: &Shared, model: &str, verb: &str, body: Value) -> Response {
    let messages = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    if messages.is_empty() {
        return invalid("messages: field required");
    }
    let input_tokens = prompt_tokens(&body, &messages);
    match (model, verb) {
        ("count-tokens", "rawPredict") => {
            if body.get("model").and_then(Value::as_str).is_none_or(str::is_empty) {
                return invalid("model: field required");
            }
            return Json(json!({"input_tokens": input_tokens})).into_response();
        }
        (_, "rawPredict" | "streamRawPredict") => {}
        _ => return crate::google_error::ApiError::new(404, "NOT_FOUND", "Method not found.").into_response(),
    }
    if body.get("model").is_some() {
        return invalid("model: Extra inputs are not permitted (on Vertex AI the model is in the URL)");
    }
    if body.get("anthropic_version").and_then(Value::as_str).is_none_or(str::is_empty) {
        return invalid("anthropic_version: field required");
    }
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return invalid("max_tokens: field required");
    }
    let Some(last) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return invalid("messages: the last message must be from the user");
    };
    let reply = format!("echo: {}", message_text(last));
    let output_tokens = words(&reply);
    let (first_byte, between) = shared.world().vertex_latency;
    tokio::time::sleep(first_byte).await;
    let stream = verb == "streamRawPredict" || body.get("stream").and_then(Value::as_bool) == Some(true);
    if !stream {
        return Json(json!({
            "id": "msg_emulator",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_emulator", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for piece in reply.split_inclusive(' ') {
        let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
        frames.push(event("content_block_delta", delta));
    }
    frames.push(event("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    frames.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
    ));
    frames.push(event("message_stop", json!({"type": "message_stop"})));
    sse(frames, between)
}
