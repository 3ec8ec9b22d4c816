//! Workload identity federation and impersonation: the emulator's STS and IAM Credentials
//! proven with Google's own Python client (`external_account` AWS credentials, unmodified) and
//! moto-issued AWS credentials.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use google_emulator::Emulator;
use google_emulator::{TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};
use support::broker::RunningBroker;
use support::federation::{self, AwsCredentials};
use vertex_broker::broker::BrokerSettings;
use vertex_broker::google::federation::{AwsIdentity, CredentialConfig};
use vertex_broker::store::MemoryStore;

const AUDIENCE: &str = "https://example.run.app";

use support::{generate, jwt_claims};

/// Runs google-auth's `external_account` flow with `config` and `creds` in the environment.
async fn google_auth(config: &serde_json::Value, creds: &AwsCredentials) -> serde_json::Value {
    let path = std::env::temp_dir().join(format!("{}.json", support::unique("cred-config")));
    std::fs::write(&path, config.to_string()).unwrap();
    let out = support::clean_command(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/external_account.py"))
        .arg(&path)
        .envs(creds.env())
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("google-auth printed {stdout}; stderr {}", String::from_utf8_lossy(&out.stderr)))
}

fn token(answer: &serde_json::Value) -> &str {
    answer["token"].as_str().unwrap_or_else(|| panic!("google-auth failed: {answer}"))
}

fn error(answer: &serde_json::Value) -> &str {
    answer["error"].as_str().unwrap_or_else(|| panic!("google-auth succeeded where it must fail: {answer}"))
}

#[tokio::test]
async fn google_auth_federates_from_aws_and_the_emulator_vertex_accepts_the_token() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("fn-role"), "my-fn").await;

    let answer = google_auth(&federation::credential_config(&emu, &audience, None), &creds).await;
    let direct = token(&answer);
    assert_eq!(answer["kind"], "google.auth.aws.Credentials");
    assert_eq!(
        emu.token_account(direct).as_deref(),
        Some(format!("principal://iam.googleapis.com/{}/subject/{}", pool_of(&audience), creds.arn).as_str()),
        "the ARN moto answered for becomes the principal, as Google maps it"
    );
    assert_eq!(generate(&emu, direct).await, 403, "the principal holds no Vertex role yet");
    emu.grant_vertex(&federation::role_member(&audience, &creds));
    assert_eq!(generate(&emu, direct).await, 200, "granted to the role's principal set");

    // Impersonation, as the configuration's service_account_impersonation_url asks.
    let target = support::account("fed-target");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &creds));
    let answer = google_auth(&federation::credential_config(&emu, &audience, Some(&target)), &creds).await;
    let impersonated = token(&answer);
    assert_eq!(emu.token_account(impersonated), Some(target.clone()));
    assert_eq!(generate(&emu, impersonated).await, 200);
}

#[tokio::test]
async fn the_emulator_refuses_what_google_refuses_with_googles_reasons() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("fn-role"), "my-fn").await;

    let unknown = federation::provider_audience(&support::unique("no-such-pool"));
    let answer = google_auth(&federation::credential_config(&emu, &unknown, None), &creds).await;
    assert!(error(&answer).contains("invalid_target"), "{answer}");

    let tampered = AwsCredentials { secret_access_key: "not-the-secret".into(), ..creds.clone() };
    let answer = google_auth(&federation::credential_config(&emu, &audience, None), &tampered).await;
    assert!(error(&answer).contains("SignatureDoesNotMatch"), "{answer}");

    let target = support::account("fed-target");
    let answer = google_auth(&federation::credential_config(&emu, &audience, Some(&target)), &creds).await;
    let refused = error(&answer);
    assert!(
        refused.contains("iam.serviceAccounts.getAccessToken") && refused.contains("PERMISSION_DENIED"),
        "{answer}"
    );

    // Another role's binding does not cover this one.
    let other = federation::assume_role(&support::unique("other-role"), "other-fn").await;
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &other));
    let answer = google_auth(&federation::credential_config(&emu, &audience, Some(&target)), &creds).await;
    assert!(error(&answer).contains("PERMISSION_DENIED"), "{answer}");
    // A token creator binding for an unrelated account does not either.
    emu.grant(&target, TOKEN_CREATOR, &support::account("someone-else"));
    let answer = google_auth(&federation::credential_config(&emu, &audience, Some(&target)), &creds).await;
    assert!(error(&answer).contains("PERMISSION_DENIED"), "{answer}");

    // Over the project's STS quota Google answers 429 RESOURCE_EXHAUSTED; google-auth raises it.
    emu.set_quota("sts", 0);
    let answer = google_auth(&federation::credential_config(&emu, &audience, None), &creds).await;
    assert!(error(&answer).contains("RESOURCE_EXHAUSTED") || error(&answer).contains("429"), "{answer}");
    assert_eq!(emu.quota_refusals("sts"), 1);
}

fn pool_of(audience: &str) -> &str {
    audience.trim_start_matches("//iam.googleapis.com/").rsplit_once("/providers/").unwrap().0
}

/// The AWS identity a broker signs with: the assumed role's credentials, as in Lambda.
fn aws_identity(creds: &AwsCredentials) -> AwsIdentity {
    AwsIdentity::fixed(&creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token), "us-east-1")
}

/// A broker federating with `config` (its verification URL pointed at moto, as in the README's
/// test setup), with extra settings applied by `adjust`.
async fn federated_broker(
    config: serde_json::Value,
    creds: &AwsCredentials,
    adjust: impl FnOnce(&mut BrokerSettings),
) -> RunningBroker {
    let config = federation::signed_for_moto(config);
    let mut settings = BrokerSettings::for_secrets(Vec::new());
    settings.credential_config = Some(CredentialConfig::parse(&config.to_string()).unwrap());
    settings.aws = Some(aws_identity(creds));
    settings.http_timeout = Duration::from_secs(5);
    adjust(&mut settings);
    RunningBroker::with_settings(settings, Arc::new(MemoryStore::new())).await
}

/// Runs Google's Python client (metadata-server credentials) against the broker.
async fn python_client(b: &RunningBroker) -> serde_json::Value {
    let mut cmd = support::broker::google_client(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"), b);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/google_auth_client.py")).arg(AUDIENCE);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "python google-auth: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_federates_and_impersonates_for_google_auth_with_no_key() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("fn-role"), "my-fn").await;
    let target = support::account("fed-target");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &creds));

    let b = federated_broker(federation::credential_config(&emu, &audience, Some(&target)), &creds, |_| {}).await;
    let v = python_client(&b).await;
    assert_eq!(v["email"], target.as_str(), "the metadata email is the impersonated account");
    assert_eq!(v["project"], "proj-test", "the impersonated account's project");
    let token = v["token"].as_str().unwrap();
    assert_eq!(emu.token_account(token), Some(target.clone()));
    assert_eq!(generate(&emu, token).await, 200);
    let claims = jwt_claims(v["id_token"].as_str().unwrap());
    assert_eq!((claims["aud"].as_str(), claims["email"].as_str()), (Some(AUDIENCE), Some(target.as_str())));
    let status: serde_json::Value = b.get("/vertex-broker/v1/status").await.json().await.unwrap();
    let account = &status["accounts"][0];
    assert_eq!((account["source"].as_str(), &account["secret_id"]), (Some("federation"), &serde_json::Value::Null));

    // Without impersonation: the federated principal's own token; no ID tokens, and why.
    let b = federated_broker(federation::credential_config(&emu, &audience, None), &creds, |_| {}).await;
    emu.grant_vertex(&federation::role_member(&audience, &creds));
    let t: serde_json::Value = b.get_token().await;
    let token = t["access_token"].as_str().unwrap();
    assert!(emu.token_account(token).unwrap().starts_with("principal://"), "a federated token");
    assert_eq!(generate(&emu, token).await, 200);
    let r = b.get(&format!("/computeMetadata/v1/instance/service-accounts/default/identity?audience={AUDIENCE}")).await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("VERTEX_BROKER_IMPERSONATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_refusals_reach_the_client_with_googles_reason() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("fn-role"), "my-fn").await;
    let target = support::account("fed-target");

    let refusal = |b: RunningBroker| async move {
        let r = b.get(support::TOKEN_PATH).await;
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // The role has no binding on the account.
    let (status, body) =
        refusal(federated_broker(federation::credential_config(&emu, &audience, Some(&target)), &creds, |_| {}).await)
            .await;
    assert_eq!(status, 503);
    assert!(body.contains("PERMISSION_DENIED") && body.contains("roles/iam.workloadIdentityUser"), "{body}");
    // A provider Google does not know.
    let unknown = federation::provider_audience(&support::unique("no-such-pool"));
    let (status, body) =
        refusal(federated_broker(federation::credential_config(&emu, &unknown, None), &creds, |_| {}).await).await;
    assert_eq!(status, 503);
    assert!(body.contains("invalid_target") && body.contains("doctor"), "{body}");
    // Credentials whose signature does not verify.
    let tampered = AwsCredentials { secret_access_key: "not-the-secret".into(), ..creds.clone() };
    let (status, body) =
        refusal(federated_broker(federation::credential_config(&emu, &audience, None), &tampered, |_| {}).await).await;
    assert_eq!(status, 503);
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_from_a_rotated_key_with_short_and_refused_long_lifetimes() {
    let f = support::Fixture::new("impersonate").await;
    let target = support::account("imp-target");
    f.emu.grant(&target, TOKEN_CREATOR, &f.account);
    let start = |lifetime: u64| {
        let mut settings = BrokerSettings::for_secrets(vec![f.secret.clone()]);
        settings.impersonate = Some(target.clone());
        settings.token_lifetime = Duration::from_secs(lifetime);
        settings.iam_credentials_endpoint = f.emu.url();
        settings.http_timeout = Duration::from_secs(5);
        RunningBroker::with_settings(settings, f.store.clone())
    };
    let b = start(600).await;
    let v = python_client(&b).await;
    assert_eq!(v["email"], target.as_str());
    let token = v["token"].as_str().unwrap();
    assert_eq!(f.emu.token_account(token), Some(target.clone()), "the target's identity, not the key's");
    assert_eq!(generate(&f.emu, token).await, 200);
    let t: serde_json::Value = b.get_token().await;
    assert!(t["expires_in"].as_i64().unwrap() <= 600, "{t}");
    assert_eq!(jwt_claims(v["id_token"].as_str().unwrap())["email"], target.as_str());
    // The key's own account only creates tokens: the served tokens are never its own.
    assert_eq!(f.emu.counters(&target).access_tokens, 1, "one impersonated mint serves every request");

    let refused = start(43200).await;
    let r = refused.get(support::TOKEN_PATH).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("constraints/iam.allowServiceAccountCredentialLifetimeExtension"), "{body}");
    f.emu.set_lifetime_extension(&target, true);
    let allowed = start(43200).await;
    let t: serde_json::Value = allowed.get_token().await;
    assert!(t["expires_in"].as_i64().unwrap() > 3600, "{t}");
}

/// The `vertex-broker` CLI with only `env` (plus PATH and an empty HOME): no AWS or Google
/// configuration it could fall back on.
fn cli(env: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"));
    cmd.env("AWS_EC2_METADATA_DISABLED", "true").envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

/// Runs `doctor --output json`: its exit code and the checks by name.
async fn doctor(env: &[(&str, String)]) -> (Option<i32>, std::collections::HashMap<String, serde_json::Value>) {
    let out = cli(env).args(["doctor", "--output", "json"]).output().await.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks =
        report["checks"].as_array().unwrap().iter().map(|c| (c["check"].as_str().unwrap().to_string(), c.clone()));
    (out.status.code(), checks.collect())
}

/// A credential configuration as the broker reads it in a test: gcloud's, its verification URL
/// pointed at moto, written to a file (the path form of VERTEX_BROKER_CREDENTIAL_CONFIG).
fn config_file(emu: &Emulator, audience: &str, impersonate: Option<&str>) -> String {
    let config = federation::signed_for_moto(federation::credential_config(emu, audience, impersonate));
    let path = std::env::temp_dir().join(format!("{}.json", support::unique("client-library-config")));
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_federates_with_container_credentials_for_python_node_go_and_java_and_doctor_passes() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("task-role"), "ecs-task").await;
    let target = support::account("fed-serve");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &federation::role_member(&audience, &creds));
    // Only ECS-style container credentials: no AWS key in the environment, no instance metadata.
    let (uri, served) = federation::serve_container_credentials(&creds, "container-auth-token").await;
    let port = support::free_port();
    let env = vec![
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-token".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("VERTEX_BROKER_CREDENTIAL_CONFIG", config_file(&emu, &audience, Some(&target))),
        ("VERTEX_BROKER_PORT", port.to_string()),
    ];
    let _serve =
        cli(&env).arg("serve").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let addr = format!("127.0.0.1:{port}");
    support::wait_listening(port).await;

    for (name, mut cmd) in support::broker::google_clients(&addr, AUDIENCE) {
        let out = cmd.output().await.unwrap_or_else(|e| panic!("{name}: {e} (the test command installs it)"));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["email"], target.as_str(), "{name}");
        assert_eq!(v["project"], "proj-test", "{name}");
        let token = v["token"].as_str().unwrap();
        assert_eq!(emu.token_account(token), Some(target.clone()), "{name}");
        assert_eq!(generate(&emu, token).await, 200, "{name}: Vertex accepts the federated, impersonated token");
        let claims = jwt_claims(v["id_token"].as_str().unwrap());
        assert_eq!(
            (claims["aud"].as_str(), claims["email"].as_str()),
            (Some(AUDIENCE), Some(target.as_str())),
            "{name}"
        );
    }
    assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= 1, "serve signed with the container credentials");

    // `token` takes the same path from the same configuration.
    let out = cli(&env).args(["token", "--output", "json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["account"], target.as_str());
    assert_eq!(generate(&emu, v["access_token"].as_str().unwrap()).await, 200);
    let out = cli(&env).args(["token", "--audience", AUDIENCE]).output().await.unwrap();
    assert_eq!(jwt_claims(String::from_utf8_lossy(&out.stdout).trim())["email"], target.as_str());

    // doctor, with the client variables the wrapper sets, finds every step working.
    let mut env = env;
    env.extend([("GCE_METADATA_HOST", addr.clone()), ("GCE_METADATA_IP", addr.clone())]);
    let (code, checks) = doctor(&env).await;
    assert_eq!(code, Some(0), "{checks:#?}");
    for name in [
        "source",
        "aws identity",
        "exchange",
        "impersonation (configuration)",
        "lifetime",
        "access token",
        "id token",
        "clients",
    ] {
        assert_eq!(checks[name]["status"], "ok", "{name}: {checks:#?}");
    }
    assert!(checks["aws identity"]["detail"].as_str().unwrap().contains(&creds.arn), "{checks:#?}");
    assert!(checks["clients"]["detail"].as_str().unwrap().contains(target.as_str()), "a broker answers as the target");
    // One of the two variables alone: Python's client breaks, and doctor says so.
    env.retain(|(k, _)| *k != "GCE_METADATA_IP");
    let (code, checks) = doctor(&env).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["clients"]["status"], "fail");
    assert!(checks["clients"]["detail"].as_str().unwrap().contains("Python"), "{checks:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_googles_reason_and_the_fix_for_each_refusal() {
    let emu = Emulator::start().await.unwrap();
    let audience = federation::provider_audience(&support::unique("pool"));
    federation::trust_moto(&emu, &audience);
    let creds = federation::assume_role(&support::unique("fn-role"), "my-fn").await;
    let target = support::account("fed-doctor");
    let env = |config: String, creds: &AwsCredentials| {
        let mut env: Vec<(&str, String)> = creds.env();
        env.push(("VERTEX_BROKER_CREDENTIAL_CONFIG", config));
        env
    };

    // The role has no binding on the account.
    let (code, checks) = doctor(&env(config_file(&emu, &audience, Some(&target)), &creds)).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["exchange"]["status"], "ok");
    let step = &checks["impersonation (configuration)"];
    assert_eq!(step["status"], "fail");
    assert!(step["detail"].as_str().unwrap().contains("PERMISSION_DENIED"), "{step}");
    assert!(step["fix"].as_str().unwrap().contains("roles/iam.workloadIdentityUser"), "{step}");
    assert_eq!(checks["lifetime"]["status"], "skip");
    assert_eq!(checks["access token"]["status"], "skip", "the first failure is the one to fix");

    // A provider Google does not know.
    let unknown = federation::provider_audience(&support::unique("no-such-pool"));
    let (code, checks) = doctor(&env(config_file(&emu, &unknown, None), &creds)).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["exchange"]["status"], "fail");
    assert!(checks["exchange"]["detail"].as_str().unwrap().contains("invalid_target"), "{checks:#?}");
    assert!(checks["exchange"]["fix"].as_str().unwrap().contains("pool provider"), "{checks:#?}");

    // A subject token whose signature does not verify: moto (which does not check signatures
    // here) still names the caller, Google refuses.
    let tampered = AwsCredentials { secret_access_key: "not-the-secret".into(), ..creds.clone() };
    let (code, checks) = doctor(&env(config_file(&emu, &audience, None), &tampered)).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["aws identity"]["status"], "ok");
    assert!(checks["exchange"]["detail"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{checks:#?}");

    // No AWS credentials at all.
    let (code, checks) = doctor(&[
        ("AWS_REGION", "us-east-1".to_string()),
        ("VERTEX_BROKER_CREDENTIAL_CONFIG", config_file(&emu, &audience, None)),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["aws identity"]["status"], "fail", "{checks:#?}");

    // A configuration that is not one.
    let (code, checks) =
        doctor(&[("VERTEX_BROKER_CREDENTIAL_CONFIG", r#"{"type":"service_account"}"#.to_string())]).await;
    assert_eq!(code, Some(2));
    assert!(checks["configuration"]["detail"].as_str().unwrap().contains("external_account"), "{checks:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_impersonation_from_a_rotated_key_and_the_lifetime_google_allows() {
    let f = support::Fixture::new("doctor-key").await;
    let target = support::account("doctor-target");
    f.emu.grant(&target, TOKEN_CREATOR, &f.account);
    let env = |lifetime: &str| {
        let mut env: Vec<(&str, String)> = support::aws_env().to_vec();
        env.extend([
            ("VERTEX_BROKER_SECRET_ID", f.secret.clone()),
            ("VERTEX_BROKER_IMPERSONATE", target.clone()),
            ("VERTEX_BROKER_TOKEN_LIFETIME", lifetime.to_string()),
            ("VERTEX_BROKER_IAM_CREDENTIALS_ENDPOINT", f.emu.url()),
        ]);
        env
    };
    let (code, checks) = doctor(&env("600s")).await;
    assert_eq!(code, Some(0), "{checks:#?}");
    assert!(checks["secret"]["detail"].as_str().unwrap().contains(&f.account), "{checks:#?}");
    assert!(checks["aws identity"]["detail"].as_str().unwrap().contains("arn:aws:"), "{checks:#?}");
    let lifetime = checks["lifetime"]["detail"].as_str().unwrap();
    assert!(lifetime.contains("asked 600 s") && lifetime.contains("renewed with 100 s left"), "{lifetime}");
    assert!(checks["access token"]["detail"].as_str().unwrap().contains(&target));
    assert_eq!(checks["clients"]["status"], "warn", "no GCE_METADATA_* here: doctor says what to export");
    assert!(checks["clients"]["fix"].as_str().unwrap().contains("GCE_METADATA_IP"));

    let (code, checks) = doctor(&env("43200s")).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["impersonation"]["status"], "fail");
    assert!(
        checks["impersonation"]["fix"]
            .as_str()
            .unwrap()
            .contains("constraints/iam.allowServiceAccountCredentialLifetimeExtension"),
        "{checks:#?}"
    );
    assert_eq!(checks["lifetime"]["status"], "skip");

    // A secret that does not exist: the secret step fails and says what to check.
    let mut missing = env("600s");
    missing.retain(|(k, _)| *k != "VERTEX_BROKER_SECRET_ID");
    missing.push(("VERTEX_BROKER_SECRET_ID", support::unique("no-such-secret")));
    let (code, checks) = doctor(&missing).await;
    assert_eq!(code, Some(1));
    assert_eq!(checks["secret"]["status"], "fail");
    assert!(checks["secret"]["fix"].as_str().unwrap().contains("secretsmanager:GetSecretValue"));
}
