//! The built `bootstrap` itself, driven through a Lambda Runtime API, rotates a secret in moto
//! against the emulator; its logs carry no key material or token. The test command runs these
//! again on the packaged arm64 bootstrap under qemu-user.

use test_support as support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::runtime_api::{Answer, RuntimeApi};
use support::Fixture;
use tokio::io::AsyncReadExt;
use vertex_broker::rotation::Step;

/// The bootstrap under test (VERTEX_BROKER_TEST_BOOTSTRAP names another, see lambda_binary).
fn bootstrap() -> tokio::process::Command {
    support::lambda_binary("VERTEX_BROKER_TEST_BOOTSTRAP", env!("CARGO_BIN_EXE_bootstrap"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_binary_completes_a_rotation_through_the_runtime_api() {
    let f = Fixture::new("bootstrap").await;
    let old = f.key_at("AWSCURRENT").await.unwrap();
    let token = f.begin_rotation().await;
    let mut api = RuntimeApi::start().await;

    let started = Instant::now();
    let mut child = bootstrap()
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "vertex-broker-rotation")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .envs(support::aws_env())
        .env("VERTEX_BROKER_IAM_ENDPOINT", f.emu.url())
        .env("VERTEX_BROKER_PROPAGATION_TIMEOUT", "20s")
        .env("VERTEX_BROKER_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bootstrap was built");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = tokio::spawn(async move {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.unwrap();
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        stderr.read_to_string(&mut s).await.unwrap();
        s
    });

    for step in Step::ALL {
        let event = json!({"Step": step.as_str(), "SecretId": f.secret, "ClientRequestToken": token});
        match api.invoke(event, Duration::from_secs(60)).await {
            Answer::Response(_) => {}
            other => panic!("{} failed: {other:?}", step.as_str()),
        }
    }
    let ready = api.first_poll().expect("bootstrap polled for events").duration_since(started);
    eprintln!("exec to waiting for the first event: {ready:?}");

    // A failing step comes back as a Lambda error with the engine's message.
    let bad = json!({"Step": "dropSecret", "SecretId": f.secret, "ClientRequestToken": token});
    match api.invoke(bad, Duration::from_secs(30)).await {
        Answer::Response(_) => {} // the token is AWSCURRENT now: the pre-check answers success
        other => panic!("{other:?}"),
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let bad = json!({"Step": "createSecret", "SecretId": f.secret, "ClientRequestToken": unknown});
    match api.invoke(bad, Duration::from_secs(30)).await {
        Answer::Error(body) => {
            assert!(body["errorMessage"].as_str().unwrap().contains("has no stage for rotation"), "{body}");
            assert_eq!(body["errorType"], "PreCheckFailed", "a class of failure, not a Rust type: {body}");
        }
        other => panic!("{other:?}"),
    }

    child.kill().await.unwrap();
    let (stdout, stderr) = (out.await.unwrap(), err.await.unwrap());

    let stages = f.stages().await;
    assert_eq!(stages[&token], vec!["AWSCURRENT"], "{stages:?}");
    let current = f.key_at("AWSCURRENT").await.unwrap();
    assert_ne!(current.private_key_id(), old.private_key_id());
    assert!(f.mints(&current).await);

    // One EMF line per step, with the secret ARN as a dimension.
    let emf: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("_aws").is_some())
        .collect();
    for step in Step::ALL {
        let line =
            emf.iter().find(|v| v["Step"] == step.as_str()).unwrap_or_else(|| panic!("no EMF line for {step:?}"));
        assert_eq!(line["SecretArn"], f.secret.as_str());
        assert_eq!(line["Outcome"], "success");
        assert!(line["StepDuration"].as_f64().unwrap() > 0.0);
    }
    let failure = emf.iter().find(|v| v["Outcome"] == "failure").expect("the failed invocation has its EMF line");
    assert_eq!(failure["ErrorType"], "PreCheckFailed", "{failure}");
    // JSON logs that mention the steps.
    assert!(stderr.lines().any(|l| l.contains("created a Google key")), "{stderr}");

    // No key material and no token anywhere in the output.
    let logs = format!("{stdout}\n{stderr}");
    assert!(!logs.contains("PRIVATE KEY"), "a PEM header leaked");
    let leak: Vec<&str> = logs.lines().filter(|l| l.contains("ya29.")).collect();
    assert!(leak.is_empty(), "an access token leaked: {leak:?}");
    for key in [&old, &current] {
        let file: serde_json::Value = serde_json::from_str(key.raw()).unwrap();
        for line in file["private_key"].as_str().unwrap().lines().filter(|l| l.len() > 20) {
            assert!(!logs.contains(line), "a line of a private key leaked");
        }
    }
}

#[tokio::test]
async fn outside_lambda_it_says_what_to_run_instead_and_builds_no_aws_client() {
    // No AWS variables at all: had it built a client first, the SDK's chain would look for
    // instance metadata before failing.
    let out = bootstrap().env_clear().output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API is not set"), "{stderr}");
    assert!(stderr.contains("vertex-broker rotate SECRET --local"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
