//! The broker as a hostile or broken neighbour on 127.0.0.1 would try it, through the real
//! `vertex-broker serve` binary: DNS rebinding and browser, proxy and absolute-form requests;
//! thousands of idle connections; slowloris heads; exhausted file descriptors; a flood of invented
//! scope sets; malformed scopes and audiences; SIGHUP; SIGTERM with a request in flight.

use test_support as support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use google_emulator::Fault;
use support::Fixture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::TOKEN_PATH as TOKEN;

/// A running `vertex-broker serve`, its stderr lines collected.
struct Serve {
    child: tokio::process::Child,
    port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts it for the fixture's secret with `env` on top; `prefix` wraps the command (prlimit).
    async fn start(f: &Fixture, env: &[(&str, &str)], prefix: &[&str]) -> Self {
        let port = support::free_port();
        let bin = env!("CARGO_BIN_EXE_vertex-broker");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = tokio::process::Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => tokio::process::Command::new(bin),
        };
        support::clean_env(cmd.as_std_mut());
        cmd.arg("serve")
            .env("VERTEX_BROKER_SECRET_ID", &f.secret)
            .env("VERTEX_BROKER_PORT", port.to_string())
            .env("VERTEX_BROKER_LOG", "info")
            .envs(support::aws_env())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn({
            let logs = logs.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            }
        });
        support::wait_listening(port).await;
        let serve = Self { child, port, logs };
        // Warm: the first token is minted (so later probes measure the listener alone).
        let (status, body) = serve.get(TOKEN, &[]).await;
        assert_eq!(status, 200, "{body}");
        serve
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// A well-formed metadata GET plus `extra` header lines; (status, body).
    async fn get(&self, target: &str, extra: &[&str]) -> (u16, String) {
        let mut head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nMetadata-Flavor: Google\r\n", self.port);
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        self.raw(&head).await
    }

    /// Sends `head` (request line and headers, without the blank line) with `Connection: close`.
    async fn raw(&self, head: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
            .await
            .expect("answered within 20 s")
            .unwrap();
        let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn rss_kb(&self) -> u64 {
        support::proc_status_kb(self.pid(), "VmRSS:")
    }

    /// User + system CPU time of the process so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }

    fn log_lines(&self, containing: &str) -> usize {
        self.logs.lock().unwrap().iter().filter(|l| l.contains(containing)).count()
    }

    async fn status(&self) -> serde_json::Value {
        let (status, body) = self.get("/vertex-broker/v1/status", &[]).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn signal(&self, sig: &str) {
        assert!(std::process::Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap().success());
    }
}

fn clock_ticks() -> u64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Opens `n` connections to `port` (sending nothing), `batch` at a time.
async fn open_connections(port: u16, n: usize, batch: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let tries: Vec<_> = (0..batch.min(n - open.len())).map(|_| TcpStream::connect(("127.0.0.1", port))).collect();
        for stream in futures_join(tries).await.into_iter().flatten() {
            open.push(stream);
        }
    }
    open
}

/// Runs `futures` as tasks at once; their outputs in order.
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// This test process needs several thousand descriptors: raise its soft limit to the hard one.
fn raise_own_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().nth(4).unwrap();
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={hard}:")]).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_browser_proxy_and_absolute_form_requests_are_refused() {
    let f = Fixture::new("rebind").await;
    let b = Serve::start(&f, &[], &[]).await;
    let minted = f.emu.counters(&f.account).access_tokens;

    // DNS rebinding: the page's own name in Host, and a browser's fetch metadata.
    let (status, body) = b
        .raw(&format!(
            "GET {TOKEN} HTTP/1.1\r\nHost: attacker.example:{}\r\nMetadata-Flavor: Google\r\nSec-Fetch-Site: same-origin\r\n",
            b.port
        ))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("access_token"));
    let (status, body) = b
        .raw(&format!("GET {TOKEN} HTTP/1.1\r\nHost: attacker.example:{}\r\nMetadata-Flavor: Google\r\n", b.port))
        .await;
    assert_eq!(status, 403);
    assert!(body.contains("attacker.example") && body.contains("not a loopback or metadata name"), "{body}");
    for (header, says) in [
        ("Sec-Fetch-Site: same-origin", "sec-fetch-site"),
        ("Origin: http://attacker.example", "origin"),
        ("Forwarded: for=10.0.0.1", "forwarded"),
        ("Via: 1.1 proxy", "via"),
        ("X-Forwarded-Host: evil", "x-forwarded-host"),
    ] {
        let (status, body) = b.get(TOKEN, &[header]).await;
        assert_eq!(status, 403, "{header}: {body}");
        assert!(body.contains(says), "{header}: {body}");
        assert_eq!(body.trim_end().lines().count(), 1, "one line: {body}");
    }
    let (status, body) = b
        .raw(&format!(
            "GET http://evil.example{TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nMetadata-Flavor: Google\r\n",
            b.port
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("absolute-form"), "{body}");

    // The metadata names themselves are served.
    for host in ["localhost", "metadata.google.internal", "169.254.169.254:80", "[::1]:2775"] {
        let (status, body) =
            b.raw(&format!("GET {TOKEN} HTTP/1.1\r\nHost: {host}\r\nMetadata-Flavor: Google\r\n")).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    assert_eq!(f.emu.counters(&f.account).access_tokens, minted, "no refused request reached Google");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_connections_leave_a_fresh_request_served_and_memory_bounded() {
    raise_own_fd_limit();
    let f = Fixture::new("idle").await;
    let b = Serve::start(&f, &[("VERTEX_BROKER_HEADER_TIMEOUT", "60s")], &[]).await;
    let before = b.rss_kb();
    let idle = open_connections(b.port, 5000, 250).await;
    let started = Instant::now();
    let (status, body) = b.get(TOKEN, &[]).await;
    assert_eq!(status, 200, "a fresh request is served beside 5,000 idle connections: {body}");
    eprintln!("fresh request beside 5,000 idle connections: {:?}", started.elapsed());
    let after = b.rss_kb();
    eprintln!("broker RSS {before} kB before, {after} kB after 5,000 connections");
    // 256 connections at the cap cost a few MB; 5,000 cost 86-122 MB before the cap.
    assert!(after < before + 16 * 1024, "RSS grew from {before} kB to {after} kB");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_after_the_header_timeout() {
    let f = Fixture::new("slowloris").await;
    let b = Serve::start(&f, &[("VERTEX_BROKER_HEADER_TIMEOUT", "1s")], &[]).await;
    let port = b.port;
    let started = Instant::now();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                s.write_all(format!("GET {TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n").as_bytes()).await.unwrap();
                // One more header line every 200 ms, never the blank line that ends the head.
                for i in 0..50 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        _ => {}
                    }
                }
                started.elapsed()
            })
        })
        .collect();
    let (status, _) = b.get(TOKEN, &[]).await;
    assert_eq!(status, 200, "served while the slow heads trickle in");
    for t in slow {
        let closed_after = t.await.unwrap();
        assert!(closed_after < Duration::from_secs(4), "closed after {closed_after:?}");
        assert!(closed_after >= Duration::from_millis(900), "closed before the timeout: {closed_after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_descriptors_cost_little_cpu_and_few_log_lines() {
    let f = Fixture::new("nofile").await;
    let b = Serve::start(&f, &[("VERTEX_BROKER_HEADER_TIMEOUT", "60s")], &["prlimit", "--nofile=64:64", "--"]).await;
    // More connections than descriptors: the broker holds what it can, the rest wait in the
    // kernel's queue and every accept fails with EMFILE.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", b.pid())).unwrap();
    assert_eq!(comm.trim(), "vertex-broker", "prlimit ran the broker in its own process");
    let held = open_connections(b.port, 150, 50).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu_before, logs_before) = (b.cpu(), b.log_lines("cannot accept"));
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let (cpu, logs) = (b.cpu() - cpu_before, b.log_lines("cannot accept") - logs_before);
    eprintln!("with descriptors exhausted: {cpu:?} of CPU and {logs} log lines in {window:?}");
    assert!(b.log_lines("cannot accept") >= 1, "the exhaustion was reached and reported");
    assert!(cpu < window / 10, "{cpu:?} of CPU in {window:?}: the accept loop spins");
    assert!(logs <= 4, "{logs} log lines in {window:?}: at most one a second");

    drop(held);
    let started = Instant::now();
    let (status, body) = b.get(TOKEN, &[]).await;
    assert_eq!(status, 200, "serves again once descriptors are free: {body}");
    eprintln!("recovered in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_scope_sets_are_held_to_the_slot_cap_and_the_mint_limits() {
    let f = Fixture::new("scopes").await;
    let b = Serve::start(&f, &[], &[]).await;
    let scope = |i: usize| format!("{TOKEN}?scopes=https://www.googleapis.com/auth/invented.{i}");

    // 150 new scope sets at once while Google is slow: at most VERTEX_BROKER_MAX_MINTS (4)
    // reach it at the same time.
    f.emu.inject(Fault { endpoint: "token".into(), count: 1000, status: None, delay_ms: 300 });
    let burst: Vec<_> = (0..150)
        .map(|i| {
            let (port, target) = (b.port, scope(i));
            async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let head = format!(
                    "GET {target} HTTP/1.1\r\nHost: localhost\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n"
                );
                s.write_all(head.as_bytes()).await.unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).await.unwrap();
                answer
            }
        })
        .collect();
    let answers = futures_join(burst).await;
    f.emu.clear_faults();
    assert!(f.emu.max_in_flight("token") <= 4, "{} mints at Google at once", f.emu.max_in_flight("token"));
    let refused: Vec<&String> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).collect();
    assert!(!refused.is_empty());
    assert!(refused[0].to_lowercase().contains("retry-after:"), "{}", refused[0]);

    // 20,000 distinct scope sets over keep-alive connections, as a runaway loop would send them.
    tokio::time::sleep(Duration::from_secs(1)).await; // a full bucket
    let minted_before = f.emu.counters(&f.account).access_tokens;
    let started = Instant::now();
    let http = reqwest::Client::new();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (http, base) = (http.clone(), format!("http://127.0.0.1:{}", b.port));
            tokio::spawn(async move {
                let (mut ok, mut limited, mut example) = (0, 0, None);
                for i in (w..20_000).step_by(8) {
                    let r = http
                        .get(format!("{base}{TOKEN}?scopes=https://www.googleapis.com/auth/flood.{i}"))
                        .header("Metadata-Flavor", "Google")
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => ok += 1,
                        429 => {
                            limited += 1;
                            let body = r.text().await.unwrap();
                            let named = ["VERTEX_BROKER_MINT_RATE", "VERTEX_BROKER_MAX_MINTS"];
                            assert!(named.iter().any(|v| body.contains(v)), "{body}");
                            if body.contains("VERTEX_BROKER_MINT_RATE") {
                                example = Some(body);
                            }
                        }
                        other => panic!("{other}: {}", r.text().await.unwrap()),
                    }
                }
                (ok, limited, example)
            })
        })
        .collect();
    let (mut ok, mut limited, mut example) = (0, 0, None);
    for w in workers {
        let (o, l, e) = w.await.unwrap();
        (ok, limited) = (ok + o, limited + l);
        example = example.or(e);
    }
    let elapsed = started.elapsed();
    let minted = f.emu.counters(&f.account).access_tokens - minted_before;
    eprintln!("20,000 scope sets in {elapsed:?}: {ok} minted, {limited} refused 429; {minted} mints at Google");
    assert_eq!(ok + limited, 20_000);
    assert_eq!(minted, ok as u64, "every 200 was one mint, every 429 none");
    let allowed = 5.0 * elapsed.as_secs_f64() + 5.0;
    assert!((minted as f64) <= allowed, "{minted} mints in {elapsed:?}: over VERTEX_BROKER_MINT_RATE=5");
    let example = example.expect("some were refused by the rate, naming its variable");
    assert!(example.contains("per second"), "{example}");

    let status = b.status().await;
    let slots = status["accounts"][0]["access_tokens"]["slots"].as_u64().unwrap();
    assert!(slots <= 64, "{slots} slots: over VERTEX_BROKER_MAX_SLOTS");
    assert!(status["accounts"][0]["counters"]["limited"].as_u64().unwrap() >= limited as u64);
    let (status, _) = b.get(TOKEN, &[]).await;
    assert_eq!(status, 200, "the default scope set was never evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_scopes_and_audiences_are_refused_with_400() {
    let f = Fixture::new("badinput").await;
    let b = Serve::start(&f, &[], &[]).await;
    let minted = f.emu.counters(&f.account);
    for (query, says) in [
        ("scopes=https://www.googleapis.com/auth/a%0Db", "not a Google scope"),
        ("scopes=https://www.googleapis.com/auth/a%00", "not a Google scope"),
        ("scopes=https://www.googleapis.com/auth/%ff", "not a Google scope"),
        ("scopes=cloud-platform", "not a Google scope"),
        ("scopes=", "empty"),
    ] {
        let (status, body) = b.get(&format!("{TOKEN}?{query}"), &[]).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
        assert_eq!(body.trim_end().lines().count(), 1, "{body}");
    }
    let identity = "/computeMetadata/v1/instance/service-accounts/default/identity";
    for (query, says) in [
        ("audience=a%0Db", "control characters"),
        ("audience=a%00", "control characters"),
        ("audience=%ff", "not UTF-8"),
        ("", "needs audience"),
        (&format!("audience={}", "a".repeat(1100)) as &str, "longer than"),
    ] {
        let (status, body) = b.get(&format!("{identity}?{query}"), &[]).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    assert_eq!(f.emu.counters(&f.account), minted, "nothing reached Google");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_secret_and_the_broker_survives() {
    let f = Fixture::new("sighup").await;
    let mut b = Serve::start(&f, &[("VERTEX_BROKER_SECRET_TTL", "1h")], &[]).await;
    f.rotate().await;
    let new_version = f.version_with("AWSCURRENT").await.unwrap();
    let new_key = f.key_at("AWSCURRENT").await.unwrap();
    assert_ne!(b.status().await["accounts"][0]["secret_version"], new_version.as_str(), "TTL 1h: not re-read yet");

    b.signal("-HUP");
    support::wait_for("SIGHUP re-reading the secret", Duration::from_secs(5), || async {
        (b.status().await["accounts"][0]["secret_version"] == new_version.as_str()).then_some(())
    })
    .await;
    assert!(b.child.try_wait().unwrap().is_none(), "still running after SIGHUP");
    let (status, body) = b.get(&format!("{TOKEN}?scopes=openid"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(f.emu.token_key_id(v["access_token"].as_str().unwrap()).as_deref(), Some(new_key.private_key_id()));
    assert!(b.log_lines("SIGHUP") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish() {
    let f = Fixture::new("sigterm").await;
    let mut b = Serve::start(&f, &[], &[]).await;
    // The next mint takes 1.5 s at Google: a request for a new scope set is in flight that long.
    f.emu.inject(Fault { endpoint: "token".into(), count: 1, status: None, delay_ms: 1500 });
    let port = b.port;
    let in_flight = tokio::spawn(async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!("GET {TOKEN}?scopes=openid HTTP/1.1\r\nHost: localhost\r\nMetadata-Flavor: Google\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).to_string()
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(("127.0.0.1", b.port)).await.is_err(), "no new connections while draining");
    let answer = in_flight.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "the request in flight was answered: {answer}");
    assert!(answer.contains("access_token"));
    let status = tokio::time::timeout(Duration::from_secs(5), b.child.wait()).await.expect("exits after draining");
    assert!(status.unwrap().success());
}
