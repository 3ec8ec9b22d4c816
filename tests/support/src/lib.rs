//! The test harness every crate's tests and benches share: one real `moto_server` per test
//! binary, an SDK client for it, a `Fixture` that wires a fresh secret to a fresh Google
//! emulator, brokers, Lambda APIs and Google's client libraries.

pub mod bench;
pub mod broker;
pub mod extensions_api;
pub mod failing_store;
pub mod federation;
pub mod nginx;
pub mod process;
pub mod runtime_api;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::Client;
use google_emulator::Emulator;
use vertex_broker::config::RevokeMode;
use vertex_broker::google::iam::RetryPolicy;
use vertex_broker::key::ServiceAccountKey;
use vertex_broker::rotation::{Outcome, Rotation, RotationError, RotationEvent, RotationSettings, Step};
use vertex_broker::store::{SecretStore, SecretsManagerStore};

pub use process::{clean_command, clean_env, wait_for, wait_listening, TOKEN_PATH};

/// The repository's root folder.
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The endpoint of this test binary's moto_server. The test command starts one and exports
/// AWS_ENDPOINT_URL; a bare `cargo test` starts its own from the repo's venv (or PATH).
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| match std::env::var("AWS_ENDPOINT_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_moto(),
        })
        .clone()
}

fn start_moto() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/moto_server");
    let bin = if std::path::Path::new(venv).exists() { venv } else { "moto_server" };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The shell ends moto when this process ends (its stdin, our pipe, closes).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{bin} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; echo started; read _; kill $m"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}; run the README's test command, which installs moto"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    std::mem::forget(child); // keep its stdin open for the life of this process
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("http://127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{bin} did not listen on 127.0.0.1:{port} within 20 s");
}

/// The AWS environment every spawned binary gets: moto's endpoint and dummy credentials and
/// region, so no credential provider ever probes the network.
/// The Lambda binary under test: the one cargo built (`built`), or the command line in the
/// environment variable `override_var`. The test command runs the binary tests again that way on
/// the packaged binaries of the other architecture, under qemu-user.
pub fn lambda_binary(override_var: &str, built: &str) -> tokio::process::Command {
    match std::env::var(override_var) {
        Ok(line) if !line.trim().is_empty() => {
            let mut words = line.split_whitespace();
            let mut cmd = tokio::process::Command::new(words.next().unwrap());
            cmd.args(words);
            cmd
        }
        _ => tokio::process::Command::new(built),
    }
}

/// Environment variables that point a child process's AWS SDK at this binary's moto.
pub fn aws_env() -> [(&'static str, String); 4] {
    [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// A Secrets Manager client on this binary's moto.
pub fn sm_client() -> Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(moto_endpoint())
        .build();
    Client::from_conf(conf)
}

/// A free port on 127.0.0.1 (for a process this test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `vertex-broker serve` (`binary`, which only the root crate's tests and benches can name) for
/// the fixture's secret on `port`, with nothing from this environment but PATH and moto's AWS
/// variables; output piped, killed when dropped. Callers add variables and spawn it.
pub fn serve_command(binary: &str, f: &Fixture, port: u16) -> tokio::process::Command {
    let mut cmd = clean_command(binary);
    cmd.arg("serve")
        .env("VERTEX_BROKER_SECRET_ID", &f.secret)
        .env("VERTEX_BROKER_PORT", port.to_string())
        .envs(aws_env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Stops a `serve` process with SIGTERM and returns its standard output and error; it must exit
/// 0 within 10 s.
pub async fn stop_serve(mut child: tokio::process::Child) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let pid = child.id().expect("serve is running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM");
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    (out, err)
}

/// A server-sent-event answer read to its end: the first chunk as it arrived, when it arrived
/// and when the stream ended (measured from `started`), and every `data:` event parsed.
pub struct SseRead {
    /// The first chunk, as it arrived.
    pub first: String,
    /// When the first chunk arrived.
    pub first_at: Duration,
    /// When the stream ended.
    pub done_at: Duration,
    /// Each `data:` event, parsed.
    pub events: Vec<serde_json::Value>,
}

/// Reads an SSE answer to its end, timing its first chunk and its end from `started`.
pub async fn read_sse(mut resp: reqwest::Response, started: std::time::Instant) -> SseRead {
    let first = resp.chunk().await.unwrap().expect("a first event");
    let first_at = started.elapsed();
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let done_at = started.elapsed();
    let first = String::from_utf8(first.to_vec()).unwrap();
    let all = first.clone() + &String::from_utf8(rest).unwrap();
    let events =
        all.split("\r\n\r\n").filter(|e| !e.is_empty()).map(|e| serde_json::from_str(&e[6..]).unwrap()).collect();
    SseRead { first, first_at, done_at, events }
}

/// A field of `/proc/PID/status` in kB (`VmRSS:`), 0 when unreadable.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A project-style service-account email unique to one test.
pub fn account(prefix: &str) -> String {
    format!("{}@proj-test.iam.gserviceaccount.com", unique(prefix))
}

/// Settings for tests: quick retries, short timeouts.
pub fn settings(emu: &Emulator) -> RotationSettings {
    RotationSettings {
        iam_endpoint: emu.url(),
        admin_secret_id: None,
        propagation_timeout: Duration::from_secs(15),
        revoke: RevokeMode::Delete,
        http_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retries: 3,
        },
    }
}

/// A secret in moto holding a key the emulator minted for a fresh account.
pub struct Fixture {
    /// The Google emulator the key belongs to.
    pub emu: Emulator,
    /// A Secrets Manager client on moto.
    pub sm: Client,
    /// The same moto as the engine's store.
    pub store: Arc<SecretsManagerStore>,
    /// The secret's ARN.
    pub secret: String,
    /// The service account's email.
    pub account: String,
    /// Rotation settings pointed at the emulator.
    pub settings: RotationSettings,
}

impl Fixture {
    /// A fresh account with one seeded key, stored in a new secret named after `prefix`.
    pub async fn new(prefix: &str) -> Self {
        let emu = Emulator::start().await.unwrap();
        let account = account(prefix);
        let key = emu.seed_key(&account);
        Self::with_key(emu, prefix, &account, &key).await
    }

    /// A fixture whose secret holds `value` (which may be anything) for `account`.
    pub async fn with_key(emu: Emulator, prefix: &str, account: &str, value: &str) -> Self {
        let sm = sm_client();
        let out = sm.create_secret().name(unique(prefix)).secret_string(value).send().await.unwrap();
        let settings = settings(&emu);
        Self {
            emu,
            store: Arc::new(SecretsManagerStore::new(sm.clone())),
            sm,
            secret: out.arn().unwrap().to_string(),
            account: account.to_string(),
            settings,
        }
    }

    /// The rotation engine on this fixture's secret.
    pub fn rotation(&self) -> Rotation {
        Rotation::new(self.store.clone(), self.settings.clone())
    }

    /// The rotation engine over another store (a failing one, say), same settings.
    pub fn rotation_on(&self, store: Arc<dyn SecretStore>) -> Rotation {
        Rotation::new(store, self.settings.clone())
    }

    /// What Secrets Manager does on RotateSecret: enable rotation and label a value-less new
    /// version AWSPENDING. moto does exactly that, then fails to find the (absent) Lambda, so
    /// the test takes the new pending version's id as the ClientRequestToken.
    pub async fn begin_rotation(&self) -> String {
        let res = self
            .sm
            .rotate_secret()
            .secret_id(&self.secret)
            .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:vertex-broker-rotation")
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder().automatically_after_days(30).build(),
            )
            .send()
            .await;
        if let Err(e) = &res {
            let text = format!("{:?}", e);
            assert!(text.contains("ResourceNotFound"), "unexpected RotateSecret failure: {text}");
        }
        self.version_with("AWSPENDING").await.expect("RotateSecret labelled a version AWSPENDING")
    }

    /// The Secrets Manager event for `step` of the rotation `token`.
    pub fn event(&self, step: Step, token: &str) -> RotationEvent {
        RotationEvent {
            step: step.as_str().to_string(),
            secret_id: self.secret.clone(),
            client_request_token: token.to_string(),
            rotation_token: None,
        }
    }

    /// Runs one step as the rotation Lambda would.
    pub async fn step(&self, rotation: &Rotation, step: Step, token: &str) -> Result<Outcome, RotationError> {
        rotation.run(&self.event(step, token), None).await
    }

    /// Runs the four steps for `token`, stopping at the first failure.
    pub async fn run_steps(&self, rotation: &Rotation, token: &str) -> Result<(), RotationError> {
        for step in Step::ALL {
            self.step(rotation, step, token).await?;
        }
        Ok(())
    }

    /// A whole rotation as Secrets Manager runs it; returns the token.
    pub async fn rotate(&self) -> String {
        let token = self.begin_rotation().await;
        self.run_steps(&self.rotation(), &token).await.unwrap();
        token
    }

    /// Each version id of the secret with its staging labels.
    pub async fn stages(&self) -> std::collections::HashMap<String, Vec<String>> {
        let d = self.sm.describe_secret().secret_id(&self.secret).send().await.unwrap();
        d.version_ids_to_stages().cloned().unwrap_or_default()
    }

    /// The version that carries `stage`, if any.
    pub async fn version_with(&self, stage: &str) -> Option<String> {
        self.stages().await.into_iter().find(|(_, s)| s.iter().any(|x| x == stage)).map(|(v, _)| v)
    }

    /// The key stored under `stage`, if that version parses as one.
    pub async fn key_at(&self, stage: &str) -> Option<ServiceAccountKey> {
        let out = self.sm.get_secret_value().secret_id(&self.secret).version_stage(stage).send().await.ok()?;
        ServiceAccountKey::parse(out.secret_string()?).ok()
    }

    /// Key ids the account holds at Google right now (propagated or not).
    pub fn google_keys(&self) -> Vec<String> {
        self.emu.keys(&self.account).into_iter().map(|k| k.id).collect()
    }

    /// Whether `key` mints an access token at the emulator now.
    pub async fn mints(&self, key: &ServiceAccountKey) -> bool {
        vertex_broker::google::token::TokenClient::new(Duration::from_secs(5))
            .access_token(key, &["https://www.googleapis.com/auth/cloud-platform".into()])
            .await
            .is_ok()
    }

    /// The invariants that must hold after any failure: AWSCURRENT mints, the keys of
    /// AWSCURRENT and AWSPREVIOUS exist and are enabled, and at most one key more is held.
    pub async fn assert_safe(&self, context: &str) {
        let current = self.key_at("AWSCURRENT").await.unwrap_or_else(|| panic!("{context}: no AWSCURRENT key"));
        assert!(self.mints(&current).await, "{context}: the AWSCURRENT key does not mint a token");
        let mut named = vec![current.private_key_id().to_string()];
        if let Some(previous) = self.key_at("AWSPREVIOUS").await {
            named.push(previous.private_key_id().to_string());
        }
        named.dedup();
        let keys = self.emu.keys(&self.account);
        for id in &named {
            let k = keys
                .iter()
                .find(|k| &k.id == id)
                .unwrap_or_else(|| panic!("{context}: key {id} named by a stage was revoked"));
            assert!(!k.disabled, "{context}: key {id} named by a stage was disabled");
        }
        assert!(
            keys.len() <= named.len() + 1,
            "{context}: the account holds {} keys, more than {} named by stages + 1",
            keys.len(),
            named.len()
        );
    }
}

/// Calls the emulator's Vertex `:generateContent` with `token`; returns the HTTP status (200:
/// Vertex accepts the token).
pub async fn generate(emu: &Emulator, token: &str) -> u16 {
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

/// The claims of a JWT (an ID token), unverified.
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
