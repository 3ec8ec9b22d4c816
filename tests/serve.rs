//! `vertex-broker serve` as a process: serves, logs nothing secret even at trace level, picks
//! up a key rotated away underneath it (invalid_grant), and stops cleanly on SIGTERM and SIGINT.

use test_support as support;

use std::time::Duration;

use support::Fixture;
use tokio::io::AsyncReadExt;

fn serve(f: &Fixture, port: u16, ttl: &str) -> tokio::process::Child {
    support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), f, port)
        .env("VERTEX_BROKER_SECRET_TTL", ttl)
        .env("VERTEX_BROKER_LOG", "trace")
        .spawn()
        .unwrap()
}

async fn get(port: u16, path: &str) -> Option<reqwest::Response> {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .ok()
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

use support::TOKEN_PATH as TOKEN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_a_rotated_away_key_logs_nothing_secret_and_stops_on_sigterm() {
    let f = Fixture::new("serve").await;
    let port = support::free_port();
    let mut child = serve(&f, port, "1h"); // no TTL re-check during the test: only invalid_grant can tell
    support::wait_listening(port).await;
    let first: serde_json::Value = get(port, TOKEN).await.unwrap().json().await.unwrap();
    let id_token =
        get(port, "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://a.example")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();

    // Two rotations: the key the broker loaded is deleted at Google.
    let old_key = f.key_at("AWSCURRENT").await.unwrap();
    f.rotate().await;
    f.rotate().await;
    assert!(!f.google_keys().contains(&old_key.private_key_id().to_string()));
    let new_key = f.key_at("AWSCURRENT").await.unwrap();

    // A new scope set needs a mint: invalid_grant makes the broker re-read the secret at once.
    let r = get(port, &format!("{TOKEN}?scopes=https://www.googleapis.com/auth/cloud-platform,openid")).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: serde_json::Value = r.json().await.unwrap();
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(f.emu.token_key_id(token).as_deref(), Some(new_key.private_key_id()));

    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("stops on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).await.unwrap();
    assert!(stdout.contains(&format!("GCE_METADATA_HOST=127.0.0.1:{port}")), "{stdout}");

    let logs = format!("{stdout}\n{stderr}");
    assert!(logs.contains("loaded the AWSCURRENT key"), "trace logs were captured: {logs}");
    for secret in [first["access_token"].as_str().unwrap(), token, id_token.as_str()] {
        assert!(!logs.contains(secret), "a token reached the logs");
    }
    assert!(!logs.contains("ya29."), "a token reached the logs");
    assert!(!logs.contains("PRIVATE KEY"));
    for key in [&old_key, &new_key] {
        let file: serde_json::Value = serde_json::from_str(key.raw()).unwrap();
        for line in file["private_key"].as_str().unwrap().lines().filter(|l| l.len() > 20) {
            assert!(!logs.contains(line), "a private-key line reached the logs");
        }
    }
}

#[tokio::test]
async fn serve_stops_on_sigint_and_refuses_to_start_without_a_secret() {
    let f = Fixture::new("sigint").await;
    let port = support::free_port();
    let mut child = serve(&f, port, "5m");
    support::wait_listening(port).await;
    signal(&child, "-INT");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("stops on SIGINT").unwrap();
    assert!(status.success());

    let out = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker")).arg("serve").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VERTEX_BROKER_SECRET_ID"));
}
