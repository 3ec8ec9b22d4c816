//! The broker through its HTTP interface: the metadata protocol, its guards, the cache rules,
//! rotation while serving, upstream outages, and Google's own Python, Node and Go clients.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use google_emulator::Fault;
use support::broker::RunningBroker;
use support::failing_store::{FailingStore, Op};
use support::Fixture;
use vertex_broker::broker::token_cache::CachePolicy;

use support::TOKEN_PATH as TOKEN;
const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";

async fn fixture_and_broker(prefix: &str, ttl: Duration, cache: CachePolicy) -> (Fixture, RunningBroker) {
    let f = Fixture::new(prefix).await;
    let b = RunningBroker::start(f.store.clone(), &[&f.secret], ttl, cache).await;
    (f, b)
}

/// Calls the emulator's Vertex `:predict` with `token`; returns the HTTP status.
async fn predict(f: &Fixture, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/projects/proj-test/locations/us-central1/endpoints/123:predict", f.emu.url()))
        .bearer_auth(token)
        .json(&serde_json::json!({"instances": [{"prompt": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn token_of(resp: reqwest::Response) -> (String, i64) {
    let v: serde_json::Value = resp.json().await.unwrap();
    (v["access_token"].as_str().unwrap().to_string(), v["expires_in"].as_i64().unwrap())
}

#[tokio::test]
async fn serves_the_metadata_protocol_with_exact_content_types() {
    let (f, b) = fixture_and_broker("meta", Duration::from_secs(300), CachePolicy::default()).await;

    let r = b.get("/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["metadata-flavor"], "Google");

    let r = b.get(TOKEN).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["metadata-flavor"], "Google");
    let (token, expires_in) = token_of(r).await;
    assert!(expires_in > 3000 && expires_in < 3600, "{expires_in}");
    assert_eq!(predict(&f, &token).await, 200, "the emulator's Vertex endpoint accepts the token");

    for (path, body) in [
        ("/computeMetadata/v1/project/project-id", "proj-test".to_string()),
        ("/computeMetadata/v1/instance/service-accounts/default/email", f.account.clone()),
        ("/computeMetadata/v1/universe/universe-domain", "googleapis.com".to_string()),
        ("/computeMetadata/v1/instance/service-accounts/default/aliases", "default".to_string()),
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"), "{path}");
        assert_eq!(r.text().await.unwrap(), body, "{path}");
    }

    let r = b.get("/computeMetadata/v1/instance/service-accounts/default/?recursive=true").await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["email"], f.account.as_str());
    assert_eq!(v["aliases"][0], "default");
    assert_eq!(v["scopes"][0], CLOUD);

    let list = b.get("/computeMetadata/v1/instance/service-accounts/").await.text().await.unwrap();
    assert_eq!(list, format!("default/\n{}/\n", f.account));

    // By email, like some client versions ask.
    let r = b.get(&format!("/computeMetadata/v1/instance/service-accounts/{}/token", f.account)).await;
    assert_eq!(r.status(), 200);

    // Scope lists: comma or space separated, encoded or not, any order: one cache slot.
    let minted = f.emu.counters(&f.account).access_tokens;
    let two = "https://www.googleapis.com/auth/userinfo.email";
    for q in [
        format!("{CLOUD},{two}"),
        format!("{two}%20{CLOUD}"),
        format!("{}%2C{}", urlencode(two), urlencode(CLOUD)),
        format!("{two}+{CLOUD}"),
    ] {
        let r = b.get(&format!("{TOKEN}?scopes={q}")).await;
        assert_eq!(r.status(), 200, "{q}");
    }
    assert_eq!(f.emu.counters(&f.account).access_tokens, minted + 1, "one mint for one scope set");

    // ID token for an audience, un-encoded as Node sends it or encoded as Python does.
    for q in ["audience=https://example.run.app&format=full", "audience=https%3A%2F%2Fexample.run.app"] {
        let r = b.get(&format!("/computeMetadata/v1/instance/service-accounts/default/identity?{q}")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let jwt = r.text().await.unwrap();
        let claims = jwt_claims(&jwt);
        assert_eq!(claims["aud"], "https://example.run.app");
        assert_eq!(claims["email"], f.account.as_str());
    }
    assert_eq!(f.emu.counters(&f.account).id_tokens, 1, "the second ID token request was a cache hit");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn guards_refuse_what_a_metadata_server_must_refuse() {
    let (f, b) = fixture_and_broker("guards", Duration::from_secs(300), CachePolicy::default()).await;
    let http = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("no Metadata-Flavor", http.get(b.url(TOKEN)), 403, "Metadata-Flavor"),
        ("wrong Metadata-Flavor", http.get(b.url(TOKEN)).header("Metadata-Flavor", "google"), 403, "Metadata-Flavor"),
        (
            "X-Forwarded-For",
            http.get(b.url(TOKEN)).header("Metadata-Flavor", "Google").header("X-Forwarded-For", "10.0.0.1"),
            403,
            "x-forwarded-for",
        ),
        ("POST", http.post(b.url(TOKEN)).header("Metadata-Flavor", "Google"), 405, "GET"),
        ("PUT", http.put(b.url(TOKEN)).header("Metadata-Flavor", "Google"), 405, "GET"),
        (
            "long query",
            http.get(format!("{}?scopes={}", b.url(TOKEN), "a".repeat(5000))).header("Metadata-Flavor", "Google"),
            414,
            "longer than",
        ),
        (
            "unknown path",
            http.get(b.url("/computeMetadata/v1/instance/hostname")).header("Metadata-Flavor", "Google"),
            404,
            "not a metadata path",
        ),
        (
            "unknown account",
            http.get(b.url("/computeMetadata/v1/instance/service-accounts/nobody@x.iam.gserviceaccount.com/token"))
                .header("Metadata-Flavor", "Google"),
            404,
            "no service account",
        ),
        (
            "identity without audience",
            http.get(b.url("/computeMetadata/v1/instance/service-accounts/default/identity"))
                .header("Metadata-Flavor", "Google"),
            400,
            "audience",
        ),
    ];
    for (name, req, status, says) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_eq!(r.headers()["metadata-flavor"], "Google", "{name}");
        if status == 405 {
            assert_eq!(r.headers()["allow"], "GET");
        }
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{name}: {body}");
    }
    let r = http.get(b.url(TOKEN)).header("Metadata-Flavor", "Google").header("X-Big", "b".repeat(20_000)).send().await;
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), 431, "oversized headers"),
        Err(e) => panic!("oversized headers should get 431, got {e}"),
    }
    assert_eq!(f.emu.counters(&f.account).access_tokens, 0, "no refused request minted anything");
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_is_not_read_once_per_request() {
    let f = Fixture::new("unreadable").await;
    let store = Arc::new(FailingStore::new(f.store.clone(), Op::Put, 0));
    let b = RunningBroker::start(store.clone(), &["no-such-secret"], Duration::from_secs(300), CachePolicy::default())
        .await;
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let r = b.get(TOKEN).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
    }
    let seconds = started.elapsed().as_secs() as usize;
    assert!(store.reads() <= seconds + 2, "{} secret reads for 50 requests in {seconds} s", store.reads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_first_requests_cause_exactly_one_mint() {
    let (f, b) = fixture_and_broker("herd", Duration::from_secs(300), CachePolicy::default()).await;
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move { token_of(b.get(TOKEN).await).await.0 }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(f.emu.counters(&f.account).access_tokens, 1);
    assert_eq!(f.emu.calls("token"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_outage_serves_the_cached_token_then_503_then_recovers() {
    // Tokens live 3599 s at the emulator: with these margins one is due for refresh after ~1 s
    // and no longer servable after ~4 s, so the test sees every phase quickly.
    let cache = CachePolicy {
        refresh_ahead: Duration::from_secs(3598),
        min_life: Duration::from_secs(3595),
        backoff_first: Duration::from_millis(200),
        backoff_max: Duration::from_millis(400),
    };
    let (f, b) = fixture_and_broker("outage", Duration::from_secs(300), cache).await;
    let (first, _) = token_of(b.get(TOKEN).await).await;
    f.emu.inject(Fault { endpoint: "token".into(), count: 10_000, status: Some(503), delay_ms: 0 });

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = b.get(TOKEN).await;
    assert_eq!(r.status(), 200, "the cached token still has life: served through the outage");
    assert_eq!(token_of(r).await.0, first);

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = b.get(TOKEN).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body = r.text().await.unwrap();
    assert!(body.contains("temporarily_unavailable") && body.contains("Retrying upstream"), "{body}");
    let key = f.key_at("AWSCURRENT").await.unwrap();
    assert!(!body.contains(key.private_key_id()), "a 503 names no key id: {body}");
    assert!(!body.contains(&f.emu.token_uri()), "nor the token endpoint: {body}");
    assert!(!body.contains(&f.account), "nor the account: {body}");
    let status: serde_json::Value = b.get("/vertex-broker/v1/status").await.json().await.unwrap();
    assert!(status["accounts"][0]["counters"]["upstream_errors"].as_u64().unwrap() >= 1);

    f.emu.clear_faults();
    let mut recovered = None;
    for _ in 0..20 {
        let r = b.get(TOKEN).await;
        if r.status() == 200 {
            recovered = Some(token_of(r).await.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = recovered.expect("the broker recovers when Google does");
    assert_ne!(token, first);
    assert_eq!(predict(&f, &token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_serving_through_rotations_and_mints_from_the_new_key_after_the_ttl() {
    let (f, b) = fixture_and_broker("rotating", Duration::from_secs(1), CachePolicy::default()).await;
    let b = Arc::new(b);
    let first_key = f.key_at("AWSCURRENT").await.unwrap().private_key_id().to_string();
    let (token, _) = token_of(b.get(TOKEN).await).await;
    assert_eq!(f.emu.token_key_id(&token).as_deref(), Some(first_key.as_str()));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (b, stop) = (b.clone(), stop.clone());
        let emu_url = f.emu.url();
        tokio::spawn(async move {
            let mut calls = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = b.get(TOKEN).await;
                assert_eq!(r.status(), 200, "token request {calls} failed during rotation");
                let (token, _) = token_of(r).await;
                let status = reqwest::Client::new()
                    .post(format!("{emu_url}/v1/projects/p/locations/l/endpoints/1:predict"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"instances": [1]}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200, "Vertex call {calls} failed during rotation");
                calls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            calls
        })
    };
    for _ in 0..3 {
        f.rotate().await;
    }
    let new_key = f.key_at("AWSCURRENT").await.unwrap().private_key_id().to_string();
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the secret TTL
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = client.await.unwrap();
    assert!(calls > 10, "the client loop ran ({calls} calls)");

    let mut latest = String::new();
    for _ in 0..50 {
        latest = token_of(b.get(TOKEN).await).await.0;
        if f.emu.token_key_id(&latest).as_deref() == Some(new_key.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(f.emu.token_key_id(&latest).as_deref(), Some(new_key.as_str()), "minted from the new key");
    let status: serde_json::Value = b.get("/vertex-broker/v1/status").await.json().await.unwrap();
    assert_eq!(status["accounts"][0]["secret_version"], f.version_with("AWSCURRENT").await.unwrap().as_str());
    assert_eq!(
        (&status["accounts"][0]["source"], &status["accounts"][0]["secret_id"]),
        (&serde_json::json!("rotated key"), &serde_json::json!(f.secret))
    );
}

#[tokio::test]
async fn status_reports_what_is_in_use_and_no_response_holds_key_material() {
    let (f, b) = fixture_and_broker("status", Duration::from_secs(300), CachePolicy::default()).await;
    let (token, _) = token_of(b.get(TOKEN).await).await;
    let key = f.key_at("AWSCURRENT").await.unwrap();

    let r = reqwest::Client::new().get(b.url("/vertex-broker/v1/status")).send().await.unwrap();
    assert_eq!(r.status(), 403, "the status endpoint has the same guard");
    let text = b.get("/vertex-broker/v1/status").await.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let a = &v["accounts"][0];
    assert_eq!(a["alias"], "default");
    assert_eq!(a["email"], f.account.as_str());
    assert_eq!(a["secret_version"], f.version_with("AWSCURRENT").await.unwrap().as_str());
    assert_eq!(a["access_tokens"]["slots"], 1);
    assert!(a["access_tokens"]["recent"][0]["token"]["expires_in"].as_i64().unwrap() > 3000);
    assert_eq!(a["counters"]["mints"], 1);
    assert!(!text.contains(&token), "the status shows no token");
    assert!(!text.contains("PRIVATE KEY"));
    assert!(!text.contains(key.private_key_id()), "the status names no key id");
    assert!(!text.contains(key.token_uri()), "nor the token endpoint");

    // Other clients' audiences appear cut to their origin, and only the most recent few.
    // (More than VERTEX_BROKER_MINT_RATE new audiences a second: the client waits as told.)
    for i in 0..12 {
        let path = format!(
            "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://svc.example/private-{i}"
        );
        let mut r = b.get(&path).await;
        while r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait)).await;
            r = b.get(&path).await;
        }
        assert_eq!(r.status(), 200);
    }
    let text = b.get("/vertex-broker/v1/status").await.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = &v["accounts"][0]["id_tokens"];
    assert_eq!(ids["slots"], 12);
    assert_eq!(ids["recent"].as_array().unwrap().len(), vertex_broker::broker::status::LISTED_SLOTS);
    assert_eq!(ids["recent"][0]["key"], "https://svc.example…");
    assert!(!text.contains("private-"), "{text}");

    // No path answers with key material.
    for path in [
        "/",
        "/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
        "/computeMetadata/v1/instance/service-accounts/default/",
        "/computeMetadata/v1/instance/service-accounts/",
        "/computeMetadata/v1/project/project-id",
    ] {
        let body = b.get(path).await.text().await.unwrap();
        assert!(!body.contains("PRIVATE KEY") && !body.contains("private_key"), "{path}");
    }
}

/// Runs a client, then checks what every client must have got: the broker's account and project,
/// an access token the emulator's Vertex accepts, and an ID token for the audience.
async fn check_client_output(f: &Fixture, mut cmd: tokio::process::Command, name: &str) -> serde_json::Value {
    let out = cmd.output().await.unwrap_or_else(|e| panic!("{name}: {e} (the test command installs it)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["project"], "proj-test", "{name}");
    assert_eq!(v["email"], f.account.as_str(), "{name}");
    let token = v["token"].as_str().unwrap();
    assert_eq!(predict(f, token).await, 200, "{name}: the emulator's Vertex :predict accepts the token");
    let claims = jwt_claims(v["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], AUDIENCE, "{name}");
    assert_eq!(claims["email"], f.account.as_str(), "{name}");
    v
}

const AUDIENCE: &str = "https://example.run.app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auth_python_works_unmodified_against_the_broker() {
    let (f, b) = fixture_and_broker("python", Duration::from_secs(300), CachePolicy::default()).await;
    let mut cmd = support::broker::google_client(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"), &b);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/google_auth_client.py")).arg(AUDIENCE);
    let v = check_client_output(&f, cmd, "python google-auth").await;
    assert_eq!(v["kind"], "google.auth.compute_engine.credentials.Credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auth_library_for_node_works_unmodified_against_the_broker() {
    let (f, b) = fixture_and_broker("node", Duration::from_secs(300), CachePolicy::default()).await;
    let mut cmd = support::broker::google_client("node", &b);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/google_auth_client.js")).arg(AUDIENCE);
    let v = check_client_output(&f, cmd, "node google-auth-library").await;
    assert_eq!(v["kind"], "Compute", "GoogleAuth chose its metadata-server client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golang_oauth2_google_works_unmodified_against_the_broker() {
    let (f, b) = fixture_and_broker("go", Duration::from_secs(300), CachePolicy::default()).await;
    let binary = support::broker::go_client();
    let mut cmd = support::broker::google_client(binary.to_str().unwrap(), &b);
    cmd.arg(AUDIENCE);
    let v = check_client_output(&f, cmd, "go x/oauth2/google").await;
    assert_eq!(v["token_type"], "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auth_library_for_java_works_unmodified_against_the_broker() {
    let (f, b) = fixture_and_broker("java", Duration::from_secs(300), CachePolicy::default()).await;
    let v = check_client_output(&f, support::broker::java_client(&b.addr.to_string(), AUDIENCE), "java").await;
    assert_eq!(v["kind"], "ComputeEngineCredentials", "getApplicationDefault chose the metadata server");
    let left = v["expiry_ms"].as_i64().unwrap() - chrono::Utc::now().timestamp_millis();
    assert!(left > 3_000_000, "the token's lifetime reached the library: {left} ms");
    // It found the account through the recursive service-accounts listing.
    let listing: serde_json::Value =
        b.get("/computeMetadata/v1/instance/service-accounts/?recursive=true").await.json().await.unwrap();
    assert_eq!(listing["default"]["email"], f.account.as_str());
    assert_eq!(listing[f.account.as_str()]["aliases"], serde_json::json!(["default"]));
}
