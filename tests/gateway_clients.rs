//! Every popular Vertex client through the gateway, unmodified: Google's GenAI SDK over its
//! whole Vertex surface, the OpenAI SDK against the OpenAI-compatible endpoint, Anthropic's
//! AnthropicVertex (with an `anthropic-beta` header arriving upstream), each with the broker in
//! gateway token mode (the SDKs hold a token only the gateway takes); the audit line of every
//! call names the right model and usage and never the prompt; the model allowlist refuses each
//! surface's disallowed model before any upstream call.

use test_support as support;

use serde_json::{json, Value};
use support::broker::RunningBroker;
use support::Fixture;
use vertex_broker::broker::BrokerSettings;

const MARKER: &str = "hello";

/// Runs `surface` through a `serve` process in gateway token mode; what the client saw and the
/// audit lines `serve` wrote.
async fn through_serve(f: &Fixture, surface: &str, location: &str, model: &str) -> (Value, Vec<Value>) {
    let port = support::free_port();
    let child = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), f, port)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url())
        .env("VERTEX_BROKER_TOKEN_ENDPOINTS", "gateway")
        .spawn()
        .unwrap();
    support::wait_listening(port).await;
    let addr = format!("127.0.0.1:{port}");
    let v = support::broker::vertex_client(&addr, surface, &format!("http://{addr}/vertex"), location, model).await;
    assert!(v.get("error").is_none(), "{surface}: {v}");
    let (out, err) = support::stop_serve(child).await;
    assert!(!out.contains("hello ") && !err.contains("hello "), "no prompt in any log line");
    assert!(!out.contains("ya29.") && !out.contains("vertex-broker-gateway."), "nor a token");
    let audits = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["event"] == "vertex-broker.audit")
        .collect();
    (v, audits)
}

/// `(method, model, status, usage.totalTokenCount)` of each audit line.
fn calls(audits: &[Value]) -> Vec<(String, String, u64, Option<u64>)> {
    audits
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
            (s("method"), s("model"), a["status"].as_u64().unwrap(), a["usage"]["totalTokenCount"].as_u64())
        })
        .collect()
}

fn row(method: &str, model: &str, status: u64, usage: Option<u64>) -> (String, String, u64, Option<u64>) {
    (method.to_string(), model.to_string(), status, usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_s_whole_vertex_surface_goes_through_the_gateway() {
    let f = Fixture::new("gwc-genai").await;
    let (v, audits) = through_serve(&f, "genai", "global", "gemini-2.0-flash").await;
    assert_eq!(
        (v["text"].as_str(), v["stream"].as_str(), v["count"].as_u64()),
        (Some("echo: hello surface"), Some("echo: one two"), Some(3))
    );
    assert_eq!(v["model_name"], "publishers/google/models/gemini-2.0-flash", "models.get with no project or location");
    assert_eq!(v["cache_after_delete"], json!([]));
    assert_eq!(v["job_after_cancel"], "JobState.JOB_STATE_CANCELLING");
    let m = "gemini-2.0-flash";
    assert_eq!(
        calls(&audits),
        [
            row("generateContent", m, 200, Some(5)),
            row("streamGenerateContent", m, 200, Some(5)),
            row("countTokens", m, 200, None),
            row("embedContent", "gemini-embedding-001", 200, Some(4)),
            row("get", m, 200, None),
            row("cachedContents.create", m, 200, None),
            row("cachedContents.get", "-", 200, None),
            row("cachedContents.list", "-", 200, None),
            row("cachedContents.patch", "-", 200, None),
            row("cachedContents.delete", "-", 200, None),
            row("cachedContents.list", "-", 200, None),
            row("batchPredictionJobs.create", m, 200, None),
            row("batchPredictionJobs.get", "-", 200, None),
            row("batchPredictionJobs.cancel", "-", 200, None),
            row("batchPredictionJobs.get", "-", 200, None),
            row("predictLongRunning", "veo-3.0-generate-001", 200, None),
            row("fetchPredictOperation", "veo-3.0-generate-001", 200, None),
        ]
    );
    assert!(v["video"].as_str().is_some_and(|u| u.starts_with("gs://")), "{v}");
    assert_eq!(f.emu.calls("vertex@global"), 6, "the model calls went to the SDK's default location");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_completes_and_streams_through_the_gateway() {
    let f = Fixture::new("gwc-openai").await;
    let (v, audits) = through_serve(&f, "openai", "us-central1", "gemini-2.0-flash").await;
    assert_eq!((v["text"].as_str(), v["usage"].as_u64()), (Some("echo: hello openai"), Some(5)));
    assert_eq!((v["stream"].as_str(), v["stream_usage"].as_u64()), (Some("echo: stream me please"), Some(7)));
    assert_eq!(
        calls(&audits),
        [
            row("chat.completions", "gemini-2.0-flash", 200, Some(5)),
            row("chat.completions", "gemini-2.0-flash", 200, Some(7))
        ]
    );
    assert_eq!(audits[1]["usage"]["promptTokenCount"], 3, "prompt_tokens of the stream's last chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_vertex_goes_through_the_gateway_with_its_beta_header() {
    let f = Fixture::new("gwc-anthropic").await;
    let model = "claude-sonnet-4@20250514";
    let (v, audits) = through_serve(&f, "anthropic", "us-east5", model).await;
    assert_eq!(
        (v["text"].as_str(), v["stream"].as_str()),
        (Some("echo: hello claude"), Some("echo: stream some words"))
    );
    assert_eq!((v["count"].as_u64(), v["beta_text"].as_str()), (Some(3), Some("echo: with a beta")));
    assert_eq!(f.emu.last_vertex_header("anthropic-beta").as_deref(), Some("context-1m-2025-08-07"), "reached Vertex");
    assert_eq!(
        calls(&audits),
        [
            row("rawPredict", model, 200, Some(5)),
            row("streamRawPredict", model, 200, Some(7)),
            row("countTokens", model, 200, None),
            row("rawPredict", model, 200, Some(7)),
        ]
    );
    let stream = &audits[1]["usage"];
    assert_eq!(
        (stream["promptTokenCount"].as_u64(), stream["candidatesTokenCount"].as_u64()),
        (Some(3), Some(4)),
        "message_start, then message_delta"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_refuses_each_surface_s_other_models_before_any_upstream_call() {
    let f = Fixture::new("gwc-allow").await;
    let mut settings =
        BrokerSettings { audit: false, metrics_namespace: None, ..BrokerSettings::for_secrets(vec![f.secret.clone()]) };
    settings.vertex.endpoint = Some(f.emu.url());
    settings.vertex.allowed_models =
        vertex_broker::config::AllowedModels::parse("gemini-2.5-flash,anthropic/claude-haiku-*").unwrap();
    let b = RunningBroker::with_settings(settings, f.store.clone()).await;
    let base = "/vertex/v1/projects/proj-test/locations/us-central1";
    let text = json!({"contents": [{"role": "user", "parts": [{"text": MARKER}]}]});
    let claude = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": [{"role": "user", "content": MARKER}]});
    let http = reqwest::Client::new();
    for (path, body) in [
        (format!("{base}/publishers/google/models/gemini-2.0-flash:generateContent"), text.clone()),
        (
            format!("{base}/endpoints/openapi/chat/completions"),
            json!({"model": "google/gemini-2.0-flash", "messages": [{"role": "user", "content": MARKER}]}),
        ),
        (format!("{base}/publishers/anthropic/models/claude-opus-4@20250514:rawPredict"), claude.clone()),
        (
            format!("{base}/publishers/anthropic/models/count-tokens:rawPredict"),
            json!({"model": "claude-opus-4@20250514", "messages": [{"role": "user", "content": MARKER}]}),
        ),
        (
            format!("{base}/cachedContents"),
            json!({"model": "projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.5-pro", "contents": [{"role": "user", "parts": [{"text": MARKER}]}]}),
        ),
        (format!("{base}/batchPredictionJobs"), json!({"model": "publishers/google/models/gemini-2.0-flash"})),
        (format!("{base}/endpoints/123:predict"), json!({"instances": [{}]})),
    ] {
        let resp = http.post(b.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["status"], "PERMISSION_DENIED", "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("VERTEX_BROKER_ALLOWED_MODELS"), "{e}");
    }
    assert_eq!(f.emu.calls("vertex"), 0, "nothing reached Vertex");
    assert_eq!(f.emu.calls("token"), 0, "nor minted a token for them");
    // What the list names goes through.
    let ok = http
        .post(b.url(&format!("{base}/publishers/google/models/gemini-2.5-flash:generateContent")))
        .json(&text)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = http
        .post(b.url(&format!("{base}/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict")))
        .json(&claude)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
