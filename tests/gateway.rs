//! The Vertex gateway (`/vertex/...`) against the emulator's Vertex AI: Google's GenAI SDK through
//! it unmodified, server-sent events passed on one at a time, 429s retried within the deadline
//! and passed on near it, its guards, token-free mode, and, with `serve` as a process, the audit
//! lines and EMF metrics it writes (and that a prompt never reaches any log line).

use test_support as support;

use std::time::{Duration, Instant};

use google_emulator::Fault;
use hyper::body::Frame;
use serde_json::{json, Value};
use support::broker::RunningBroker;
use support::Fixture;
use vertex_broker::broker::BrokerSettings;

const MODEL: &str = "/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash";

/// A broker in this process whose gateway calls the emulator (audit and metrics off: they go to
/// this process's standard output; the `serve` tests read them).
async fn broker(f: &Fixture, tweak: impl FnOnce(&mut BrokerSettings)) -> RunningBroker {
    let mut settings = BrokerSettings {
        http_timeout: Duration::from_secs(5),
        metrics_namespace: None,
        audit: false,
        ..BrokerSettings::for_secrets(vec![f.secret.clone()])
    };
    settings.vertex.endpoint = Some(f.emu.url());
    tweak(&mut settings);
    RunningBroker::with_settings(settings, f.store.clone()).await
}

fn prompt(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn genai(addr: &str, base_url: &str, args: &[&str]) -> Value {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let mut cmd = support::broker::google_client_at(python, addr);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/genai_client.py")).arg(base_url).args(args);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "google-genai: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_sdk_generates_and_streams_through_the_gateway() {
    let f = Fixture::new("gw-genai").await;
    let b = broker(&f, |_| {}).await;
    f.emu.set_vertex_latency(Duration::ZERO, Duration::from_millis(150));
    let v = genai(&b.addr.to_string(), &b.url("/vertex"), &["ok"]).await;
    assert_eq!(v["text"], "echo: hello from genai");
    assert_eq!(v["usage"], 7);
    let chunks = v["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 6, "a word per event, as the emulator sent them");
    let (first, last) = (chunks[0]["at"].as_f64().unwrap(), chunks[5]["at"].as_f64().unwrap());
    assert!(last - first >= 0.5, "events reach the SDK one at a time ({first:.3} s, then {last:.3} s)");
    assert_eq!(v["stream_usage"], 11);
    assert_eq!(f.emu.calls("vertex"), 2, "one call each, through the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_pass_through_one_at_a_time_with_the_brokers_token() {
    let f = Fixture::new("gw-sse").await;
    let b = broker(&f, |_| {}).await;
    f.emu.set_vertex_latency(Duration::from_millis(50), Duration::from_millis(200));
    let started = Instant::now();
    let url = b.url(&format!("/vertex{MODEL}:streamGenerateContent?alt=sse"));
    // A caller's own Authorization is replaced, never forwarded.
    let resp = post(&url, &prompt("a b c"), &[("authorization", "Bearer not-a-google-token")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-vertex-broker-attempts"], "1");
    let support::SseRead { first, first_at, done_at, events } = support::read_sse(resp, started).await;
    assert!(
        done_at - first_at >= Duration::from_millis(500),
        "the first event reached the client at {first_at:?}, before the emulator sent the last (done {done_at:?})"
    );
    assert!(first.starts_with("data: {") && first.ends_with("}\r\n\r\n"), "one whole event: {first:?}");
    assert_eq!(events.len(), 4);
    assert_eq!(events[3]["usageMetadata"]["totalTokenCount"], 7);

    // The JSON-array form and the v1beta1 path go through as well.
    let url = b.url(&format!("/vertex{}:streamGenerateContent", MODEL.replace("/v1/", "/v1beta1/")));
    let resp = post(&url, &prompt("x y"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap().as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_within_the_deadline_and_passed_on_with_retry_after_near_it() {
    let f = Fixture::new("gw-429").await;
    let b = broker(&f, |_| {}).await;
    let url = b.url(&format!("/vertex{MODEL}:generateContent"));
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 2, status: Some(429), delay_ms: 0 });
    let resp = post(&url, &prompt("retry me"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-vertex-broker-attempts"], "3");
    assert_eq!(resp.json::<Value>().await.unwrap()["candidates"][0]["content"]["parts"][0]["text"], "echo: retry me");
    assert!(f.emu.pending_faults().is_empty());

    // 100 ms left: no time for a backoff (100 ms at least) and another attempt. The 429 is the
    // caller's, at once.
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 2, status: Some(429), delay_ms: 0 });
    let started = Instant::now();
    let resp = post(&url, &prompt("no time"), &[("x-vertex-broker-timeout-ms", "100")]).await;
    assert_eq!(resp.status(), 429);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(resp.headers()["x-vertex-broker-attempts"], "1");
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "Vertex's own body: {body}");
    assert_eq!(f.emu.pending_faults().len(), 1, "the second 429 was never asked for");
    f.emu.clear_faults();

    // 503 is retried too; a 400 is the caller's own mistake and is not.
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(503), delay_ms: 0 });
    assert_eq!(post(&url, &prompt("unavailable once"), &[]).await.headers()["x-vertex-broker-attempts"], "2");
    let resp = post(&url, &json!({"contents": []}), &[]).await;
    assert_eq!((resp.status().as_u16(), resp.headers()["x-vertex-broker-attempts"].to_str().unwrap()), (400, "1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_global_fallback_a_regional_429_is_retried_at_global() {
    let f = Fixture::new("gw-global").await;
    let b = broker(&f, |s| s.vertex.fallback_global = true).await;
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(429), delay_ms: 0 });
    let resp = post(&b.url(&format!("/vertex{MODEL}:generateContent")), &prompt("anywhere"), &[]).await;
    assert_eq!((resp.status().as_u16(), resp.headers()["x-vertex-broker-attempts"].to_str().unwrap()), (200, "2"));
    assert_eq!((f.emu.calls("vertex@us-central1"), f.emu.calls("vertex@global")), (1, 1));
    // A deployed endpoint lives in one region: no fall-back there.
    let endpoint = b.url("/vertex/v1/projects/proj-test/locations/us-central1/endpoints/1:predict");
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(429), delay_ms: 0 });
    let resp = post(&endpoint, &json!({"instances": [{"x": 1}]}), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(f.emu.calls("vertex@global"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_forwards_model_calls_only_from_local_programs() {
    let f = Fixture::new("gw-guard").await;
    let b = broker(&f, |s| s.vertex.max_body = 1024 * 1024).await;
    let url = b.url(&format!("/vertex{MODEL}:generateContent"));
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(post(&url, &prompt("hi"), &[("origin", "http://attacker.example")]).await), 403);
    assert_eq!(status(post(&url, &prompt("hi"), &[("sec-fetch-dest", "empty")]).await), 403);
    assert_eq!(status(post(&url, &prompt("hi"), &[("host", "attacker.example")]).await), 403);
    assert_eq!(status(post(&url, &prompt("hi"), &[("x-forwarded-for", "10.0.0.1")]).await), 403);
    let client = reqwest::Client::new();
    let form = client.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(status(form), 415, "a page's simple cross-origin POST is not JSON");
    let delete = client.delete(b.url("/vertex/v1/projects/p/locations/us-east1/endpoints/1")).send().await.unwrap();
    assert_eq!(status(delete), 405);
    let undeploy =
        post(&b.url("/vertex/v1/projects/p/locations/us-east1/endpoints/1:undeployModel"), &json!({}), &[]).await;
    assert_eq!(status(undeploy), 404);
    let host =
        post(&b.url(&MODEL.replace("us-central1", "evil.example%2F").replace("/v1", "/vertex/v1")), &json!({}), &[])
            .await;
    assert_eq!(status(host), 400, "a location is never a host name");

    // Over the size limit, streamed in chunks with no Content-Length: cut off, 413, Google's shape.
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(Frame::data(bytes::Bytes::from(vec![b' '; 64 * 1024]))));
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(tokio_stream::iter(chunks)));
    let big = client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(big.status(), 413);
    let big: Value = big.json().await.unwrap();
    assert!(big["error"]["message"].as_str().unwrap().contains("VERTEX_BROKER_VERTEX_MAX_BODY_MB"), "{big}");

    // The account by path prefix or header: the default account's email works, another is 404.
    let prefixed = b.url(&format!("/vertex/accounts/{}{MODEL}:generateContent", f.account));
    assert_eq!(status(post(&prefixed, &prompt("as me"), &[]).await), 200);
    assert_eq!(status(post(&url, &prompt("as me"), &[("x-vertex-broker-account", &f.account)]).await), 200);
    let unknown = post(&url, &prompt("hi"), &[("x-vertex-broker-account", "other@p.iam.gserviceaccount.com")]).await;
    assert_eq!(status(unknown), 404);
}

fn serve(f: &Fixture, port: u16, extra: &[(&str, &str)]) -> tokio::process::Child {
    support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), f, port)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url())
        .env("VERTEX_BROKER_LOG", "trace")
        .envs(extra.iter().copied())
        .spawn()
        .unwrap()
}

/// Every metric and dimension an EMF line's `_aws` directive declares is in the line.
fn assert_valid_emf(v: &Value) {
    let aws = &v["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some(), "{v}");
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    for d in directives {
        assert_eq!(d["Namespace"], "VertexBroker");
        for set in d["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(v[name.as_str().unwrap()].is_string(), "dimension {name} has a value: {v}");
            }
        }
        for m in d["Metrics"].as_array().unwrap() {
            let value = &v[m["Name"].as_str().unwrap()];
            assert!(value.is_number() || value.as_array().is_some_and(|a| a.len() <= 100), "metric {m}: {v}");
            assert!(matches!(m["Unit"].as_str(), Some("Count" | "Milliseconds")), "{m}");
        }
    }
}

fn sum(lines: &[Value], metric: &str, filter: impl Fn(&Value) -> bool) -> u64 {
    lines.iter().filter(|l| filter(l)).filter_map(|l| l[metric].as_u64()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_an_audit_line_per_call_and_emf_counts_that_match_and_never_the_prompt() {
    const MARKER: &str = "MARKER-7c1f-do-not-log";
    let f = Fixture::new("gw-serve").await;
    let port = support::free_port();
    let child = serve(&f, port, &[]);
    support::wait_listening(port).await;
    let base = format!("http://127.0.0.1:{port}/vertex{MODEL}");

    f.emu.inject(Fault { endpoint: "vertex".into(), count: 2, status: Some(429), delay_ms: 0 });
    let resp = post(&format!("{base}:generateContent"), &prompt(&format!("{MARKER} one")), &[]).await;
    assert_eq!(resp.status(), 200);
    let answer = resp.text().await.unwrap();
    assert!(answer.contains(MARKER), "the answer echoes the prompt, so both carry the marker");
    let stream =
        post(&format!("{base}:streamGenerateContent?alt=sse"), &prompt(&format!("{MARKER} two three")), &[]).await;
    assert!(stream.text().await.unwrap().contains("usageMetadata"));
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 1, status: Some(429), delay_ms: 0 });
    let limited =
        post(&format!("{base}:generateContent"), &prompt(MARKER), &[("x-vertex-broker-timeout-ms", "100")]).await;
    assert_eq!(limited.status(), 429);
    let token = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{}", support::TOKEN_PATH))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);

    let (out, err) = support::stop_serve(child).await;
    assert!(!out.contains(MARKER) && !err.contains(MARKER), "no log line carries prompt or answer content");
    assert!(!out.contains("ya29.") && !err.contains("ya29."), "nor a token");
    let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let audits: Vec<&Value> = lines.iter().filter(|l| l["event"] == "vertex-broker.audit").collect();
    assert_eq!(audits.len(), 3, "one audit line per gateway call: {out}");
    assert_eq!((audits[0]["status"].as_u64(), audits[0]["attempts"].as_u64()), (Some(200), Some(3)), "{}", audits[0]);
    assert_eq!(audits[0]["model"], "gemini-2.0-flash");
    assert_eq!(audits[0]["method"], "generateContent");
    assert_eq!(audits[0]["account"], f.account.as_str());
    assert_eq!(audits[0]["usage"]["totalTokenCount"], 5);
    assert_eq!(audits[1]["method"], "streamGenerateContent");
    assert_eq!(audits[1]["usage"]["totalTokenCount"], 7, "read from the stream's last event");
    assert_eq!((audits[2]["status"].as_u64(), audits[2]["attempts"].as_u64()), (Some(429), Some(1)));
    for a in &audits {
        assert!(a["requestId"].as_str().is_some_and(|id| id.len() == 36), "{a}");
        assert!(a["latencyMs"].as_f64().is_some_and(|ms| ms > 0.0));
        assert_eq!(a["outcome"], "complete");
    }

    let emf: Vec<Value> = lines.into_iter().filter(|l| l.get("_aws").is_some()).collect();
    assert!(!emf.is_empty(), "metrics flushed when serve stops: {out}");
    emf.iter().for_each(assert_valid_emf);
    let vertex = |l: &Value| l.get("Model").is_some();
    assert_eq!(sum(&emf, "VertexCalls", vertex), 3, "counts equal the calls made");
    assert_eq!(sum(&emf, "VertexCalls", |l| l["StatusClass"] == "2xx"), 2);
    assert_eq!(sum(&emf, "VertexCalls", |l| l["StatusClass"] == "4xx"), 1);
    assert_eq!(sum(&emf, "VertexAttempts", vertex), 5);
    assert_eq!(sum(&emf, "VertexUpstreamErrors", vertex), 3, "three 429s from Vertex");
    assert_eq!(sum(&emf, "TotalTokens", vertex), 12);
    assert_eq!(sum(&emf, "PromptTokens", vertex), 5);
    let latencies: usize = emf.iter().filter(|l| vertex(l)).map(|l| l["VertexLatency"].as_array().unwrap().len()).sum();
    assert_eq!(latencies, 3, "one latency per call");
    assert!(emf
        .iter()
        .filter(|l| vertex(l))
        .all(|l| l["FunctionName"] == "vertex-broker" && l["Model"] == "gemini-2.0-flash"));
    let broker = |l: &Value| l.get("Model").is_none();
    assert_eq!(sum(&emf, "TokenRequests", broker), 1);
    assert_eq!(sum(&emf, "Mints", broker), 1, "one token minted, served to every call");
    assert_eq!(emf.iter().filter(|l| broker(l)).count(), 1, "aggregated: one broker line per flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_free_mode_refuses_tokens_and_the_gateway_still_serves_the_genai_sdk() {
    let f = Fixture::new("gw-tokenfree").await;
    let port = support::free_port();
    let child = serve(&f, port, &[("VERTEX_BROKER_TOKEN_ENDPOINTS", "off")]);
    support::wait_listening(port).await;
    for path in ["token", "identity?audience=https://example.run.app"] {
        let resp = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/computeMetadata/v1/instance/service-accounts/default/{path}"))
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("VERTEX_BROKER_TOKEN_ENDPOINTS=off") && body.contains("/vertex/"), "{body}");
    }
    let addr = format!("127.0.0.1:{port}");
    let v = genai(&addr, &format!("http://{addr}/vertex"), &["ok", "placeholder"]).await;
    assert_eq!(v["text"], "echo: hello from genai");
    assert_eq!(v["stream_usage"], 11);
    let (out, _) = support::stop_serve(child).await;
    assert_eq!(out.lines().filter(|l| l.contains("\"vertex-broker.audit\"")).count(), 2);
}
