//! The emulator's Vertex AI as Google's GenAI SDK sees it: `v1beta1` paths, `generateContent`,
//! `streamGenerateContent` with server-sent events arriving one at a time, `usageMetadata`, and
//! Vertex's 429 body, with the SDK's credentials served by the broker.

use test_support as support;

use std::time::{Duration, Instant};

use google_emulator::Fault;
use support::broker::RunningBroker;
use vertex_broker::broker::token_cache::CachePolicy;
use vertex_broker::google::token::TokenClient;

async fn genai(b: &RunningBroker, base_url: &str, mode: &str) -> serde_json::Value {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let mut cmd = support::broker::google_client(python, b);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/genai_client.py")).args([base_url, mode]);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "google-genai: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_generates_and_streams_from_the_emulator_with_broker_credentials() {
    let f = support::Fixture::new("genai").await;
    let b = RunningBroker::start(f.store.clone(), &[&f.secret], Duration::from_secs(300), CachePolicy::default()).await;
    f.emu.set_vertex_latency(Duration::ZERO, Duration::from_millis(150));
    let v = genai(&b, &f.emu.url(), "ok").await;
    assert_eq!(v["text"], "echo: hello from genai");
    assert_eq!(v["usage"], 7, "usageMetadata reaches the SDK");
    let chunks = v["chunks"].as_array().unwrap();
    let text: String = chunks.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(text, "echo: one two three four five");
    assert_eq!(chunks.len(), 6, "a word per event");
    let (first, last) = (chunks[0]["at"].as_f64().unwrap(), chunks[5]["at"].as_f64().unwrap());
    assert!(last - first >= 0.5, "events arrive one at a time ({first:.3} s, then {last:.3} s)");
    assert_eq!(v["stream_usage"], 11, "the last event carries the full usageMetadata");

    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(429), delay_ms: 0 });
    let v = genai(&b, &f.emu.url(), "error").await;
    assert_eq!(v["error"]["code"], 429, "{v}");
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("Resource exhausted"), "{v}");
}

#[tokio::test]
async fn server_sent_events_are_sent_as_they_are_made_in_vertex_framing() {
    let f = support::Fixture::new("sse").await;
    let key = f.key_at("AWSCURRENT").await.unwrap();
    let cloud_platform = ["https://www.googleapis.com/auth/cloud-platform".to_string()];
    let token = TokenClient::new(Duration::from_secs(5)).access_token(&key, &cloud_platform).await.unwrap();
    let token = token.bearer.expose().to_string();
    f.emu.set_vertex_latency(Duration::from_millis(50), Duration::from_millis(200));
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/v1/projects/proj-test/locations/global/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            f.emu.url()
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "a b c"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let support::SseRead { first, first_at, done_at, events } = support::read_sse(resp, started).await;
    assert!(done_at - first_at >= Duration::from_millis(500), "the first event came {first_at:?}, the end {done_at:?}");
    assert!(first.starts_with("data: {") && first.ends_with("}\r\n\r\n"), "{first:?}");
    assert_eq!(events.len(), 4);
    assert!(events[..3].iter().all(|e| e.get("usageMetadata").is_none()));
    assert_eq!(events[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(events[3]["usageMetadata"]["totalTokenCount"], 7);
}
