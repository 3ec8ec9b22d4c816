//! `make bench` (gateway vs nginx): the gateway beside the obvious alternative, nginx as a
//! one-worker reverse proxy that injects `Authorization` and writes one JSON access line per
//! call. Same upstream for all (a second nginx answering a fixed `generateContent` answer with
//! `usageMetadata`), wrk on loopback, rounds interleaved: throughput, p50/p99 and CPU per call
//! for a direct call, nginx and the gateway (release `serve`, audit lines and metrics on), at 1
//! and 10 callers, the gateway again with audit lines and metrics off (what they cost), and the
//! floor under the gateway: a proxy of the same parts doing nothing else (what they cost); then
//! the gateway's peak RSS across 1,000,000 one-byte chunks. With
//! `BENCH_BASELINE_VERTEX_BROKER=path` another build of the CLI runs beside this one (before and
//! after). `BENCH_ONLY=floor,baseline` runs only the targets whose names hold one of those words
//! (with the direct call and nginx). With `BENCH_HOLD_SECONDS=n` it prints each target's URL and
//! process (the floor's: its thread) id and waits n seconds before the rounds, for `perf record
//! -p` or `strace -c -p`. Asserts nothing.

use test_support as support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use support::bench::{cpu_seconds, median_run, wrk, Wrk};
use support::nginx::Nginx;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "gateway_nginx/floor.rs"]
mod floor;

const ROUNDS: usize = 3;
const SECONDS: u32 = 3;
const MODEL: &str =
    "/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";
const ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"echo: hello bench"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":3,"totalTokenCount":5},"modelVersion":"gemini-2.0-flash"}"#;

fn main() {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run());
}

async fn wait_answering(url: &str) {
    for _ in 0..200 {
        if let Ok(r) =
            reqwest::Client::new().post(url).body("{}").header("content-type", "application/json").send().await
        {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} does not answer");
}

/// One target of the rounds: its URL and the process (the floor: the thread) whose CPU is its
/// cost (none: direct).
struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
    runs: Vec<Wrk>,
    cpu: f64,
}

async fn run() {
    let f = support::Fixture::new("bench-nginx").await;
    let dir = std::env::temp_dir().join(support::unique("bench-nginx"));
    std::fs::create_dir_all(&dir).unwrap();
    let up = support::free_port();
    let upstream = Nginx::start(
        &dir,
        "upstream",
        &format!(
            "  access_log off;\n  server {{ listen 127.0.0.1:{up}; location / {{ default_type application/json; \
             return 200 '{ANSWER}'; }} }}"
        ),
    );
    wait_answering(&format!("http://127.0.0.1:{up}{MODEL}")).await;

    // This build with audit lines and metrics on (the default, and the one compared), the same
    // build with both off (what they cost), and a baseline build if one is named.
    let this = PathBuf::from(env!("CARGO_BIN_EXE_vertex-broker"));
    let quiet: &[(&str, &str)] = &[("VERTEX_BROKER_AUDIT", "off"), ("VERTEX_BROKER_METRICS", "off")];
    let mut gateways =
        vec![("gateway".to_string(), this.clone(), &[][..]), ("gateway, no audit/metrics".into(), this, quiet)];
    if let Some(baseline) = std::env::var_os("BENCH_BASELINE_VERTEX_BROKER") {
        gateways.push(("gateway (baseline build)".to_string(), PathBuf::from(baseline), &[][..]));
    }
    let mut serves = Vec::new();
    let mut targets = vec![Target {
        name: "direct".into(),
        url: format!("http://127.0.0.1:{up}{MODEL}"),
        pid: None,
        runs: vec![],
        cpu: 0.0,
    }];
    for (name, binary, env) in &gateways {
        let port = support::free_port();
        let serve = support::serve_command(binary.to_str().unwrap(), &f, port)
            .env("VERTEX_BROKER_VERTEX_ENDPOINT", format!("http://127.0.0.1:{up}"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/vertex{MODEL}");
        wait_answering(&url).await;
        targets.push(Target { name: name.clone(), url, pid: serve.id(), runs: vec![], cpu: 0.0 });
        serves.push(serve);
    }
    // nginx as the obvious alternative: the account's token injected, a JSON line per call.
    let token = reqwest::Client::new()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            targets[1].url.split("/vertex").next().unwrap()
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let px = support::free_port();
    let proxy = Nginx::start(
        &dir,
        "proxy",
        &format!(
            "  log_format audit escape=json '{{\"time\":\"$time_iso8601\",\"request\":\"$request_uri\",\"status\":$status,\
             \"latency\":$request_time,\"upstream\":\"$upstream_response_time\",\"bytes\":$body_bytes_sent}}';\n\
             access_log /dev/null audit;\n  upstream vertex {{ server 127.0.0.1:{up}; keepalive 32; }}\n\
             server {{ listen 127.0.0.1:{px}; location / {{ proxy_pass http://vertex; proxy_http_version 1.1; \
             proxy_set_header Connection \"\"; proxy_set_header Authorization \"Bearer {token}\"; }} }}"
        ),
    );
    let proxy_url = format!("http://127.0.0.1:{px}{MODEL}");
    wait_answering(&proxy_url).await;
    targets.insert(1, Target { name: "nginx".into(), url: proxy_url, pid: Some(proxy.pid()), runs: vec![], cpu: 0.0 });
    let (fp, thread) = floor::start(up, &token);
    let floor_url = format!("http://127.0.0.1:{fp}{MODEL}");
    wait_answering(&floor_url).await;
    targets.push(Target {
        name: "floor (hyper, same parts)".into(),
        url: floor_url,
        pid: Some(thread),
        runs: vec![],
        cpu: 0.0,
    });

    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hello bench\"}]}]}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )
    .unwrap();
    let script = script.display().to_string();
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        targets.retain(|t| t.name == "direct" || t.name == "nginx" || only.split(',').any(|o| t.name.contains(o)));
    }
    if let Some(hold) = std::env::var("BENCH_HOLD_SECONDS").ok().and_then(|s| s.parse().ok()) {
        for t in &targets {
            println!("hold: {} {} pid {:?} (wrk script {script})", t.name, t.url, t.pid);
        }
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    println!(
        "gateway vs nginx: generateContent to one upstream (nginx, fixed answer), wrk on loopback, {ROUNDS} interleaved \
         rounds of {SECONDS} s; medians; CPU per call of the proxy process, the floor's thread (all rounds)"
    );
    for connections in [1u32, 10] {
        for t in &mut targets {
            t.runs.clear();
            t.cpu = 0.0;
        }
        for round in 0..ROUNDS {
            // A different target goes first each round.
            let n = targets.len();
            for i in 0..n {
                let t = &mut targets[(i + round) % n];
                let before = t.pid.map(cpu_seconds);
                let run = wrk(&t.url, connections, SECONDS, &["-s", &script]);
                if let (Some(pid), Some(before)) = (t.pid, before) {
                    t.cpu += cpu_seconds(pid) - before;
                }
                t.runs.push(run);
            }
        }
        let nginx_rps = median_rps(&targets[1]);
        let nginx_cpu = cpu_per_call(&targets[1]);
        for t in &targets {
            let requests: u64 = t.runs.iter().map(|r| r.requests).sum();
            let cpu = cpu_per_call(t);
            let median = median_run(t.runs.clone());
            let versus = match (t.name.as_str(), cpu) {
                ("direct" | "nginx", _) => String::new(),
                (_, Some(c)) => format!(
                    " | {:.2}x nginx's throughput, {:.2}x its CPU per call",
                    median.rps / nginx_rps,
                    c / nginx_cpu.unwrap_or(f64::NAN)
                ),
                _ => String::new(),
            };
            println!(
                "  {connections:>2} caller(s) {:<26} {:>8.0} calls/s  p50 {:>8} p99 {:>8}  CPU {} ({requests} calls){versus}",
                t.name,
                median.rps,
                median.p50,
                median.p99,
                cpu.map_or("-".to_string(), |c| format!("{:.0} us/call", c * 1e6)),
            );
        }
    }

    // 1,000,000 one-byte chunks to each gateway: its peak RSS before and after.
    for t in targets.iter().filter(|t| t.name.starts_with("gateway") && !t.name.contains("no audit")) {
        let pid = t.pid.unwrap();
        let before = support::proc_status_kb(pid, "VmHWM:");
        let port: u16 = t.url.split(':').nth(2).unwrap().split('/').next().unwrap().parse().unwrap();
        let status = one_byte_chunks(port, 1_000_000).await;
        let after = support::proc_status_kb(pid, "VmHWM:");
        println!(
            "  {}: 1,000,000 one-byte chunks answered {status}; peak RSS {:.1} MB before, {:.1} MB after (+{:.1} MB)",
            t.name,
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after.saturating_sub(before) as f64 / 1024.0
        );
    }
    for mut s in serves {
        let _ = s.kill().await;
    }
    drop((proxy, upstream));
    let _ = std::fs::remove_dir_all(&dir);
}

fn median_rps(t: &Target) -> f64 {
    let mut rps: Vec<f64> = t.runs.iter().map(|r| r.rps).collect();
    rps.sort_by(f64::total_cmp);
    rps[rps.len() / 2]
}

fn cpu_per_call(t: &Target) -> Option<f64> {
    let requests: u64 = t.runs.iter().map(|r| r.requests).sum();
    t.pid.map(|_| t.cpu / requests.max(1) as f64)
}

/// Sends a generateContent body of `chunks` one-byte chunks; the answer's status.
async fn one_byte_chunks(port: u16, chunks: usize) -> String {
    let json = br#"{"contents":[{"role":"user","parts":[{"text":"chunks"}]}]}"#;
    let mut body = Vec::with_capacity(6 * chunks + 5);
    for i in 0..chunks {
        body.extend_from_slice(&[b'1', b'\r', b'\n', json.get(i).copied().unwrap_or(b' '), b'\r', b'\n']);
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /vertex{MODEL} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body).await.unwrap();
    let mut answer = [0u8; 64];
    let n = conn.read(&mut answer).await.unwrap_or(0);
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or("nothing").to_string()
}
