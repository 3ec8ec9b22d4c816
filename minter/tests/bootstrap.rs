//! The built minter Lambda, driven through a Lambda Runtime API as Scheduler would invoke it:
//! it fills a token secret in moto from a rotated key (impersonating) and from AWS federation at
//! the emulator, reports each run in one EMF line, and logs no token.

use std::process::Stdio;
use std::time::Duration;

use google_emulator::{Emulator, TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};
use serde_json::{json, Value};
use support::runtime_api::{Answer, RuntimeApi};
use test_support as support;
use tokio::io::AsyncReadExt;
use vertex_broker::minter::stored::StoredTokens;

const AUDIENCE: &str = "https://example.run.app";

/// The minter under test (VERTEX_BROKER_TEST_MINTER names another, see lambda_binary).
fn minter() -> tokio::process::Command {
    support::lambda_binary("VERTEX_BROKER_TEST_MINTER", env!("CARGO_BIN_EXE_vertex-broker-minter"))
}

/// A running minter: its Runtime API, and its output once it is stopped.
struct Running {
    api: RuntimeApi,
    child: tokio::process::Child,
    out: tokio::task::JoinHandle<String>,
    err: tokio::task::JoinHandle<String>,
}

impl Running {
    async fn start(env: &[(&str, String)]) -> Self {
        let api = RuntimeApi::start().await;
        let mut cmd = minter();
        support::clean_env(cmd.as_std_mut());
        let mut child = cmd
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "vertex-broker-minter")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("VERTEX_BROKER_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the minter was built");
        let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            tokio::spawn(async move {
                let mut s = String::new();
                pipe.read_to_string(&mut s).await.unwrap();
                s
            })
        };
        let out = read(Box::new(child.stdout.take().unwrap()));
        let err = read(Box::new(child.stderr.take().unwrap()));
        Self { api, child, out, err }
    }

    /// One scheduled invocation (Scheduler's payload is whatever the schedule says).
    async fn invoke(&mut self) -> Answer {
        self.api.invoke(json!({"source": "scheduler"}), Duration::from_secs(60)).await
    }

    /// Stops it; its standard output and error.
    async fn stop(mut self) -> (String, String) {
        self.child.kill().await.unwrap();
        (self.out.await.unwrap(), self.err.await.unwrap())
    }
}

async fn empty_token_secret(prefix: &str) -> String {
    let out = support::sm_client().create_secret().name(support::unique(prefix)).send().await.unwrap();
    out.arn().unwrap().to_string()
}

async fn stored(token_secret: &str) -> (String, StoredTokens) {
    let out = support::sm_client().get_secret_value().secret_id(token_secret).send().await.unwrap();
    let value = out.secret_string().unwrap().to_string();
    (value.clone(), StoredTokens::parse(&value).unwrap())
}

fn emf(stdout: &str) -> Vec<Value> {
    stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v.get("_aws").is_some()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_rotated_key_impersonating_it_fills_the_secret_then_keeps_what_is_fresh() {
    let f = support::Fixture::new("minter").await;
    let target = support::account("minted-target");
    f.emu.grant(&target, TOKEN_CREATOR, &f.account);
    let token_secret = empty_token_secret("minter-tokens").await;
    let mut env = support::aws_env().to_vec();
    env.extend([
        ("VERTEX_BROKER_SECRET_ID", f.secret.clone()),
        ("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret.clone()),
        ("VERTEX_BROKER_AUDIENCES", AUDIENCE.to_string()),
        ("VERTEX_BROKER_IMPERSONATE", target.clone()),
        ("VERTEX_BROKER_TOKEN_LIFETIME", "900s".to_string()),
        ("VERTEX_BROKER_IAM_CREDENTIALS_ENDPOINT", f.emu.url()),
    ]);
    let mut minter = Running::start(&env).await;
    match minter.invoke().await {
        Answer::Response(r) => assert_eq!((r["renewed"].as_u64(), r["kept"].as_u64()), (Some(2), Some(0)), "{r}"),
        other => panic!("{other:?}"),
    }
    let (value, held) = stored(&token_secret).await;
    assert!(!value.contains("private_key"), "no key material is stored");
    assert_eq!(held.email.as_deref(), Some(target.as_str()), "the impersonated account's");
    let access = held.access_tokens[0].token.expose().to_string();
    assert_eq!(f.emu.token_account(&access), Some(target.clone()));
    assert_eq!(support::generate(&f.emu, &access).await, 200);
    assert!(held.access_tokens[0].lifetime_s <= 900, "the impersonated lifetime");
    assert_eq!(support::jwt_claims(held.id_tokens[0].token.expose())["email"], target.as_str());

    // Scheduled again minutes later: nothing is due, nothing written.
    match minter.invoke().await {
        Answer::Response(r) => assert_eq!((r["renewed"].as_u64(), r["version"].clone()), (Some(0), Value::Null), "{r}"),
        other => panic!("{other:?}"),
    }
    let (stdout, stderr) = minter.stop().await;
    let lines = emf(&stdout);
    assert_eq!(lines.len(), 2, "one EMF line per run: {stdout}");
    assert_eq!((lines[0]["TokensRenewed"].as_u64(), lines[1]["TokensRenewed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(lines[0]["TokenSecret"], token_secret.as_str());
    assert!(lines[1]["SecondsLeft"].as_i64().unwrap() > 800, "{}", lines[1]);
    let logs = format!("{stdout}\n{stderr}");
    assert!(!logs.contains(&access) && !logs.contains(held.id_tokens[0].token.expose()), "a token leaked");
    assert!(!logs.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_aws_federation_with_the_functions_own_role_and_a_google_failure_by_class() {
    let emu = Emulator::start().await.unwrap();
    let audience = support::federation::provider_audience(&support::unique("pool"));
    support::federation::trust_moto(&emu, &audience);
    let creds = support::federation::assume_role(&support::unique("minter-role"), "vertex-broker-minter").await;
    let target = support::account("fed-minted");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &support::federation::role_member(&audience, &creds));
    let token_secret = empty_token_secret("fed-tokens").await;
    let config = support::federation::credential_config(&emu, &audience, Some(&target));
    let mut env: Vec<(&str, String)> = vec![("AWS_ENDPOINT_URL", support::moto_endpoint())];
    env.extend(creds.env());
    env.extend([
        ("VERTEX_BROKER_CREDENTIAL_CONFIG", config.to_string()),
        ("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret.clone()),
        ("VERTEX_BROKER_AUDIENCES", AUDIENCE.to_string()),
    ]);
    let mut minter = Running::start(&env).await;
    match minter.invoke().await {
        Answer::Response(r) => assert_eq!(r["renewed"].as_u64(), Some(2), "{r}"),
        other => panic!("{other:?}"),
    }
    let (_, held) = stored(&token_secret).await;
    let access = held.access_tokens[0].token.expose().to_string();
    assert_eq!(emu.token_account(&access), Some(target.clone()), "federated, then impersonated");

    // Google STS refuses from now on; the stored tokens stay and the run fails by class.
    emu.inject(google_emulator::Fault { endpoint: "sts".into(), count: 100, status: Some(503), delay_ms: 0 });
    let mut more = env.clone();
    more.retain(|(k, _)| *k != "VERTEX_BROKER_AUDIENCES");
    more.push(("VERTEX_BROKER_AUDIENCES", format!("{AUDIENCE},https://second.example")));
    let (_stdout, _) = minter.stop().await;
    let mut minter = Running::start(&more).await;
    match minter.invoke().await {
        Answer::Error(e) => assert_eq!(e["errorType"], "FederationRefused", "{e}"),
        other => panic!("{other:?}"),
    }
    let (stdout, _) = minter.stop().await;
    assert_eq!(emf(&stdout)[0]["ErrorType"], "FederationRefused");
    assert_eq!(stored(&token_secret).await.1.access_tokens[0].token.expose(), access, "kept");
}

#[tokio::test]
async fn outside_lambda_it_says_what_to_run_instead() {
    let mut cmd = minter();
    support::clean_env(cmd.as_std_mut());
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API is not set") && stderr.contains("vertex-broker mint"), "{stderr}");
}
