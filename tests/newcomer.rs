//! What a new user trips over on a fresh clone, each now answered: `make dev` options as make
//! variables, `dev` refusing what would spin or be ignored, a closed pipe ending `dev` quietly,
//! a missing AWS region named, every SECRET argument explained in --help.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const CLI: &str = env!("CARGO_BIN_EXE_vertex-broker");

/// The CLI with an empty environment but PATH (and HOME pointing nowhere, so no AWS profile).
fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(CLI);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir().join("vertex-broker-no-home"))
        .stdin(Stdio::null());
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

#[tokio::test]
async fn dev_piped_into_head_stops_quietly_and_its_banner_says_where_commands_go() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::from(cli(&["dev", "--port", &port.to_string(), "--rotate-every", "1s"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
