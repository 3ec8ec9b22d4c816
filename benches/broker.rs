//! `make bench` (broker part): the layer's extension binary, registered with an Extensions API
//! served here, as Lambda would run it. The token endpoint under wrk at 1, 10 and 64 keep-alive
//! connections next to a bare hyper server answering the same bytes (the floor for any HTTP
//! server here); INVOKE-to-/next with 1 and 200 slots, nothing due and all due, next to a bare
//! extension that does nothing on INVOKE (interleaved); idle RSS, RSS with 5,000 connections
//! held and after they close, RSS after a million requests, exec-to-listening,
//! exec-to-first-token and the stripped extension size. Prints ratios; asserts nothing.

use test_support as support;

use support::bench::{median_run, Wrk};

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use support::extensions_api::ExtensionsApi;
use support::Fixture;

const TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--bare-server") {
        let body = args[i + 1].clone();
        return bare_server(body, args.get(i + 2).map(String::as_str) == Some("multi"));
    }
    if args.iter().any(|a| a == "--bare-extension") {
        return bare_extension();
    }
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

/// The floor: hyper, HTTP/1.1 keep-alive, same headers and body, no logic. `multi` runs it on
/// tokio's multi-threaded runtime; otherwise on one thread, like the extension.
fn bare_server(body: String, multi: bool) {
    let rt = if multi {
        tokio::runtime::Runtime::new().unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    };
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        let body = Bytes::from(body);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let mut resp = Response::new(Full::new(body.clone()));
                    let h = resp.headers_mut();
                    h.insert("metadata-flavor", hyper::header::HeaderValue::from_static("Google"));
                    h.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// The INVOKE floor: an extension that registers and does nothing on any event, on one thread.
fn bare_extension() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let events = lambda_extension::service_fn(|_e: lambda_extension::LambdaEvent| async {
            Ok::<(), lambda_extension::Error>(())
        });
        let _ = lambda_extension::Extension::new()
            .with_events(&["INVOKE", "SHUTDOWN"])
            .with_events_processor(events)
            .run()
            .await;
    });
}

fn invoke_event() -> serde_json::Value {
    let deadline =
        (std::time::SystemTime::now() + Duration::from_secs(30)).duration_since(std::time::UNIX_EPOCH).unwrap();
    serde_json::json!({"eventType": "INVOKE", "deadlineMs": deadline.as_millis() as u64, "requestId": "r",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn"})
}

/// Sends an INVOKE; how long until the extension asked for the next event.
async fn time_invoke(api: &ExtensionsApi) -> Duration {
    let n = api.seen().polls;
    let sent = Instant::now();
    api.send(invoke_event());
    let next = api.poll_time(n + 1, Duration::from_secs(30)).await.expect("the extension polled again");
    next.saturating_duration_since(sent)
}

/// (p50, p99) of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Asks the broker for an ID token per audience, waiting out 429s.
async fn ask_audiences(http: &reqwest::Client, port: u16, audiences: &[String]) {
    for a in audiences {
        let url = format!(
            "http://127.0.0.1:{port}/computeMetadata/v1/instance/service-accounts/default/identity?audience={a}"
        );
        while http.get(&url).header("Metadata-Flavor", "Google").send().await.unwrap().status() != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn wrk(port: u16, connections: u32, seconds: u32) -> Wrk {
    support::bench::wrk(
        &format!("http://127.0.0.1:{port}{TOKEN}"),
        connections,
        seconds,
        &["-H", "Metadata-Flavor: Google"],
    )
}

/// (anonymous, file-backed) resident kB: what the process allocated vs the code pages it touched.
fn rss_split_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Pss_Anon:"), field("Pss_File:"))
}

async fn run() {
    let f = Fixture::new("bench-broker").await;
    let port = support::free_port();
    let api = support::extensions_api::ExtensionsApi::start().await;

    // Start-up, measured from exec.
    let started = Instant::now();
    let mut broker = Command::new(env!("CARGO_BIN_EXE_vertex-broker-extension"))
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("VERTEX_BROKER_SECRET_ID", &f.secret)
        .env("VERTEX_BROKER_PORT", port.to_string())
        .env("VERTEX_BROKER_LOG", "warn")
        // Room for the 200-slot measurements below; the defaults are 64 slots and 5 new a second.
        .env("VERTEX_BROKER_MAX_SLOTS", "256")
        .env("VERTEX_BROKER_MINT_RATE", "1000")
        .envs(support::aws_env())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let listening = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{TOKEN}");
    let first_token = loop {
        let r = http.get(&url).header("Metadata-Flavor", "Google").send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let body = http.get(&url).header("Metadata-Flavor", "Google").send().await.unwrap().text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = support::proc_status_kb(broker.id(), "VmRSS:");
    let (idle_anon, idle_file) = rss_split_kb(broker.id());

    // INVOKE -> /next, interleaved with the bare extension (the Extensions API round trip).
    let bare_api = ExtensionsApi::start().await;
    let mut bare_ext = Command::new(std::env::current_exe().unwrap())
        .arg("--bare-extension")
        .env("AWS_LAMBDA_RUNTIME_API", bare_api.addr.to_string())
        .spawn()
        .unwrap();
    bare_api.poll_time(1, Duration::from_secs(10)).await.expect("the bare extension registered");
    let mut invoke_rows = Vec::new();
    let idle_invokes = |label: &'static str| {
        let (api, bare_api) = (&api, &bare_api);
        async move {
            let (mut ours, mut bare) = (Vec::new(), Vec::new());
            for _ in 0..200 {
                ours.push(time_invoke(api).await);
                bare.push(time_invoke(bare_api).await);
            }
            (label, percentiles(ours), Some(percentiles(bare)))
        }
    };
    eprintln!("measuring INVOKE -> /next ...");
    invoke_rows.push(idle_invokes("1 slot, nothing due").await);
    let audiences: Vec<String> = (0..199).map(|i| format!("https://svc-{i}.example")).collect();
    ask_audiences(&http, port, &audiences).await;
    invoke_rows.push(idle_invokes("200 slots, nothing due").await);
    // All due: rotate, SIGHUP (re-read the secret now: every token stale), then INVOKE; the
    // renewals finish in the background before the next round. Only tokens in use are renewed:
    // the audiences are asked again before each round that wants them due.
    let due_invokes = |label: &'static str, in_use: &'static [String]| {
        let (api, f, http) = (&api, &f, &http);
        let pid = broker.id().to_string();
        async move {
            let (mut samples, mut renewed) = (Vec::new(), Vec::new());
            for _ in 0..10 {
                // In use: a client came back for the default token and for these audiences.
                let token = format!("http://127.0.0.1:{port}{TOKEN}");
                assert_eq!(http.get(&token).header("Metadata-Flavor", "Google").send().await.unwrap().status(), 200);
                ask_audiences(http, port, in_use).await;
                f.rotate().await;
                Command::new("kill").args(["-HUP", &pid]).status().unwrap();
                let url = format!("http://127.0.0.1:{port}/vertex-broker/v1/status");
                let want = f.version_with("AWSCURRENT").await.unwrap();
                loop {
                    let s: serde_json::Value =
                        http.get(&url).header("Metadata-Flavor", "Google").send().await.unwrap().json().await.unwrap();
                    if s["accounts"][0]["secret_version"] == want.as_str() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let minted = |c: google_emulator::Counters| c.access_tokens + c.id_tokens;
                let before = minted(f.emu.counters(&f.account));
                samples.push(time_invoke(api).await);
                // The renewals go on in the background: wait until minting has been quiet for
                // 200 ms (at most 10 s) before the next round.
                let (mut last, mut quiet, waited) = (before, 0, Instant::now());
                while (quiet < 10 || last == before) && waited.elapsed() < Duration::from_secs(10) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let now = minted(f.emu.counters(&f.account));
                    quiet = if now == last { quiet + 1 } else { 0 };
                    last = now;
                }
                renewed.push(last - before);
            }
            eprintln!("  {label}: renewals per round {renewed:?}");
            (label, percentiles(samples), None)
        }
    };
    let none: &'static [String] = &[];
    let all: &'static [String] = Box::leak(audiences.clone().into_boxed_slice());
    eprintln!("measuring INVOKE -> /next with slots due ...");
    // 200 first: a key reload marks every token stale, and tokens nobody came back for stay
    // stale until someone does (then a background refresh renews them at once).
    invoke_rows.push(due_invokes("200 slots due", all).await);
    invoke_rows.push(due_invokes("1 slot due (of 200)", none).await);
    // Lambda kills extensions after SHUTDOWN; the bare one relies on that.
    let _ = bare_ext.kill();
    let _ = bare_ext.wait();

    eprintln!("measuring RSS with 5,000 connections ...");
    // 5,000 connection attempts held open, then closed (the cap is 256 by default).
    let _ = Command::new("prlimit").args(["--pid", &std::process::id().to_string(), "--nofile=20000:"]).status();
    let mut held = Vec::new();
    while held.len() < 5000 {
        let batch: Vec<_> =
            (0..250).map(|_| tokio::spawn(tokio::net::TcpStream::connect(("127.0.0.1", port)))).collect();
        for c in batch {
            if let Ok(Ok(stream)) = c.await {
                held.push(stream);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conns_rss = support::proc_status_kb(broker.id(), "VmRSS:");
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_conns_rss = support::proc_status_kb(broker.id(), "VmRSS:");

    // The floors, answering the same bytes: on one thread like the extension (its own
    // overhead), and multi-threaded (the best any server here does).
    let start_bare = |flavor: &str| {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--bare-server", &body, flavor])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        (child, line.trim().parse::<u16>().unwrap())
    };
    let (mut bare, bare_port) = start_bare("single");
    let (mut bare_multi, multi_port) = start_bare("multi");
    // An A/B baseline: another build of the extension (BENCH_BASELINE_EXTENSION=path), run
    // beside this one against the same secret, e.g. the build of the previous commit.
    let baseline_api = ExtensionsApi::start().await;
    let baseline = std::env::var_os("BENCH_BASELINE_EXTENSION").map(|bin| {
        let port = support::free_port();
        let child = Command::new(bin)
            .env("AWS_LAMBDA_RUNTIME_API", baseline_api.addr.to_string())
            .env("VERTEX_BROKER_SECRET_ID", &f.secret)
            .env("VERTEX_BROKER_PORT", port.to_string())
            .env("VERTEX_BROKER_LOG", "warn")
            .envs(support::aws_env())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        (child, port)
    });
    if let Some((_, port)) = &baseline {
        let url = format!("http://127.0.0.1:{port}{TOKEN}");
        while !http.get(&url).header("Metadata-Flavor", "Google").send().await.is_ok_and(|r| r.status() == 200) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    println!("broker benchmark: vertex-broker-extension, GET token endpoint, warm cache, keep-alive, wrk on the same 2 cores");
    println!("medians of 3 interleaved 3 s rounds; floors: bare hyper on one thread (1T) and multi-threaded (MT)");
    println!(
        "{:>5}  {:>10} {:>8} {:>8}   {:>10} {:>8}   {:>10} {:>8}   {:>7} {:>7}",
        "conns", "broker rps", "p50", "p99", "1T rps", "p50", "MT rps", "p50", "vs 1T", "vs MT"
    );
    // wrk and the servers share two cores, so single runs swing by 15%: interleave three
    // 3-second rounds per server and compare medians.
    let mut total = 0;
    let mut baseline_rows = Vec::new();
    for conns in [1, 10, 64] {
        let (mut vs, mut bs, mut ms, mut ab) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            bs.push(wrk(bare_port, conns, 3));
            ms.push(wrk(multi_port, conns, 3));
            let v = wrk(port, conns, 3);
            total += v.requests;
            vs.push(v);
            if let Some((_, port)) = &baseline {
                ab.push(wrk(*port, conns, 3));
            }
        }
        let (v, b, m) = (median_run(vs), median_run(bs), median_run(ms));
        if !ab.is_empty() {
            let a = median_run(ab);
            baseline_rows.push((conns, a.rps, 100.0 * v.rps / a.rps.max(1.0), 100.0 * a.rps / b.rps.max(1.0)));
        }
        println!(
            "{conns:>5}  {:>10.0} {:>8} {:>8}   {:>10.0} {:>8}   {:>10.0} {:>8}   {:>6.1}% {:>6.1}%",
            v.rps,
            v.p50,
            v.p99,
            b.rps,
            b.p50,
            m.rps,
            m.p50,
            100.0 * v.rps / b.rps.max(1.0),
            100.0 * v.rps / m.rps.max(1.0)
        );
    }
    for (conns, rps, ours, vs_floor) in &baseline_rows {
        println!(
            "{conns:>5}  BENCH_BASELINE_EXTENSION {rps:>10.0} rps ({vs_floor:.1}% of 1T); this build {ours:.1}% of it"
        );
    }
    if let Some((mut child, _)) = baseline {
        let _ = child.kill();
        let _ = child.wait();
    }
    while total < 1_000_000 {
        total += wrk(port, 64, 10).requests;
    }
    let busy_rss = support::proc_status_kb(broker.id(), "VmRSS:");
    for child in [&mut bare, &mut bare_multi] {
        let _ = child.kill();
        let _ = child.wait();
    }
    api.send(serde_json::json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}));
    let stopping = Instant::now();
    while stopping.elapsed() < Duration::from_secs(2) && broker.try_wait().ok().flatten().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let shutdown = stopping.elapsed();
    let _ = broker.kill();
    let _ = broker.wait();

    let ext = std::fs::metadata(env!("CARGO_BIN_EXE_vertex-broker-extension")).map(|m| m.len()).unwrap_or(0);
    println!();
    println!("INVOKE -> /next (budget 100 ms); floor: a bare extension that does nothing, interleaved");
    println!("{:<24} {:>10} {:>10}   {:>10} {:>10}   {:>8}", "", "p50 ms", "p99 ms", "bare p50", "bare p99", "p50 vs");
    for (label, (p50, p99), bare) in &invoke_rows {
        match bare {
            Some((b50, b99)) => println!(
                "{label:<24} {:>10.3} {:>10.3}   {:>10.3} {:>10.3}   {:>7.2}x",
                ms(*p50),
                ms(*p99),
                ms(*b50),
                ms(*b99),
                p50.as_secs_f64() / b50.as_secs_f64().max(1e-9)
            ),
            None => println!("{label:<24} {:>10.3} {:>10.3}   (10 rounds: p99 is the slowest)", ms(*p50), ms(*p99)),
        }
    }
    println!();
    println!(
        "  idle RSS (after warm-up)                {:>8.1} MB  (heap and stacks {:.1} MB, code pages {:.1} MB)",
        idle_rss as f64 / 1024.0,
        idle_anon as f64 / 1024.0,
        idle_file as f64 / 1024.0
    );
    println!("  RSS with 5,000 connections held        {:>8.1} MB", conns_rss as f64 / 1024.0);
    println!("  RSS 2 s after they closed               {:>8.1} MB", after_conns_rss as f64 / 1024.0);
    println!("  RSS after {:>9} requests            {:>8.1} MB", total, busy_rss as f64 / 1024.0);
    println!("  exec -> listening                       {:>8.1} ms", listening.as_secs_f64() * 1000.0);
    println!("  exec -> first token (moto + emulator)   {:>8.1} ms", first_token.as_secs_f64() * 1000.0);
    println!("  SHUTDOWN -> exit                        {:>8.1} ms", shutdown.as_secs_f64() * 1000.0);
    println!("  vertex-broker-extension (release, stripped) {:>4.1} MB", ext as f64 / 1_048_576.0);
    println!("  counters: {} mints at the emulator", f.emu.counters(&f.account).access_tokens);
}
