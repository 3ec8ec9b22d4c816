//! A fleet starting as Lambda scales a function: 40 `serve` processes within 0.4 s. Federating per
//! environment against an STS quota of 5 a second, most first tokens are refused by Google's
//! quota; with central minting every broker serves its first token at once and Google sees no
//! call. Loopback only, 40 processes, each killed when the test ends.

use std::process::Stdio;
use std::time::{Duration, Instant};

use google_emulator::Emulator;
use test_support as support;

const FLEET: usize = 40;
const CLI: &str = env!("CARGO_BIN_EXE_vertex-broker");

/// Starts `FLEET` brokers with `env` as Lambda scales a function (1,000 environments every 10
/// seconds: one every 10 ms); each with its port.
async fn start_fleet(env: &[(&str, String)]) -> Vec<(tokio::process::Child, u16)> {
    let mut fleet = Vec::new();
    for _ in 0..FLEET {
        let port = support::free_port();
        let child = support::clean_command(CLI)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("VERTEX_BROKER_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        fleet.push((child, port));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fleet
}

/// Every broker's first token request, once every broker listens (so that 40 processes starting
/// on a small machine do not count as serving time): status and time taken, one after another.
async fn first_tokens(fleet: &[(tokio::process::Child, u16)]) -> Vec<(u16, Duration)> {
    for (_, port) in fleet {
        support::wait_listening(*port).await;
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut answers = Vec::new();
    for (_, port) in fleet {
        let asked = Instant::now();
        let answer = http
            .get(format!("http://127.0.0.1:{port}{}", support::TOKEN_PATH))
            .header("Metadata-Flavor", "Google")
            .send()
            .await;
        answers.push((answer.map_or(0, |r| r.status().as_u16()), asked.elapsed()));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_environments_at_once_exhaust_googles_quota_per_environment_and_not_centrally() {
    let emu = Emulator::start().await.unwrap();
    let audience = support::federation::provider_audience(&support::unique("fleet-pool"));
    support::federation::trust_moto(&emu, &audience);
    let creds = support::federation::assume_role(&support::unique("fleet-role"), "fleet").await;
    let target = support::account("fleet-target");
    emu.grant(&target, google_emulator::WORKLOAD_IDENTITY_USER, &support::federation::role_member(&audience, &creds));
    emu.set_quota("sts", 5);
    let config = support::federation::credential_config(&emu, &audience, Some(&target)).to_string();
    let mut federated: Vec<(&str, String)> = vec![("AWS_ENDPOINT_URL", support::moto_endpoint())];
    federated.extend(creds.env());

    // Per environment: every broker exchanges its own AWS identity at Google STS.
    let mut per_environment = federated.clone();
    per_environment.push(("VERTEX_BROKER_CREDENTIAL_CONFIG", config.clone()));
    let fleet = start_fleet(&per_environment).await;
    let answers = first_tokens(&fleet).await;
    drop(fleet);
    let refused_first = answers.iter().filter(|(status, _)| *status != 200).count();
    let refusals = emu.quota_refusals("sts");
    eprintln!("per environment: {refused_first} of {FLEET} first tokens refused; STS refused {refusals} exchanges");
    assert!(refusals >= 10, "40 exchanges at once against 5 a second: {refusals} refused");
    assert!(refused_first >= 10, "{refused_first} of {FLEET} brokers had no first token");

    // Central, under the same quota: one minter run (once the per-environment fleet's second
    // has passed); then the whole fleet reads the token secret.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token_secret = support::sm_client().create_secret().name(support::unique("fleet-tokens")).send().await.unwrap();
    let token_secret = token_secret.arn().unwrap().to_string();
    let mint = support::clean_command(CLI)
        .args(["mint", "--output", "json"])
        .envs(per_environment.iter().map(|(k, v)| (*k, v.as_str())))
        .env("VERTEX_BROKER_TOKEN_SECRET_ID", &token_secret)
        .output()
        .await
        .unwrap();
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    let exchanges = emu.calls("sts");
    let mut central = federated;
    central.push(("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret));
    let fleet = start_fleet(&central).await;
    let answers = first_tokens(&fleet).await;
    drop(fleet);
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    eprintln!(
        "central: {FLEET} first tokens, the slowest in {slowest:?}; {:?}",
        answers.iter().map(|(_, t)| t.as_millis()).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert!(slowest < Duration::from_secs(1), "every first token within a second: {slowest:?}");
    assert_eq!(emu.calls("sts"), exchanges, "Google saw no call from the central fleet");
}
