//! What a new user trips over on a fresh clone, each now answered: `make dev` options as make
//! variables, `dev` refusing what would spin or be ignored, a closed pipe ending `dev` quietly,
//! a missing AWS region named, every SECRET argument explained in --help.

use std::process::{Command, Stdio};
use std::time::Duration;

use test_support as support;
use tokio::io::{AsyncBufReadExt, BufReader};

const CLI: &str = env!("CARGO_BIN_EXE_vertex-broker");

/// The CLI with an empty environment but PATH (and an empty HOME, so no AWS profile).
fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(CLI);
    support::clean_env(&mut cmd).args(args);
    cmd
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn make_dev_takes_its_options_as_make_variables() {
    let o = Command::new("make")
        .args(["-n", "dev", "PORT=2780", "ROTATE_EVERY=30s", "KEYLESS=1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("make runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("dev --port 2780") && text.contains("--rotate-every 30s") && text.contains("--keyless"),
        "{text}"
    );
    let plain = Command::new("make").args(["-n", "dev"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("--port"), "no options unless asked");
}

#[test]
fn dev_refuses_a_rotation_interval_that_would_spin_and_json_it_cannot_give() {
    let o = cli(&["dev", "--rotate-every", "0s"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("too short"), "{}", stderr(&o));
    let o = cli(&["dev", "--output", "json", "--port", "1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no JSON output"), "{}", stderr(&o));
}

#[test]
fn credentials_without_a_region_are_told_to_set_aws_region() {
    let o = cli(&["status", "some-secret"])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("set AWS_REGION"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("dispatch"), "no raw SDK error: {}", stderr(&o));
}

#[test]
fn every_secret_argument_says_what_it_is() {
    for command in ["rotate", "status", "init", "revoke"] {
        let o = cli(&[command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        let line = help.lines().find(|l| l.trim_start().starts_with("<SECRET>")).unwrap_or_default();
        assert!(line.contains("name or ARN"), "`{command} --help` explains <SECRET>: {help}");
    }
}

/// `vertex-broker dev` on a free port, and its standard output line by line.
fn dev(rotate_every: &str) -> (tokio::process::Child, tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let port = test_support::free_port().to_string();
    let mut child = tokio::process::Command::from(cli(&["dev", "--port", &port, "--rotate-every", rotate_every]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[tokio::test]
async fn dev_piped_into_head_stops_quietly_and_its_banner_says_where_commands_go() {
    let (mut child, mut lines) = dev("1s");
    let banner = async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("second terminal");
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("the banner never said where its commands go: {seen:?}");
    };
    let seen = tokio::time::timeout(Duration::from_secs(60), banner).await.expect("dev printed its banner");
    assert!(seen.iter().any(|l| l.starts_with("Leave this running")), "{seen:?}");
    drop(lines); // like `head`: the reader goes away; the next rotation line meets a closed pipe
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("dev ends").unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut err).await.unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_against_the_sandboxs_in_memory_secret_with_the_banners_exports() {
    let (_child, mut lines) = dev("1h");
    // `export A=1 B=2 \` then `  C=3 D=4`: the variables the banner tells the user to set.
    let exports = async {
        let mut vars = Vec::new();
        let mut continued = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = line.trim();
            let words = match line.strip_prefix("export AWS_ENDPOINT_URL_SECRETS_MANAGER") {
                Some(_) => &line["export ".len()..],
                None if continued => line,
                None => continue,
            };
            continued = words.ends_with('\\');
            vars.extend(words.trim_end_matches('\\').split_whitespace().filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            }));
            if !continued {
                return vars;
            }
        }
        panic!("the banner shows no Secrets Manager endpoint");
    };
    let vars = tokio::time::timeout(Duration::from_secs(60), exports).await.expect("dev printed its banner");
    assert!(vars.iter().any(|(k, _)| k == "VERTEX_BROKER_IAM_ENDPOINT"), "{vars:?}");
    let run = |args: &[&str]| {
        let mut cmd = cli(args);
        cmd.envs(vars.clone());
        cmd.output().unwrap()
    };
    let status = run(&["status", "vertex-broker-dev", "--output", "json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["account"], "vertex-dev@dev-project.iam.gserviceaccount.com");

    let token = run(&["token", "--secret", "vertex-broker-dev"]);
    assert!(token.status.success(), "{}", stderr(&token));
    assert!(String::from_utf8_lossy(&token.stdout).trim().len() > 20);

    let rotated = run(&["rotate", "vertex-broker-dev", "--wait", "--timeout", "60s", "--output", "json"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let rotated: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(rotated["state"], "finished");
    let after = run(&["status", "vertex-broker-dev", "--output", "json"]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    let current = after["versions"].as_array().unwrap().iter().find(|v| v["stages"].to_string().contains("AWSCURRENT"));
    assert_eq!(current.unwrap()["version_id"], rotated["version"], "the asked rotation is AWSCURRENT");
}
