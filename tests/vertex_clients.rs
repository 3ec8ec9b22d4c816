//! The emulator's Vertex surfaces proven with the real clients, called directly (each with a
//! real emulator token from the broker's metadata endpoint): Google's GenAI SDK over its whole
//! Vertex surface, the OpenAI SDK against Vertex's OpenAI-compatible endpoint, and Anthropic's
//! AnthropicVertex. tests/gateway_clients.rs runs the same clients through the gateway.

use test_support as support;

use std::time::Duration;

use support::broker::RunningBroker;
use vertex_broker::broker::token_cache::CachePolicy;

async fn broker(name: &str) -> (support::Fixture, RunningBroker) {
    let f = support::Fixture::new(name).await;
    let b = RunningBroker::start(f.store.clone(), &[&f.secret], Duration::from_secs(300), CachePolicy::default()).await;
    (f, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_uses_every_vertex_surface_of_the_emulator() {
    let (f, b) = broker("surface-genai").await;
    let v =
        support::broker::vertex_client(&b.addr.to_string(), "genai", &f.emu.url(), "global", "gemini-2.0-flash").await;
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["text"], "echo: hello surface");
    assert_eq!(v["stream"], "echo: one two");
    assert_eq!(v["count"], 3);
    assert_eq!(v["embedding"], serde_json::json!([4.0, 22.0, 0.5]));
    assert_eq!(v["model_name"], "publishers/google/models/gemini-2.0-flash");
    let cache = v["cache_name"].as_str().unwrap();
    assert!(
        cache.starts_with("projects/") && !cache.starts_with("projects/proj-test/"),
        "named by project number: {cache}"
    );
    assert_eq!(v["cache_got"], "surface");
    assert_eq!(v["cache_listed"], serde_json::json!([cache]));
    assert!(v["cache_updated"].is_string());
    assert_eq!(v["cache_after_delete"], serde_json::json!([]));
    assert!(v["job_name"].as_str().unwrap().contains("/batchPredictionJobs/"), "{v}");
    assert_eq!(
        (v["job_state"].as_str(), v["job_after_cancel"].as_str()),
        (Some("JobState.JOB_STATE_PENDING"), Some("JobState.JOB_STATE_CANCELLING"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_completes_and_streams_from_the_emulator() {
    let (f, b) = broker("surface-openai").await;
    let v =
        support::broker::vertex_client(&b.addr.to_string(), "openai", &f.emu.url(), "us-central1", "gemini-2.0-flash")
            .await;
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["text"], "echo: hello openai");
    assert_eq!(v["usage"], 5);
    assert_eq!(v["stream"], "echo: stream me please");
    assert_eq!(v["stream_usage"], 7, "the last chunk carries usage when include_usage asks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_vertex_messages_streams_and_counts_against_the_emulator() {
    let (f, b) = broker("surface-anthropic").await;
    let v = support::broker::vertex_client(
        &b.addr.to_string(),
        "anthropic",
        &f.emu.url(),
        "us-east5",
        "claude-sonnet-4@20250514",
    )
    .await;
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["text"], "echo: hello claude");
    assert_eq!(v["usage"], serde_json::json!([2, 3]));
    assert_eq!(v["stream"], "echo: stream some words");
    assert_eq!(v["stream_usage"], serde_json::json!([3, 4]));
    assert_eq!(v["count"], 3);
    assert_eq!(v["beta_text"], "echo: with a beta");
    assert_eq!(f.emu.last_vertex_header("anthropic-beta").as_deref(), Some("context-1m-2025-08-07"));
}
