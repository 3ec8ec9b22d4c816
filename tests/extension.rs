//! The built `vertex-broker-extension` through an Extensions API: register, serve during INIT,
//! INVOKE, SHUTDOWN within its deadline; configuration errors reach /init/error. The test command
//! runs them twice: on the binary cargo built, and on the packaged arm64 one under qemu-user.

use test_support as support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use google_emulator::Fault;
use serde_json::json;
use support::extensions_api::ExtensionsApi;
use support::Fixture;
use tokio::io::AsyncBufReadExt;

/// The extension under test (VERTEX_BROKER_TEST_EXTENSION names another, see lambda_binary).
fn extension_binary() -> tokio::process::Command {
    support::lambda_binary("VERTEX_BROKER_TEST_EXTENSION", env!("CARGO_BIN_EXE_vertex-broker-extension"))
}

fn extension(api: &ExtensionsApi, port: u16) -> tokio::process::Command {
    let mut cmd = extension_binary();
    support::clean_env(cmd.as_std_mut());
    cmd.env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .envs(support::aws_env())
        .env("VERTEX_BROKER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn get_token(port: u16) -> Result<serde_json::Value, reqwest::Error> {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{}", support::TOKEN_PATH))
        .header("Metadata-Flavor", "Google")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_registers_serves_during_init_handles_invoke_and_stops_on_shutdown() {
    let f = Fixture::new("extension").await;
    let api = ExtensionsApi::start().await;
    let port = support::free_port();
    let started = Instant::now();
    let mut child = extension(&api, port).env("VERTEX_BROKER_SECRET_ID", &f.secret).spawn().unwrap();

    let seen = api.wait_for(Duration::from_secs(10), |s| !s.registered.is_empty()).await;
    let (name, body) = &seen.registered[0];
    assert_eq!(name, "vertex-broker-extension");
    assert_eq!(body["events"], json!(["INVOKE", "SHUTDOWN"]));

    // INIT phase: no event has been delivered yet, and function init code gets a token.
    let token = get_token(port).await.expect("served during INIT");
    let ready = started.elapsed();
    assert!(token["expires_in"].as_i64().unwrap() > 3000);
    assert_eq!(api.seen().polls, 1, "still waiting for its first event");
    eprintln!("exec to first token: {ready:?}");

    // INVOKE: handled, then the extension asks for the next event.
    let deadline =
        (std::time::SystemTime::now() + Duration::from_secs(30)).duration_since(std::time::UNIX_EPOCH).unwrap();
    api.send(json!({"eventType": "INVOKE", "deadlineMs": deadline.as_millis() as u64, "requestId": "r1",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn",
        "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-0-0"}}));
    let seen = api.wait_for(Duration::from_secs(10), |s| s.polls >= 2).await;
    assert_eq!(seen.polls, 2, "INVOKE handled");
    assert!(get_token(port).await.is_ok());
    assert_eq!(f.emu.counters(&f.account).access_tokens, 1, "warm-up mint served every request");

    // SHUTDOWN: exits well within Lambda's 2 s for external extensions.
    let asked = Instant::now();
    api.send(json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}));
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await.expect("stopped within 2 s").unwrap();
    eprintln!("SHUTDOWN to exit: {:?}", asked.elapsed());
    assert!(status.success(), "{status:?}");
    assert!(get_token(port).await.is_err(), "the listener is gone");
}

#[tokio::test]
async fn a_missing_secret_id_reaches_init_error_naming_the_variable() {
    let api = ExtensionsApi::start().await;
    let mut child = extension(&api, support::free_port()).spawn().unwrap();
    let seen = api.wait_for(Duration::from_secs(10), |s| !s.init_errors.is_empty()).await;
    let (kind, body) = seen.init_errors.first().expect("an init error was reported");
    assert_eq!(kind, "Extension.ConfigInvalid");
    assert!(body["errorMessage"].as_str().unwrap().contains("VERTEX_BROKER_SECRET_ID"), "{body}");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn outside_lambda_it_says_where_it_belongs_instead_of_panicking() {
    let mut cmd = extension_binary();
    support::clean_env(cmd.as_std_mut()).env("VERTEX_BROKER_SECRET_ID", "s");
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API is not set") && stderr.contains("vertex-broker serve"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_variable_reaches_init_error_naming_it() {
    let api = ExtensionsApi::start().await;
    let mut child = extension(&api, support::free_port())
        .env("VERTEX_BROKER_SECRET_ID", "s")
        .env("VERTEX_BROKER_SECRET_TTL", "often")
        .spawn()
        .unwrap();
    let seen = api.wait_for(Duration::from_secs(10), |s| !s.init_errors.is_empty()).await;
    let (_, body) = seen.init_errors.first().expect("an init error was reported");
    assert!(body["errorMessage"].as_str().unwrap().contains("VERTEX_BROKER_SECRET_TTL"), "{body}");
    let _ = child.wait().await;
}

#[tokio::test]
async fn the_exec_wrapper_points_google_libraries_at_the_broker_and_runs_the_runtime() {
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/layer/vertex-broker-wrapper");
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(wrapper);
        support::clean_env(&mut cmd);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd
            .args(["sh", "-c", "echo \"$GCE_METADATA_HOST $GCE_METADATA_IP $1 ${GOOGLE_VERTEX_BASE_URL-unset} ${ANTHROPIC_VERTEX_BASE_URL-unset}\"", "runtime", "arg1"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let sdks = |port: u16| format!("http://127.0.0.1:{port}/vertex/ http://127.0.0.1:{port}/vertex/v1");
    assert_eq!(run(&[]), format!("127.0.0.1:2775 127.0.0.1:2775 arg1 {}\n", sdks(2775)));
    assert_eq!(run(&[("VERTEX_BROKER_PORT", "3001")]), format!("127.0.0.1:3001 127.0.0.1:3001 arg1 {}\n", sdks(3001)));
    assert_eq!(
        run(&[("GCE_METADATA_HOST", "10.1.1.1:80"), ("GOOGLE_VERTEX_BASE_URL", "https://x.example/")]),
        "10.1.1.1:80 127.0.0.1:2775 arg1 https://x.example/ http://127.0.0.1:2775/vertex/v1\n",
        "what the function sets is kept"
    );
    assert_eq!(
        run(&[("VERTEX_BROKER_SDK_BASE_URLS", "off")]),
        "127.0.0.1:2775 127.0.0.1:2775 arg1 unset unset\n",
        "the SDKs' base URLs left alone"
    );
}

/// Starts the extension for the fixture's secret with `env`, waits for its token to be served.
async fn running_extension(f: &Fixture, env: &[(&str, &str)]) -> (ExtensionsApi, tokio::process::Child, u16) {
    let api = ExtensionsApi::start().await;
    let port = support::free_port();
    let child = extension(&api, port)
        .env("VERTEX_BROKER_SECRET_ID", &f.secret)
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    api.wait_for(Duration::from_secs(10), |s| s.polls >= 1).await;
    support::wait_for("the extension serving a token", Duration::from_secs(5), || async {
        get_token(port).await.ok().map(drop)
    })
    .await;
    (api, child, port)
}

/// Sends an INVOKE and returns how long the extension took to ask for the next event.
async fn invoke(api: &ExtensionsApi) -> Duration {
    invoke_as(api, "r", Duration::from_secs(30)).await
}

/// An INVOKE with its request id and the time the function has left.
async fn invoke_as(api: &ExtensionsApi, request_id: &str, left: Duration) -> Duration {
    let polls = api.seen().polls;
    let deadline = (std::time::SystemTime::now() + left).duration_since(std::time::UNIX_EPOCH).unwrap();
    let sent = Instant::now();
    api.send(json!({"eventType": "INVOKE", "deadlineMs": deadline.as_millis() as u64, "requestId": request_id,
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn"}));
    let seen = api.wait_for(Duration::from_secs(30), |s| s.polls > polls).await;
    assert!(seen.polls > polls, "the extension asked for the next event");
    sent.elapsed()
}

/// Asks for an ID token for `audience` until it is served (waiting as a 429 says).
async fn id_token(port: u16, audience: &str) -> String {
    let url = format!(
        "http://127.0.0.1:{port}/computeMetadata/v1/instance/service-accounts/default/identity?audience={audience}"
    );
    for _ in 0..50 {
        let r = reqwest::Client::new().get(&url).header("Metadata-Flavor", "Google").send().await.unwrap();
        if r.status() == 200 {
            return r.text().await.unwrap();
        }
        assert_eq!(r.status(), 429, "{}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no ID token for {audience}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_with_nothing_due_asks_for_the_next_event_at_once_and_calls_nobody() {
    let f = Fixture::new("invoke-idle").await;
    let (api, _child, _port) = running_extension(&f, &[]).await;
    let calls = f.emu.calls("token");
    for _ in 0..20 {
        let took = invoke(&api).await;
        assert!(took < Duration::from_millis(100), "an INVOKE with nothing due took {took:?}");
    }
    assert_eq!(f.emu.calls("token"), calls, "no call to Google");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_with_200_due_slots_returns_within_the_budget_and_the_renewals_finish_later() {
    let f = Fixture::new("invoke-due").await;
    let (api, _child, port) = running_extension(
        &f,
        &[
            ("VERTEX_BROKER_MAX_SLOTS", "256"),
            ("VERTEX_BROKER_MINT_RATE", "1000"),
            ("VERTEX_BROKER_SECRET_TTL", "1s"),
            ("VERTEX_BROKER_INVOKE_BUDGET", "100ms"),
        ],
    )
    .await;
    let audiences: Vec<String> = (0..200).map(|i| format!("https://svc-{i}.example")).collect();
    for a in audiences.iter().chain(audiences.iter()) {
        id_token(port, a).await; // twice: in use
    }
    assert_eq!(f.emu.counters(&f.account).id_tokens, 200);

    // A key rotation makes every token stale, and Google answers each mint in 100 ms: renewing
    // all 200 takes seconds at 4 mints in flight.
    f.rotate().await;
    f.emu.inject(Fault { endpoint: "token".into(), count: 10_000, status: None, delay_ms: 100 });
    tokio::time::sleep(Duration::from_millis(1100)).await; // past SECRET_TTL
    let took = invoke(&api).await;
    eprintln!("INVOKE with 200 due slots: /next after {took:?}");
    assert!(took < Duration::from_millis(400), "INVOKE held for {took:?} with a 100 ms budget");

    // Meanwhile every token stays servable, from the cache.
    let started = Instant::now();
    id_token(port, &audiences[199]).await;
    assert!(started.elapsed() < Duration::from_millis(90), "served from cache in {:?}", started.elapsed());

    // Later INVOKEs stay within the budget while the renewals finish in the background, once each.
    let until = Instant::now() + Duration::from_secs(30);
    while f.emu.counters(&f.account).id_tokens < 400 && Instant::now() < until {
        let took = invoke(&api).await;
        assert!(took < Duration::from_millis(400), "INVOKE held for {took:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.emu.counters(&f.account).id_tokens, 400, "each of the 200 renewed exactly once");
    f.emu.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_slot_backs_off_across_invokes() {
    let f = Fixture::new("invoke-failing").await;
    let (api, _child, port) = running_extension(&f, &[("VERTEX_BROKER_SECRET_TTL", "1s")]).await;
    for _ in 0..2 {
        id_token(port, "https://svc.example").await;
        get_token(port).await.unwrap();
    }
    f.rotate().await; // both tokens stale, so both due at the next INVOKE
    f.emu.inject(Fault { endpoint: "token".into(), count: 10_000, status: Some(503), delay_ms: 0 });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let calls = f.emu.calls("token");
    for _ in 0..12 {
        invoke(&api).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tried = f.emu.calls("token") - calls;
    eprintln!("12 INVOKEs over ~1.5 s with 2 failing slots: {tried} calls to Google");
    assert!((2..=6).contains(&tried), "{tried} token calls: failing slots must back off, not retry per INVOKE");
    // The stale tokens are still served all along.
    assert!(get_token(port).await.is_ok());
    f.emu.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_federates_as_the_functions_role_with_no_secret() {
    use google_emulator::WORKLOAD_IDENTITY_USER;
    use support::federation;
    let emu = google_emulator::Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    // What Lambda puts in the environment: the execution role's session credentials.
    let creds = federation::assume_role(&support::unique("fn-role"), "my-function").await;
    let target = support::account("ext-fed");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &creds));
    let config = federation::signed_for_moto(federation::credential_config(&emu, &audience, Some(&target)));

    let api = ExtensionsApi::start().await;
    let port = support::free_port();
    let mut child = extension(&api, port)
        .envs(creds.env())
        .env("VERTEX_BROKER_CREDENTIAL_CONFIG", config.to_string()) // the inline form
        .spawn()
        .unwrap();
    api.wait_for(Duration::from_secs(10), |s| !s.registered.is_empty()).await;
    let token = get_token(port).await.expect("a federated, impersonated token during INIT");
    assert_eq!(emu.token_account(token["access_token"].as_str().unwrap()), Some(target.clone()));
    let email = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/computeMetadata/v1/instance/service-accounts/default/email"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(email, target);
    assert!(api.seen().init_errors.is_empty(), "no secret needed");

    api.send(json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}));
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await.expect("stopped within 2 s").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_in_lambda_retries_within_the_invocations_deadline_audits_its_request_id_and_flushes_on_invoke() {
    let f = Fixture::new("ext-gateway").await;
    let api = ExtensionsApi::start().await;
    let port = support::free_port();
    let mut child = extension(&api, port)
        .env("VERTEX_BROKER_SECRET_ID", &f.secret)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url())
        .env("AWS_LAMBDA_FUNCTION_NAME", "vertex-proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Standard output, line by line, with when each line arrived.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, serde_json::Value)>::new()));
    tokio::spawn({
        let lines = lines.clone();
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        async move {
            while let Ok(Some(line)) = out.next_line().await {
                if let Ok(v) = serde_json::from_str(&line) {
                    lines.lock().unwrap().push((Instant::now(), v));
                }
            }
        }
    });
    api.wait_for(Duration::from_secs(10), |s| s.polls >= 1).await;
    let url = format!(
        "http://127.0.0.1:{port}/vertex/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    let call = || async {
        reqwest::Client::new()
            .post(&url)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .unwrap()
    };

    // 30 s left: two 429s are retried.
    invoke_as(&api, "req-plenty", Duration::from_secs(30)).await;
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 2, status: Some(429), delay_ms: 0 });
    let ok = call().await;
    assert_eq!((ok.status().as_u16(), ok.headers()["x-vertex-broker-attempts"].to_str().unwrap()), (200, "3"));
    // 100 ms left: the invocation's deadline leaves no time to wait, the 429 is the function's.
    invoke_as(&api, "req-no-time", Duration::from_millis(100)).await;
    f.emu.inject(Fault { endpoint: "vertex".into(), count: 2, status: Some(429), delay_ms: 0 });
    let limited = call().await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(f.emu.pending_faults().len(), 1, "no retry");
    f.emu.clear_faults();

    // The next INVOKE writes the metrics built up so far before it asks for the next event.
    let polls = api.seen().polls;
    invoke_as(&api, "req-3", Duration::from_secs(30)).await;
    let next_poll = api.poll_time(polls + 1, Duration::from_secs(10)).await.unwrap();
    // This process reads the extension's output in a task of its own: give it a moment.
    for _ in 0..100 {
        if lines.lock().unwrap().iter().any(|(_, v)| v.get("Model").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = lines.lock().unwrap().clone();
    let audits: Vec<_> = seen.iter().filter(|(_, v)| v["event"] == "vertex-broker.audit").map(|(_, v)| v).collect();
    assert_eq!(audits.len(), 2);
    assert_eq!((audits[0]["requestId"].as_str(), audits[0]["attempts"].as_u64()), (Some("req-plenty"), Some(3)));
    assert_eq!((audits[1]["requestId"].as_str(), audits[1]["status"].as_u64()), (Some("req-no-time"), Some(429)));
    let emf: Vec<_> = seen.iter().filter(|(_, v)| v.get("Model").is_some()).collect();
    assert!(!emf.is_empty(), "flushed on INVOKE, not kept until SHUTDOWN");
    // Written before the extension asked for the next event (read here with some scheduling lag).
    assert!(emf.iter().all(|(at, _)| *at <= next_poll + Duration::from_millis(500)), "before /next");
    assert!(emf.iter().all(|(_, v)| v["FunctionName"] == "vertex-proxy"));
    let calls: u64 = emf.iter().filter_map(|(_, v)| v["VertexCalls"].as_u64()).sum();
    assert_eq!(calls, 2);
    api.send(json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}));
    let _ = tokio::time::timeout(Duration::from_secs(3), child.wait()).await;
}
