//! `make bench` (gateway): what the Vertex gateway adds. `vertex-broker serve` (release, its own
//! process, audit lines and metrics on as shipped) forwards `:generateContent` to the Google
//! emulator; the baseline is the same call sent to the emulator directly with the broker's token,
//! interleaved round by round. Prints p50/p99 at 1 and 10 concurrent callers with the broker's CPU
//! time per call (its own work, apart from queueing on shared cores), the added time to the first
//! SSE event, and its RSS idle and with 32 streams open. Asserts nothing.

use test_support as support;

use support::bench::cpu_seconds;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROUNDS: usize = 5;
/// Calls per caller per round.
const CALLS: usize = 100;
const STREAMS: usize = 32;
const MODEL: &str = "/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash";

fn main() {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run());
}

async fn run() {
    let f = support::Fixture::new("bench-gateway").await;
    let port = support::free_port();
    let mut serve = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), &f, port)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = format!("http://127.0.0.1:{port}");
    let token = loop {
        let got = reqwest::Client::new()
            .get(format!("{broker}/computeMetadata/v1/instance/service-accounts/default/token"))
            .header("Metadata-Flavor", "Google")
            .send()
            .await;
        if let Ok(r) = got {
            if r.status() == 200 {
                break r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let direct = Target { url: format!("{}{MODEL}", f.emu.url()), token: Some(token) };
    let gateway = Target { url: format!("{broker}/vertex{MODEL}"), token: None };
    let pid = serve.id().unwrap();
    let idle_kb = support::proc_status_kb(pid, "VmRSS:");

    println!("gateway: serve (release, one thread) -> emulator vs. emulator directly; {ROUNDS} interleaved rounds");
    for callers in [1usize, 10] {
        let (mut d, mut g) = (Vec::new(), Vec::new());
        // The broker's own CPU time during its rounds: its work per call, apart from queueing.
        let mut cpu = 0.0;
        for round in 0..ROUNDS {
            // Alternate which goes first, so neither always runs on a warmer machine.
            if round % 2 == 0 {
                d.extend(load(&direct, callers).await);
                let before = cpu_seconds(pid);
                g.extend(load(&gateway, callers).await);
                cpu += cpu_seconds(pid) - before;
            } else {
                let before = cpu_seconds(pid);
                g.extend(load(&gateway, callers).await);
                cpu += cpu_seconds(pid) - before;
                d.extend(load(&direct, callers).await);
            }
        }
        let (d50, d99, g50, g99) = (pct(&mut d, 50.0), pct(&mut d, 99.0), pct(&mut g, 50.0), pct(&mut g, 99.0));
        println!(
            "  {callers:>2} caller(s), generateContent, {} calls each: direct p50 {:.3} ms p99 {:.3} ms | gateway p50 {:.3} ms \
             p99 {:.3} ms | added p50 {:.3} ms p99 {:.3} ms ({:.2}x / {:.2}x) | broker CPU {:.0} us per call",
            d.len(),
            ms(d50),
            ms(d99),
            ms(g50),
            ms(g99),
            ms(g50.saturating_sub(d50)),
            ms(g99.saturating_sub(d99)),
            g50.as_secs_f64() / d50.as_secs_f64(),
            g99.as_secs_f64() / d99.as_secs_f64(),
            cpu * 1e6 / g.len() as f64,
        );
    }

    // First event of a stream: the emulator sends it at once, then one every 20 ms.
    f.emu.set_vertex_latency(Duration::ZERO, Duration::from_millis(20));
    let (mut d, mut g) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 10 {
        let (a, b) = if round % 2 == 0 { (&direct, &gateway) } else { (&gateway, &direct) };
        let (ta, tb) = (first_event(a).await, first_event(b).await);
        let (td, tg) = if round % 2 == 0 { (ta, tb) } else { (tb, ta) };
        d.push(td);
        g.push(tg);
    }
    let (d50, g50, d90, g90) = (pct(&mut d, 50.0), pct(&mut g, 50.0), pct(&mut d, 90.0), pct(&mut g, 90.0));
    let (dmax, gmax) = (pct(&mut d, 100.0), pct(&mut g, 100.0));
    println!(
        "  first SSE event (new connection each), {} streams each: direct p50 {:.3} p90 {:.3} max {:.3} ms | gateway \
         p50 {:.3} p90 {:.3} max {:.3} ms | added p50 {:.3} ms, p90 {:.3} ms",
        d.len(),
        ms(d50),
        ms(d90),
        ms(dmax),
        ms(g50),
        ms(g90),
        ms(gmax),
        ms(g50.saturating_sub(d50)),
        ms(g90.saturating_sub(d90)),
    );

    // 32 streams open at once, each 40 events 50 ms apart (2 s): the broker's RSS meanwhile.
    f.emu.set_vertex_latency(Duration::ZERO, Duration::from_millis(50));
    let words = vec!["w"; 38].join(" ");
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (url, words) = (gateway.url.clone(), words.clone());
            tokio::spawn(async move {
                let mut resp = reqwest::Client::new()
                    .post(format!("{url}:streamGenerateContent?alt=sse"))
                    .json(&prompt(&words))
                    .send()
                    .await
                    .unwrap();
                let mut events = 0;
                while let Some(chunk) = resp.chunk().await.unwrap() {
                    events += chunk.windows(4).filter(|w| w == b"\r\n\r\n").count();
                }
                events
            })
        })
        .collect();
    let mut peak_kb = 0;
    let sampling = Instant::now();
    while streams.iter().any(|s| !s.is_finished()) && sampling.elapsed() < Duration::from_secs(30) {
        peak_kb = peak_kb.max(support::proc_status_kb(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut events = 0;
    for s in streams {
        events += s.await.unwrap();
    }
    println!(
        "  RSS: idle {:.1} MB, peak with {STREAMS} streams open {:.1} MB (+{:.1} MB); {events} events passed through",
        idle_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0,
        peak_kb.saturating_sub(idle_kb) as f64 / 1024.0
    );
    let _ = serve.kill().await;
}

struct Target {
    url: String,
    /// The token to send (direct); the gateway adds its own.
    token: Option<String>,
}

fn prompt(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn request(client: &reqwest::Client, t: &Target, verb: &str) -> reqwest::RequestBuilder {
    let req = client.post(format!("{}:{verb}", t.url)).json(&prompt("hello bench"));
    match &t.token {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
}

/// `callers` concurrent callers, each with its own keep-alive connection, [`CALLS`] calls each.
async fn load(t: &Target, callers: usize) -> Vec<Duration> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = reqwest::Client::new();
            let req = request(&client, t, "generateContent");
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(CALLS);
                for _ in 0..CALLS {
                    let started = Instant::now();
                    let resp = req.try_clone().unwrap().send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.bytes().await.unwrap();
                    times.push(started.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Time from sending a streaming call to its first event.
async fn first_event(t: &Target) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut resp = request(&client, t, "streamGenerateContent?alt=sse").send().await.unwrap();
    resp.chunk().await.unwrap().unwrap();
    let at = started.elapsed();
    while resp.chunk().await.unwrap().is_some() {}
    at
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
