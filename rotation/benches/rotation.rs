//! `make bench`: wall time of one full rotation against moto_server and the emulator, next to
//! the floor (the same external calls made directly, no engine), and the rotation binary's time
//! from exec to waiting for its first event, next to spawning `true`. Prints ratios; asserts
//! nothing.

use test_support as support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::runtime_api::RuntimeApi;
use support::Fixture;
use vertex_broker::google::iam::IamClient;
use vertex_broker::google::token::TokenClient;
use vertex_broker::store::SecretStore;

const ROUNDS: usize = 15;
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let f = Fixture::new("bench").await;
    f.rotate().await; // warm up connections and moto

    // The floor: what any rotation must do, called directly (through one shared token client,
    // as the engine does).
    let tokens = TokenClient::new(Duration::from_secs(5));
    let mut floor = Vec::new();
    for _ in 0..ROUNDS {
        let token_id = f.begin_rotation().await;
        let started = Instant::now();
        let current = f.key_at("AWSCURRENT").await.unwrap();
        let token = tokens.access_token(&current, &[SCOPE.into()]).await.unwrap();
        let iam = IamClient::new(reqwest::Client::new(), &f.emu.url(), token.bearer, Duration::from_secs(5));
        let (key, _) = iam.create_key(&f.account).await.unwrap();
        f.store.put(&f.secret, &token_id, key.raw(), &["AWSPENDING"], None).await.unwrap();
        tokens.access_token(&key, &[SCOPE.into()]).await.unwrap();
        let cur = f.version_with("AWSCURRENT").await;
        f.store.update_stage(&f.secret, "AWSCURRENT", Some(&token_id), cur.as_deref()).await.unwrap();
        f.store.update_stage(&f.secret, "AWSPENDING", None, Some(&token_id)).await.unwrap();
        floor.push(started.elapsed());
        // keep the account under the key limit between rounds
        if let Some(prev) = f.key_at("AWSPREVIOUS").await {
            let _ = iam.delete_key(&f.account, prev.private_key_id()).await;
        }
    }

    let rotation = f.rotation();
    let mut full = Vec::new();
    for _ in 0..ROUNDS {
        let token_id = f.begin_rotation().await;
        let started = Instant::now();
        f.run_steps(&rotation, &token_id).await.unwrap();
        full.push(started.elapsed());
    }

    // Start-up: exec -> first GET /invocation/next, against spawning `true`.
    let mut boot = Vec::new();
    let mut spawn_floor = Vec::new();
    for _ in 0..ROUNDS {
        let api = RuntimeApi::start().await;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let polled = loop {
            if let Some(t) = api.first_poll() {
                break t;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        boot.push(polled.duration_since(started));
        child.kill().await.unwrap();

        let started = Instant::now();
        tokio::process::Command::new("true").status().await.unwrap();
        spawn_floor.push(started.elapsed());
    }

    let (floor, full, boot, spawn_floor) = (median(floor), median(full), median(boot), median(spawn_floor));
    println!(
        "rotation benchmark (median of {ROUNDS}, moto_server + google-emulator on 127.0.0.1, no propagation delay)"
    );
    println!("  full rotation, 4 steps through the engine   {:>10}", ms(full));
    println!("  floor: the same external calls made directly {:>10}", ms(floor));
    println!("  ratio engine / floor                         {:>10.2}x", full.as_secs_f64() / floor.as_secs_f64());
    println!("  bootstrap exec -> waiting for first event    {:>10}", ms(boot));
    println!("  floor: spawn and reap `true`                 {:>10}", ms(spawn_floor));
    println!(
        "  ratio bootstrap / spawn                      {:>10.2}x",
        boot.as_secs_f64() / spawn_floor.as_secs_f64()
    );
}
