//! The `vertex-broker` CLI end to end against moto_server and the Google emulator: each
//! command in text and JSON, its error paths and exit codes, status warnings, and `dev`.

use test_support as support;

use std::process::{Output, Stdio};
use std::time::Duration;

use google_emulator::Emulator;
use serde_json::Value;
use support::Fixture;
use tokio::io::{AsyncBufReadExt, BufReader};
use vertex_broker::rotation::Step;

fn cli(emu: &Emulator) -> tokio::process::Command {
    let mut cmd = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"));
    cmd.envs(support::aws_env()).env("VERTEX_BROKER_IAM_ENDPOINT", emu.url());
    cmd
}

async fn run(emu: &Emulator, args: &[&str]) -> Output {
    cli(emu).args(args).output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), stdout(o), stderr(o));
}

async fn predict(emu: &Emulator, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/projects/p/locations/l/endpoints/1:predict", emu.url()))
        .bearer_auth(token)
        .json(&serde_json::json!({"instances": [1]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_status_token_rotate_and_revoke_in_text_and_json() {
    let emu = Emulator::start().await.unwrap();
    let account = support::account("cli");
    let dir = std::env::temp_dir().join(support::unique("cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key.json");
    std::fs::write(&key_file, emu.seed_key(&account)).unwrap();
    let key_path = key_file.to_str().unwrap();
    let name = support::unique("cli-secret");

    let o = run(&emu, &["init", &name, "--key-file", key_path]).await;
    ok(&o);
    assert!(stdout(&o).starts_with("created arn:aws:secretsmanager:"), "{}", stdout(&o));

    let o = run(&emu, &["status", &name, "--output", "json"]).await;
    ok(&o);
    let s = json(&o);
    assert_eq!(s["account"], account.as_str());
    assert_eq!(s["keys"].as_array().unwrap().len(), 1);
    assert_eq!(s["keys"][0]["stages"][0], "AWSCURRENT");
    assert_eq!(s["keys"][0]["managed"], true);
    let first_key = s["keys"][0]["key_id"].as_str().unwrap().to_string();

    let o = run(&emu, &["token", "--secret", &name]).await;
    ok(&o);
    assert_eq!(predict(&emu, stdout(&o).trim()).await, 200);
    let o = run(&emu, &["token", "--secret", &name, "--audience", "https://svc.example", "--output", "json"]).await;
    ok(&o);
    let id = json(&o)["id_token"].as_str().unwrap().to_string();
    assert_eq!(id.split('.').count(), 3);

    let o = run(&emu, &["rotate", &name, "--local"]).await;
    ok(&o);
    let text = stdout(&o);
    for step in Step::ALL {
        assert!(text.contains(step.as_str()), "{text}");
    }
    assert!(text.contains("is AWSCURRENT"), "{text}");

    let o = run(&emu, &["status", &name]).await;
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("AWSCURRENT") && text.contains("AWSPREVIOUS") && text.contains(&first_key), "{text}");
    let s = json(&run(&emu, &["status", &name, "--output", "json"]).await);
    let current = s["keys"].as_array().unwrap().iter().find(|k| k["stages"][0] == "AWSCURRENT").unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_string();

    let o = run(&emu, &["revoke", &name, "--key-id", &current, "--yes"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing to revoke") && stderr(&o).contains("AWSCURRENT"), "{}", stderr(&o));

    let o = run(&emu, &["revoke", &name, "--previous"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    assert!(emu.keys(&account).iter().any(|k| k.id == first_key), "nothing revoked without confirmation");

    let o = run(&emu, &["revoke", &name, "--previous", "--yes", "--output", "json"]).await;
    ok(&o);
    assert_eq!(json(&o)["revoked"][0], first_key.as_str());
    assert!(!emu.keys(&account).iter().any(|k| k.id == first_key));

    // A second init stores a new AWSCURRENT version in the existing secret.
    let o = run(&emu, &["init", &name, "--key-file", key_path, "--output", "json"]).await;
    ok(&o);
    assert_eq!(json(&o)["created"], false);
}

#[tokio::test]
async fn error_paths_have_clear_messages_and_exit_codes() {
    let emu = Emulator::start().await.unwrap();
    let missing = support::unique("no-such-secret");
    let o = run(&emu, &["status", &missing]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    let o = run(&emu, &["rotate", &missing, "--local"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    let dir = std::env::temp_dir().join(support::unique("cli-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    let mut key: Value = serde_json::from_str(&emu.seed_key(&support::account("bad"))).unwrap();
    key["type"] = "authorized_user".into();
    std::fs::write(&bad, key.to_string()).unwrap();
    let o = run(&emu, &["init", &support::unique("bad"), "--key-file", bad.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`type`") && stderr(&o).contains("service_account"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("PRIVATE KEY"));

    let o = run(&emu, &["init", "x", "--key-file", "/nonexistent/key.json"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    let o = run(&emu, &["revoke", "x"]).await;
    assert_eq!(o.status.code(), Some(2), "clap demands one of --key-id/--previous/--orphans");
}

#[tokio::test]
async fn rotate_local_resumes_a_rotation_left_half_done() {
    let f = Fixture::new("resume").await;
    let token = f.begin_rotation().await;
    f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap();
    assert_eq!(f.google_keys().len(), 2);

    let o = run(&f.emu, &["rotate", &f.secret, "--local", "--output", "json"]).await;
    ok(&o);
    let v = json(&o);
    assert_eq!(v["version"], token.as_str(), "resumed with the pending token");
    assert!(v["steps"][0]["outcome"].as_str().unwrap().contains("already stored"), "{v}");
    assert_eq!(f.stages().await[&token], vec!["AWSCURRENT"]);
    assert_eq!(f.google_keys().len(), 2, "no extra key");
    f.assert_safe("after rotate --local").await;
}

#[tokio::test]
async fn status_reports_each_warning_on_a_setup_built_to_trigger_it() {
    let f = Fixture::new("warn").await;
    f.emu.set_key_expiry(&f.account, Some(Duration::from_secs(86_400)));
    f.rotate().await; // current key now expires in a day; the schedule says 30 days
    for _ in 0..5 {
        f.emu.seed_key(&f.account); // not minted by the secret
    }
    let token = f.begin_rotation().await;
    f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap(); // left stuck in AWSPENDING
    assert_eq!(f.google_keys().len(), 8);

    let o = run(&f.emu, &["status", &f.secret, "--output", "json"]).await;
    ok(&o);
    let v = json(&o);
    let kinds: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap()).collect();
    for kind in ["near_key_limit", "expires_before_next_rotation", "stuck_pending", "unmanaged_keys"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let unmanaged = v["warnings"].as_array().unwrap().iter().find(|w| w["kind"] == "unmanaged_keys").unwrap();
    assert_eq!(unmanaged["key_ids"].as_array().unwrap().len(), 5);

    let o = run(&f.emu, &["status", &f.secret]).await;
    ok(&o);
    let text = stdout(&o);
    for needle in ["8 of Google's 10 keys", "expires", "rotation is stuck", "not minted by this secret"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    // --orphans only touches keys this secret minted (here: the stuck pending one), never foreign ones.
    let o = run(&f.emu, &["revoke", &f.secret, "--orphans", "--yes", "--output", "json"]).await;
    ok(&o);
    let revoked = json(&o)["revoked"].as_array().unwrap().len();
    assert_eq!(revoked, 1, "{}", stdout(&o));
    assert_eq!(f.google_keys().len(), 7);
}

/// Gets a token from the `dev` broker on `port` and calls the sandbox emulator's Vertex with it,
/// as the banner's curl lines do; returns the HTTP status.
async fn dev_token_at_vertex(port: u16, emulator_url: &str) -> u16 {
    let token: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{}", support::TOKEN_PATH))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct = reqwest::Client::new()
        .post(format!("{emulator_url}/v1/projects/dev-project/locations/us-central1/endpoints/demo:predict"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&serde_json::json!({"instances": [{"prompt": "hello"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    // The banner's gateway line: the same call with no token in hand.
    let gateway = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/vertex/v1/projects/dev-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        ))
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(gateway.status(), 200, "{:?}", gateway.text().await);
    direct
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_a_token_vertex_accepts_rotates_and_stops_on_sigint() {
    let emu = Emulator::start().await.unwrap(); // only for the environment; dev embeds its own
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = cli(&emu)
        .args(["dev", "--port", &port.to_string(), "--rotate-every", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut emulator_url = None;
    let mut rotated = None;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("Google emulator ") {
                emulator_url = rest.split_whitespace().next().map(str::to_string);
                assert_eq!(dev_token_at_vertex(port, emulator_url.as_deref().unwrap()).await, 200);
            }
            if line.starts_with("rotation 1:") {
                rotated = Some(line);
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("dev printed its banner and rotated");
    assert!(emulator_url.is_some(), "the banner names the emulator");
    let rotated = rotated.unwrap();
    assert!(rotated.contains("is AWSCURRENT"), "{rotated}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("stops on Ctrl-C").unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert!(rest.contains("stopped"), "{rest}");
}

#[tokio::test]
async fn init_mints_the_first_key_with_an_admin_key() {
    let emu = Emulator::start().await.unwrap();
    let admin = support::account("admin");
    let target = support::account("target");
    let dir = std::env::temp_dir().join(support::unique("cli-admin"));
    std::fs::create_dir_all(&dir).unwrap();
    let admin_file = dir.join("admin.json");
    std::fs::write(&admin_file, emu.seed_key(&admin)).unwrap();
    let name = support::unique("minted");

    // Without key-admin rights on the target, Google refuses: exit 5, nothing stored.
    let o = run(&emu, &["init", &name, "--service-account", &target, "--admin-key-file", admin_file.to_str().unwrap()])
        .await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));

    emu.grant_key_admin(&target, &admin);
    let o = run(
        &emu,
        &[
            "init",
            &name,
            "--service-account",
            &target,
            "--admin-key-file",
            admin_file.to_str().unwrap(),
            "--output",
            "json",
        ],
    )
    .await;
    ok(&o);
    let v = json(&o);
    assert_eq!(v["created"], true);
    assert_eq!(v["account"], target.as_str());
    assert_eq!(emu.keys(&target).len(), 1);
    let o = run(&emu, &["token", "--secret", &name]).await;
    ok(&o);
    assert_eq!(emu.token_account(stdout(&o).trim()).as_deref(), Some(target.as_str()));

    let o = run(&emu, &["init", &support::unique("x"), "--service-account", &target]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--admin-key-file"), "{}", stderr(&o));
}

#[tokio::test]
async fn rotate_asks_secrets_manager_and_wait_follows_the_new_version() {
    // moto never runs a rotation function: asked to rotate a secret that already has rotation
    // configured, it moves AWSCURRENT to a new version itself. That is enough to check the
    // CLI's RotateSecret call and its --wait loop, not a rotation function.
    let f = Fixture::new("remote").await;
    f.begin_rotation().await; // enables rotation
    let o = run(&f.emu, &["rotate", &f.secret, "--wait", "--timeout", "20s", "--output", "json"]).await;
    ok(&o);
    let v = json(&o);
    assert_eq!(v["state"], "finished");
    let version = v["version"].as_str().unwrap();
    assert_eq!(f.version_with("AWSCURRENT").await.as_deref(), Some(version));

    let o = run(&f.emu, &["rotate", &f.secret]).await;
    ok(&o);
    assert!(stdout(&o).contains("started"), "{}", stdout(&o));

    let o = run(&f.emu, &["rotate", &support::unique("missing")]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("rotate --local"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keyless_federates_offline_and_its_doctor_line_passes() {
    let emu = Emulator::start().await.unwrap(); // only for the environment; dev embeds its own
    let port = support::free_port();
    let mut child = cli(&emu)
        .args(["dev", "--keyless", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut emulator_url, mut doctor_env) = (None, Vec::new());
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = line.trim().to_string();
            if let Some(rest) = line.strip_prefix("Google emulator ") {
                emulator_url = rest.split_whitespace().next().map(str::to_string);
            }
            // The banner's doctor command: VAR=value pairs over two lines, then the command.
            if line.starts_with("AWS_ACCESS_KEY_ID=") || line.starts_with("VERTEX_BROKER_CREDENTIAL_CONFIG=") {
                doctor_env.extend(
                    line.split_whitespace()
                        .filter_map(|w| w.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
            }
            if line.starts_with("Ctrl-C stops") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("dev printed its banner");
    let url = emulator_url.expect("the banner names the emulator");
    assert_eq!(dev_token_at_vertex(port, &url).await, 200, "the impersonated sample account's token works at Vertex");

    // The banner's doctor line walks the same keyless path, every step ok.
    assert!(doctor_env.iter().any(|(k, _)| k == "AWS_SECRET_ACCESS_KEY"), "{doctor_env:?}");
    let addr = format!("127.0.0.1:{port}");
    let out = support::clean_command(env!("CARGO_BIN_EXE_vertex-broker"))
        .args(["doctor", "--output", "json"])
        .envs(doctor_env)
        .env("GCE_METADATA_HOST", &addr)
        .env("GCE_METADATA_IP", &addr)
        .output()
        .await
        .unwrap();
    ok(&out);
    let report = json(&out);
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}");
    }
    assert!(report["checks"][1]["detail"].as_str().unwrap().contains("assumed-role/vertex-dev-function"), "{report}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("stops on Ctrl-C").unwrap();
    assert!(status.success(), "{status:?}");
}
