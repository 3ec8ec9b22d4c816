//! Soak: `vertex-broker serve` under a steady client load for over a minute while full key
//! rotations run every few seconds, Google's token endpoint fails in 5-second windows, and
//! Secrets Manager (its own moto_server) is stopped and restarted empty, then restored. Every
//! client request must get a token the emulator's Vertex accepts, and the broker's memory must
//! stay flat.

use test_support as support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::Client;
use google_emulator::{Emulator, Fault};
use vertex_broker::rotation::{ErrorClass, Rotation, RotationEvent, Step};
use vertex_broker::store::SecretsManagerStore;

const SOAK: Duration = Duration::from_secs(65);
use support::TOKEN_PATH as TOKEN;
const SCOPES: [&str; 3] = [
    "",
    "?scopes=https://www.googleapis.com/auth/cloud-platform,openid",
    "?scopes=https://www.googleapis.com/auth/userinfo.email,https://www.googleapis.com/auth/cloud-platform",
];

/// A moto_server this test owns, so it can stop it and start it again on the same port.
struct Moto {
    port: u16,
    child: Option<std::process::Child>,
}

impl Moto {
    fn start(port: u16) -> Self {
        let mut moto = Self { port, child: None };
        moto.restart();
        moto
    }

    fn restart(&mut self) {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server");
        let bin = if std::path::Path::new(venv).exists() { venv } else { "moto_server" };
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (the test command installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not listen on {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sm_client(endpoint: &str) -> Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// What Secrets Manager does on schedule: enable rotation, label a new version AWSPENDING
/// (moto then fails to find the Lambda, as it runs none); returns that version's id.
async fn begin_rotation(sm: &Client, name: &str) -> Option<String> {
    let _ = sm
        .rotate_secret()
        .secret_id(name)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:rotation")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder().automatically_after_days(30).build(),
        )
        .send()
        .await;
    let d = sm.describe_secret().secret_id(name).send().await.ok()?;
    d.version_ids_to_stages()?.iter().find(|(_, s)| s.iter().any(|x| x == "AWSPENDING")).map(|(v, _)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_rotations_google_failures_and_a_secrets_manager_restart_loses_no_request() {
    let mut moto = Moto::start(support::free_port());
    let emu = Emulator::start().await.unwrap();
    let account = support::account("soak");
    let name = support::unique("soak");
    let sm = sm_client(&moto.url());
    sm.create_secret().name(&name).secret_string(emu.seed_key(&account)).send().await.unwrap();

    let port = support::free_port();
    let mut broker = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"))
        .arg("serve")
        .env("VERTEX_BROKER_SECRET_ID", &name)
        .env("VERTEX_BROKER_PORT", port.to_string())
        .env("VERTEX_BROKER_SECRET_TTL", "2s")
        .env("VERTEX_BROKER_HTTP_TIMEOUT", "2s")
        .env("VERTEX_BROKER_LOG", "warn")
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = broker.id().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for scopes in SCOPES {
        support::wait_for(&format!("warm-up of {scopes:?}"), Duration::from_secs(10), || async {
            let r = http.get(format!("{base}{TOKEN}{scopes}")).header("Metadata-Flavor", "Google").send().await;
            r.is_ok_and(|r| r.status() == 200).then_some(())
        })
        .await;
    }

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::<String>::new())));
    let key_ids = Arc::new(Mutex::new(std::collections::BTreeSet::new()));

    // Clients: a token, then a Vertex call with it, over and over.
    let emu = Arc::new(emu);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (http, base, stop, requests, failures, key_ids, emu) = (
                http.clone(),
                base.clone(),
                stop.clone(),
                requests.clone(),
                failures.clone(),
                key_ids.clone(),
                emu.clone(),
            );
            tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let scopes = SCOPES[i % SCOPES.len()];
                    i += 1;
                    requests.fetch_add(1, Ordering::Relaxed);
                    let r = http.get(format!("{base}{TOKEN}{scopes}")).header("Metadata-Flavor", "Google").send().await;
                    let token = match r {
                        Ok(r) if r.status() == 200 => {
                            let v: serde_json::Value = r.json().await.unwrap();
                            v["access_token"].as_str().unwrap().to_string()
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            failures.lock().unwrap().push(format!("{status}: {body}"));
                            continue;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(e.to_string());
                            continue;
                        }
                    };
                    let vertex = http
                        .post(format!("{}/v1/projects/p/locations/us-central1/endpoints/1:predict", emu.url()))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"instances": [1]}))
                        .send()
                        .await
                        .map(|r| r.status().as_u16());
                    if !matches!(vertex, Ok(200)) {
                        failures.lock().unwrap().push(format!("Vertex refused a served token: {vertex:?}"));
                    }
                    if let Some(id) = emu.token_key_id(&token) {
                        key_ids.lock().unwrap().insert(id);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    // Rotations every 3 s, each retried with its own token until it completes, as Secrets
    // Manager retries; a token lost with moto's restart starts a new rotation.
    let rotations = Arc::new(AtomicU64::new(0));
    let mut settings = support::settings(&emu);
    settings.propagation_timeout = Duration::from_secs(3);
    let rotating = tokio::spawn({
        let (stop, rotations, name) = (stop.clone(), rotations.clone(), name.clone());
        let moto_url = moto.url();
        async move {
            let sm = sm_client(&moto_url);
            let rotation = Rotation::new(Arc::new(SecretsManagerStore::new(sm.clone())), settings);
            let mut token: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if token.is_none() {
                    token = begin_rotation(&sm, &name).await;
                }
                let Some(t) = token.clone() else { continue };
                let mut result = Ok(());
                for step in Step::ALL {
                    let event = RotationEvent {
                        step: step.as_str().into(),
                        secret_id: name.clone(),
                        client_request_token: t.clone(),
                        rotation_token: None,
                    };
                    if let Err(e) = rotation.run(&event, None).await {
                        result = Err(e);
                        break;
                    }
                }
                match result {
                    Ok(()) => {
                        rotations.fetch_add(1, Ordering::Relaxed);
                        token = None;
                    }
                    Err(e) if e.class() == ErrorClass::PreCheckFailed => token = None,
                    Err(_) => {} // retried with the same token
                }
            }
        }
    });

    // Disturbances on a timeline: Google's token endpoint fails for 5 s at 10, 30 and 50 s;
    // Secrets Manager is down from 20 to 25 s and comes back empty, then the secret is restored.
    let mut rss = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut restored = false;
    let mut moto_down = false;
    let mut current_backup = None;
    while started.elapsed() < SOAK {
        let t = started.elapsed();
        let failing = [10, 30, 50].iter().any(|s| (*s..*s + 5).contains(&t.as_secs()));
        if failing && emu.pending_faults().is_empty() {
            emu.inject(Fault { endpoint: "token".into(), count: 1_000_000, status: Some(503), delay_ms: 0 });
        } else if !failing && !emu.pending_faults().is_empty() {
            emu.clear_faults();
        }
        if (20..25).contains(&t.as_secs()) && !moto_down {
            // A backup of the current key file, as an operator would restore it from.
            let backup = sm.get_secret_value().secret_id(&name).version_stage("AWSCURRENT").send().await.unwrap();
            current_backup = backup.secret_string().map(str::to_string);
            moto.stop();
            moto_down = true;
        } else if t.as_secs() >= 25 && moto_down && !restored {
            moto.restart();
            let key = current_backup.take().expect("backed up");
            sm.create_secret().name(&name).secret_string(key).send().await.unwrap();
            restored = true;
        }
        if t >= next_sample {
            rss.push((t.as_secs(), support::proc_status_kb(pid, "VmRSS:")));
            next_sample += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emu.clear_faults();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    rotating.await.unwrap();
    let status: serde_json::Value = http
        .get(format!("{base}/vertex-broker/v1/status"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = broker.start_kill();
    let counters = &status["accounts"][0]["counters"];
    eprintln!("broker counters: {counters}");
    // The disturbances reached the broker: a failed mint or secret read, and key reloads. How
    // many fail depends on timing (the broker's retries can outlast a 5 s window, and a rotation
    // that fails in one mints no key to reload): one CI run of several saw a single failure.
    assert!(counters["upstream_errors"].as_u64().unwrap() >= 1, "{counters}");
    assert!(counters["key_reloads"].as_u64().unwrap() >= 5, "{counters}");

    let requests = requests.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    let rotations = rotations.load(Ordering::Relaxed);
    let keys = key_ids.lock().unwrap().len();
    eprintln!(
        "soak: {requests} requests in {:?}, {} failed; {rotations} rotations; tokens from {keys} keys",
        SOAK,
        failures.len()
    );
    eprintln!("broker RSS (s, kB): {rss:?}");
    assert!(failures.is_empty(), "{} of {requests} requests failed, first: {:?}", failures.len(), failures.first());
    assert!(requests > 1000, "a steady load ({requests} requests)");
    assert!(rotations >= 5, "rotations ran throughout ({rotations})");
    assert!(keys >= 3, "the broker moved to new keys as they rotated ({keys} keys)");
    // Flat: after warm-up (15 s), no sample more than 3 MB over the first one.
    let settled = rss.iter().find(|(t, _)| *t >= 15).unwrap().1;
    let peak = rss.iter().filter(|(t, _)| *t >= 15).map(|(_, kb)| *kb).max().unwrap();
    assert!(peak <= settled + 3 * 1024, "RSS grew from {settled} kB to {peak} kB");
}
