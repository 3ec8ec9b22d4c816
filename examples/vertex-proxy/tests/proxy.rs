//! The proxy handler through the broker's gateway (moto + emulator) to the emulator's Vertex
//! endpoints, including each class of Vertex error; 429s and 503s are retried by the gateway.

use test_support as support;

use std::time::Duration;

use google_emulator::Fault;
use serde_json::{json, Value};
use support::broker::RunningBroker;
use support::Fixture;
use vertex_broker::broker::BrokerSettings;
use vertex_proxy::{HttpApiRequest, Proxy, RequestContext};

fn request(body: Value) -> HttpApiRequest {
    HttpApiRequest {
        body: Some(body.to_string()),
        is_base64_encoded: false,
        request_context: RequestContext { request_id: "req-1".into() },
    }
}

async fn setup(prefix: &str) -> (Fixture, RunningBroker) {
    let f = Fixture::new(prefix).await;
    let mut settings =
        BrokerSettings { metrics_namespace: None, audit: false, ..BrokerSettings::for_secrets(vec![f.secret.clone()]) };
    settings.vertex.endpoint = Some(f.emu.url());
    let b = RunningBroker::with_settings(settings, f.store.clone()).await;
    (f, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_vertex_answers_as_small_json() {
    let (f, b) = setup("proxy").await;
    let gemini =
        format!("{}/v1/projects/p/locations/us-central1/publishers/google/models/gemini:generateContent", f.emu.url());
    let proxy = Proxy::new(&b.addr.to_string(), &gemini);
    let r = proxy.handle(request(json!({"prompt": "hello there"})), Duration::from_secs(10)).await;
    assert_eq!(r.status_code, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["text"], "echo: hello there");
    assert_eq!(v["finishReason"], "STOP");

    let predict = format!("{}/v1/projects/p/locations/us-central1/endpoints/42:predict", f.emu.url());
    let proxy = Proxy::new(&b.addr.to_string(), &predict);
    let r = proxy.handle(request(json!({"instances": [{"x": 1}]})), Duration::from_secs(10)).await;
    assert_eq!(r.status_code, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["predictions"][0]["echo"]["x"], 1);

    // Bad input never reaches Vertex.
    let calls = f.emu.calls("vertex");
    let r = proxy
        .handle(HttpApiRequest { body: Some("not json".into()), ..request(json!({})) }, Duration::from_secs(10))
        .await;
    assert_eq!(r.status_code, 400);
    assert_eq!(f.emu.calls("vertex"), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vertex_error_class_becomes_a_clear_api_error() {
    let (f, b) = setup("proxy-errors").await;
    let url = format!("{}/v1/projects/p/locations/us-central1/endpoints/42:predict", f.emu.url());
    let proxy = Proxy::new(&b.addr.to_string(), &url);
    let body = json!({"prompt": "hi"});
    // One 429 or 503 is the gateway's to retry: the function sees the answer.
    for status in [429, 503] {
        f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(status), delay_ms: 0 });
        let r = proxy.handle(request(body.clone()), Duration::from_secs(10)).await;
        assert_eq!(r.status_code, 200, "Vertex {status} once: {}", r.body);
    }
    // Quota exhausted for longer than the function has: 429 with Retry-After, at once.
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 10, status: Some(429), delay_ms: 0 });
    let r = proxy.handle(request(body.clone()), Duration::from_millis(1_000)).await;
    assert_eq!(r.status_code, 429, "{}", r.body);
    assert!(r.body.contains("quota") && r.headers.contains_key("retry-after"), "{}", r.body);
    f.emu.clear_faults();
    for (status, expect, says) in [(500, 502, "HTTP 500"), (401, 502, "401"), (400, 400, "rejected")] {
        f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(status), delay_ms: 0 });
        let r = proxy.handle(request(body.clone()), Duration::from_secs(10)).await;
        assert_eq!(r.status_code, expect, "Vertex {status}: {}", r.body);
        assert!(r.body.contains(says), "Vertex {status}: {}", r.body);
        assert!(!r.body.contains("ya29."), "no token in answers");
    }
    f.emu.set_vertex_denied(&f.account, true);
    let r = proxy.handle(request(body.clone()), Duration::from_secs(10)).await;
    assert_eq!(r.status_code, 502);
    assert!(r.body.contains("roles/aiplatform.user"), "{}", r.body);
    f.emu.set_vertex_denied(&f.account, false);

    // A slow Vertex: the gateway gives up at the function's remaining time less the proxy's
    // margin, and the proxy answers 504 (naming the time it allowed; no wall-clock assertion).
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: None, delay_ms: 3_000 });
    let r = proxy.handle(request(body.clone()), Duration::from_millis(1_600)).await;
    assert_eq!(r.status_code, 504, "{}", r.body);
    assert!(r.body.contains("within 1100 ms"), "1600 ms remaining less the 500 ms margin: {}", r.body);

    // No broker: a clear 503.
    let proxy = Proxy::new("127.0.0.1:1", &url);
    let r = proxy.handle(request(body), Duration::from_secs(10)).await;
    assert_eq!(r.status_code, 503);
    assert!(r.body.contains("layer"), "{}", r.body);
}

#[tokio::test]
async fn outside_lambda_the_binary_says_where_it_runs_instead_of_panicking() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vertex-proxy")).env_clear().output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API is not set") && !stderr.contains("panicked"), "{stderr}");
}
