//! Workload identity federation and impersonation: the emulator's STS and IAM Credentials
//! proven with Google's own Python client (`external_account` AWS credentials, unmodified) and
//! moto-issued AWS credentials.

mod support;

use std::sync::Arc;
use std::time::Duration;

use google_emulator::state::{TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};
use google_emulator::Emulator;
use support::broker::RunningBroker;
use support::federation::{self, AwsCredentials};
use vertex_broker::broker::BrokerSettings;
use vertex_broker::google::federation::{AwsIdentity, CredentialConfig};
use vertex_broker::store::MemoryStore;

const AUDIENCE: &str = "https://example.run.app";

/// Calls the emulator's Vertex `:generateContent` with `token`; returns the HTTP status.
async fn generate(emu: &Emulator, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "{}/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            emu.url()
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Runs google-auth's `external_account` flow with `config` and `creds` in the environment.
async fn google_auth(config: &serde_json::Value, creds: &AwsCredentials) -> serde_json::Value {
    let path = std::env::temp_dir().join(format!("{}.json", support::unique("cred-config")));
    std::fs::write(&path, config.to_string()).unwrap();
    let out = tokio::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/external_account.py"))
        .arg(&path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
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
}

fn pool_of(audience: &str) -> &str {
    audience.trim_start_matches("//iam.googleapis.com/").rsplit_once("/providers/").unwrap().0
}

/// The AWS identity a broker signs with: the assumed role's credentials, as in Lambda.
fn aws_identity(creds: &AwsCredentials) -> AwsIdentity {
    let credentials = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        Some(creds.session_token.clone()),
        None,
        "test",
    );
    AwsIdentity {
        credentials: aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        region: "us-east-1".into(),
    }
}

/// A broker federating with `config` (its verification URL pointed at moto, as in the README's
/// test setup), with extra settings applied by `adjust`.
async fn federated_broker(
    config: serde_json::Value,
    creds: &AwsCredentials,
    adjust: impl FnOnce(&mut BrokerSettings),
) -> RunningBroker {
    let mut config = config;
    config["credential_source"]["regional_cred_verification_url"] =
        format!("{}/?Action=GetCallerIdentity&Version=2011-06-15", support::moto_endpoint()).into();
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

fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
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
        let r = b.get("/computeMetadata/v1/instance/service-accounts/default/token").await;
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
    let r = refused.get("/computeMetadata/v1/instance/service-accounts/default/token").await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("constraints/iam.allowServiceAccountCredentialLifetimeExtension"), "{body}");
    f.emu.set_lifetime_extension(&target, true);
    let allowed = start(43200).await;
    let t: serde_json::Value = allowed.get_token().await;
    assert!(t["expires_in"].as_i64().unwrap() > 3600, "{t}");
}
