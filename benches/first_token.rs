//! `make bench` (central minting part): exec to first token served, per mode, with Google slowed
//! by 50 ms a call and Secrets Manager by 10 ms a call (a proxy in front of moto): a rotated key
//! (Secrets Manager, then Google's token endpoint), federation (Google STS, then IAM Credentials
//! to impersonate), and central minting (one Secrets Manager read). Rounds interleave the modes;
//! medians and ratios against central, measured in the same run. Asserts nothing.

use test_support as support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use google_emulator::{Fault, WORKLOAD_IDENTITY_USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUNDS: usize = 9;
const GOOGLE_DELAY_MS: u64 = 50;
const AWS_DELAY: Duration = Duration::from_millis(10);

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

/// A TCP proxy to `upstream` that holds each chunk the client sends for `AWS_DELAY`: one
/// request, one delay. Its address.
async fn slow_proxy(upstream: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(AWS_DELAY).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    format!("http://{addr}")
}

/// Exec of `serve` with `env` to its first token answered 200.
async fn first_token(env: &[(&str, String)]) -> Duration {
    let port = support::free_port();
    let started = Instant::now();
    let _serve = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"))
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("VERTEX_BROKER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{}", support::TOKEN_PATH);
    loop {
        let answer = http.get(&url).header("Metadata-Flavor", "Google").send().await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(20) {
            panic!("no first token within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run() {
    let f = support::Fixture::new("bench-first").await;
    let aws = slow_proxy(support::moto_endpoint().trim_start_matches("http://").to_string()).await;
    // Federation: the emulator's pool trusts moto's account; impersonation as the template does.
    let audience = support::federation::provider_audience(&support::unique("bench-pool"));
    support::federation::trust_moto(&f.emu, &audience);
    let creds = support::federation::assume_role(&support::unique("bench-role"), "bench").await;
    let target = support::account("bench-target");
    f.emu.grant(&target, WORKLOAD_IDENTITY_USER, &support::federation::role_member(&audience, &creds));
    let config = support::federation::credential_config(&f.emu, &audience, Some(&target)).to_string();
    let token_secret = support::sm_client().create_secret().name(support::unique("bench-tokens")).send().await.unwrap();
    let token_secret = token_secret.arn().unwrap().to_string();

    let mut aws_env: Vec<(&str, String)> = support::aws_env().to_vec();
    aws_env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    aws_env.push(("AWS_ENDPOINT_URL", aws.clone()));
    let mut key = aws_env.clone();
    key.push(("VERTEX_BROKER_SECRET_ID", f.secret.clone()));
    let mut federation: Vec<(&str, String)> = vec![("AWS_ENDPOINT_URL", aws.clone())];
    federation.extend(creds.env());
    federation.push(("VERTEX_BROKER_CREDENTIAL_CONFIG", config));
    let mut central = aws_env.clone();
    central.push(("VERTEX_BROKER_TOKEN_SECRET_ID", token_secret.clone()));

    // The minter fills the token secret once, from the key.
    let mint = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"))
        .args(["mint"])
        .envs(key.iter().map(|(k, v)| (*k, v.as_str())))
        .env("VERTEX_BROKER_TOKEN_SECRET_ID", &token_secret)
        .output()
        .await
        .unwrap();
    assert!(mint.status.success(), "{}", String::from_utf8_lossy(&mint.stderr));
    for endpoint in ["token", "sts", "iamcredentials"] {
        f.emu.inject(Fault { endpoint: endpoint.into(), count: 100_000, status: None, delay_ms: GOOGLE_DELAY_MS });
    }

    let modes = [("rotated key", &key), ("federation", &federation), ("central", &central)];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    for _ in 0..ROUNDS {
        for (i, (_, env)) in modes.iter().enumerate() {
            times[i].push(first_token(env).await);
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let central = medians[2];
    println!(
        "exec to first token, median of {ROUNDS} interleaved rounds; Google {GOOGLE_DELAY_MS} ms a call, Secrets Manager {} ms a call:",
        AWS_DELAY.as_millis()
    );
    for ((name, _), took) in modes.iter().zip(&medians) {
        println!(
            "  {name:<12} {:>7.1} ms  ({:.2}x central)",
            took.as_secs_f64() * 1000.0,
            took.as_secs_f64() / central.as_secs_f64()
        );
    }
}
