//! Central minting through the real binaries: `vertex-broker mint` (the minter's run) fills a
//! token secret in moto from a rotated key at the emulator; `vertex-broker serve` with only the
//! token secret serves Google's Python, Node and Go clients from it and never calls Google.

use std::process::{Output, Stdio};
use std::time::Duration;

use google_emulator::Fault;
use serde_json::Value;
use test_support as support;
use vertex_broker::minter::stored::StoredTokens;

const AUDIENCE: &str = "https://example.run.app";
const CLI: &str = env!("CARGO_BIN_EXE_vertex-broker");

/// A token secret with no value yet, as the template creates it.
async fn empty_token_secret(prefix: &str) -> String {
    let out = support::sm_client().create_secret().name(support::unique(prefix)).send().await.unwrap();
    out.arn().unwrap().to_string()
}

/// `vertex-broker mint` for the fixture's key into `token_secret`, with `env` added.
async fn mint(f: &support::Fixture, token_secret: &str, env: &[(&str, &str)]) -> Output {
    support::clean_command(CLI)
        .args(["mint", "--output", "json"])
        .envs(support::aws_env())
        .env("VERTEX_BROKER_SECRET_ID", &f.secret)
        .env("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret)
        .env("VERTEX_BROKER_AUDIENCES", AUDIENCE)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("stdout {}; stderr {}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the token secret holds now, as its raw value and parsed.
async fn stored(token_secret: &str) -> (String, StoredTokens) {
    let out = support::sm_client().get_secret_value().secret_id(token_secret).send().await.unwrap();
    let value = out.secret_string().unwrap().to_string();
    let parsed = StoredTokens::parse(&value).unwrap();
    (value, parsed)
}

/// `vertex-broker serve` reading only `token_secret`, its gateway pointed at `vertex`; killed
/// when dropped.
async fn central_broker(token_secret: &str, vertex: &str) -> (tokio::process::Child, u16) {
    let port = support::free_port();
    let child = support::clean_command(CLI)
        .arg("serve")
        .envs(support::aws_env())
        .env("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", vertex)
        .env("VERTEX_BROKER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_listening(port).await;
    (child, port)
}

async fn metadata(port: u16, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minter_fills_the_token_secret_and_brokers_serve_it_without_calling_google() {
    let f = support::Fixture::new("central").await;
    let token_secret = empty_token_secret("tokens").await;

    let out = mint(&f, &token_secret, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!((report["renewed"].as_u64(), report["kept"].as_u64()), (Some(2), Some(0)), "{report}");
    let (value, held) = stored(&token_secret).await;
    assert!(!value.contains("PRIVATE KEY") && !value.contains("private_key"), "no key material is stored");
    assert_eq!(held.email.as_deref(), Some(f.account.as_str()));
    let access = held.access_tokens[0].token.expose().to_string();
    assert_eq!(f.emu.token_account(&access), Some(f.account.clone()));
    assert_eq!(support::generate(&f.emu, &access).await, 200, "Vertex accepts the stored token");

    // The operator's view: the token secret's versions and the life left on each token.
    let status = support::clean_command(CLI)
        .args(["status", &token_secret, "--output", "json"])
        .envs(support::aws_env())
        .output()
        .await
        .unwrap();
    let status = json(&status);
    assert_eq!(status["tokens"].as_array().unwrap().len(), 2, "{status}");
    assert!(status["tokens"][0]["life_left_s"].as_i64().unwrap() > 3000, "{status}");
    assert_eq!(status["versions"][0]["stages"][0], "AWSCURRENT", "{status}");
    assert!(!status.to_string().contains(&access), "no token in the status");

    // Idempotent: nothing is due, nothing is written.
    let again = json(&mint(&f, &token_secret, &[]).await);
    assert_eq!((again["renewed"].as_u64(), again["kept"].as_u64()), (Some(0), Some(2)), "{again}");
    assert_eq!(again["version"], Value::Null);
    assert_eq!(stored(&token_secret).await.0, value);

    // A broker with only the token secret: Google's clients get the stored tokens, and Google
    // sees no call from the broker.
    let minted = f.emu.counters(&f.account);
    let (_broker, port) = central_broker(&token_secret, &f.emu.url()).await;
    let addr = format!("127.0.0.1:{port}");
    for (name, mut cmd) in support::broker::google_clients(&addr, AUDIENCE).into_iter().take(3) {
        let out = cmd.output().await.unwrap_or_else(|e| panic!("{name}: {e} (the test command installs it)"));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["token"], access.as_str(), "{name}: the stored token");
        assert_eq!(v["email"], f.account.as_str(), "{name}");
        assert_eq!(support::jwt_claims(v["id_token"].as_str().unwrap())["aud"], AUDIENCE, "{name}");
    }
    // The gateway calls Vertex with the stored token.
    let generated = reqwest::Client::new()
        .post(format!(
            "http://{addr}/vertex/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        ))
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(generated.status(), 200, "{}", generated.text().await.unwrap());
    assert_eq!(f.emu.counters(&f.account), minted, "the broker minted nothing at Google");

    // doctor walks central mode: the token secret readable, its tokens valid, one served.
    let doctor = support::clean_command(CLI)
        .args(["doctor", "--output", "json"])
        .envs(support::aws_env())
        .env("VERTEX_BROKER_TOKEN_SECRET_ID", &token_secret)
        .env("GCE_METADATA_HOST", &addr)
        .env("GCE_METADATA_IP", &addr)
        .output()
        .await
        .unwrap();
    let report = json(&doctor);
    assert!(doctor.status.success(), "{report}");
    let names: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(&names[..3], ["source", "token secret", "access token"], "{report}");
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}");
    }
    assert_eq!(f.emu.counters(&f.account), minted, "doctor minted nothing either");

    // What was not pre-minted is refused, naming the minter's variable.
    let other = "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://other.example";
    let (status, body) = metadata(port, other).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("VERTEX_BROKER_AUDIENCES"), "{body}");
    let (status, body) = metadata(port, &format!("{}?scopes=openid", support::TOKEN_PATH)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("VERTEX_BROKER_SCOPES"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_secret_answers_503_naming_the_minter_until_sighup_finds_tokens() {
    let f = support::Fixture::new("central-empty").await;
    let token_secret = empty_token_secret("tokens-empty").await;
    let (broker, port) = central_broker(&token_secret, &f.emu.url()).await;
    let (status, body) = metadata(port, support::TOKEN_PATH).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("vertex-broker-minter"), "{body}");

    assert!(mint(&f, &token_secret, &[]).await.status.success());
    let pid = broker.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let token = support::wait_for("a token after SIGHUP", Duration::from_secs(5), || async {
        let (status, body) = metadata(port, support::TOKEN_PATH).await;
        (status == 200).then_some(body)
    })
    .await;
    let token: Value = serde_json::from_str(&token).unwrap();
    assert_eq!(token["access_token"], stored(&token_secret).await.1.access_tokens[0].token.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_converge_and_a_google_failure_keeps_the_stored_tokens() {
    let f = support::Fixture::new("central-race").await;
    let token_secret = empty_token_secret("tokens-race").await;
    let (a, b) = tokio::join!(mint(&f, &token_secret, &[]), mint(&f, &token_secret, &[]));
    assert!(a.status.success() && b.status.success(), "{} {}", stderr(&a), stderr(&b));
    let (_, held) = stored(&token_secret).await;
    assert_eq!((held.access_tokens.len(), held.id_tokens.len()), (1, 1), "one whole set stands");
    assert_eq!(support::generate(&f.emu, held.access_tokens[0].token.expose()).await, 200);

    // Google fails every mint: a new audience cannot be minted; what is stored stays.
    f.emu.inject(Fault { endpoint: "token".into(), count: 100, status: Some(503), delay_ms: 0 });
    let more = format!("{AUDIENCE},https://second.example");
    let out = mint(&f, &token_secret, &[("VERTEX_BROKER_AUDIENCES", &more)]).await;
    f.emu.clear_faults();
    assert_eq!(out.status.code(), Some(5), "a Google failure: {}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["failures"][0]["class"], "GoogleRefused", "{report}");
    assert_eq!(report["failures"][0]["for"], "https://second.example", "{report}");
    let (_, after) = stored(&token_secret).await;
    assert_eq!(after.access_tokens[0].token.expose(), held.access_tokens[0].token.expose(), "kept");
    assert!(after.id(&vertex_broker::google::scopes::Audience::parse(AUDIENCE).unwrap()).is_some(), "kept");
}
