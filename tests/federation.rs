//! Workload identity federation and impersonation: the emulator's STS and IAM Credentials
//! proven with Google's own Python client (`external_account` AWS credentials, unmodified) and
//! moto-issued AWS credentials.

mod support;

use google_emulator::state::{TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};
use google_emulator::Emulator;
use support::federation::{self, AwsCredentials};

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
