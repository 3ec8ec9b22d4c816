//! The gateway under hostile callers and upstreams, through the real binary (`serve`): a body of
//! one-byte chunks leaves RSS bounded; callers that stop reading free their slots;
//! Google's system query parameters never go up; an upstream that echoes the bearer token, sends
//! hop-by-hop headers or answers 101 hands the caller none of it, whatever the token mode.

use test_support as support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Fixture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MODEL: &str = "/vertex/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash";

fn serve(f: &Fixture, port: u16, endpoint: &str, extra: &[(&str, &str)]) -> tokio::process::Child {
    let child = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), f, port)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", endpoint)
        .envs(extra.iter().copied())
        .spawn()
        .unwrap();
    child
}

/// Sends `head` and `body` on a new connection; the status of the answer.
async fn raw_status(port: u16, head: &str, body: &[u8]) -> (TcpStream, u16) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&line).split(' ').nth(1).unwrap().parse().unwrap();
    (conn, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_one_byte_chunks_leaves_rss_bounded() {
    const CHUNKS: usize = 200_000;
    let f = Fixture::new("hostile-chunks").await;
    let port = support::free_port();
    let child = serve(&f, port, &f.emu.url(), &[("VERTEX_BROKER_VERTEX_DEADLINE", "120s")]);
    support::wait_listening(port).await;
    let pid = child.id().unwrap();
    let json = br#"{"contents":[{"role":"user","parts":[{"text":"chunks"}]}]}"#;
    // The JSON, then spaces, one byte per chunk. hyper hands the broker one chunk per wake-up,
    // which a debug build does at about 30 us: 200,000 chunks here (make bench sends 1,000,000
    // to the release build).
    let mut body = Vec::with_capacity(6 * CHUNKS + 5);
    for i in 0..CHUNKS {
        let b = json.get(i).copied().unwrap_or(b' ');
        body.extend_from_slice(&[b'1', b'\r', b'\n', b, b'\r', b'\n']);
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {MODEL}:generateContent HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    // Warm: the first call mints the token and grows the pools.
    let warm = format!("{:x}\r\n{}\r\n0\r\n\r\n", json.len(), String::from_utf8_lossy(json));
    let (_, status) = raw_status(port, &head, warm.as_bytes()).await;
    assert_eq!(status, 200);
    let before = support::proc_status_kb(pid, "VmHWM:");
    let (mut conn, status) = raw_status(port, &head, &body).await;
    if status != 200 {
        let mut rest = vec![0u8; 2000];
        let n = conn.read(&mut rest).await.unwrap_or(0);
        panic!("{status}: {}", String::from_utf8_lossy(&rest[..n]));
    }
    let after = support::proc_status_kb(pid, "VmHWM:");
    let grown_mb = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "peak RSS {:.1} MB before, {:.1} MB after {CHUNKS} one-byte chunks (+{grown_mb:.1} MB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(grown_mb < 2.0, "one call's memory stays a small multiple of its 0.2 MB body: +{grown_mb:.1} MB");
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_stop_reading_free_their_slots() {
    let f = Fixture::new("hostile-stalled").await;
    let port = support::free_port();
    let child =
        serve(&f, port, &f.emu.url(), &[("VERTEX_BROKER_MAX_CONNECTIONS", "4"), ("VERTEX_BROKER_WRITE_TIMEOUT", "1s")]);
    support::wait_listening(port).await;
    // An answer larger than what loopback's socket buffers hold: the echo of a 12 MB prompt.
    let prompt = "ab ".repeat(4_000_000);
    let body =
        serde_json::to_vec(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})).unwrap();
    let head = format!(
        "POST {MODEL}:generateContent HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let (conn, status) = raw_status(port, &head, &body).await;
        assert_eq!(status, 200);
        stalled.push(conn); // and never read again
    }
    let started = Instant::now();
    let fresh = loop {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}{MODEL}:generateContent"))
            .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "fresh"}]}]}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 || started.elapsed() > Duration::from_secs(15) {
            break r.status();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fresh, 200, "a fresh caller is served once the stalled ones time out");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within the write timeout, give or take: {:?}",
        started.elapsed()
    );
    println!("served a fresh caller {:?} after four stalled ones held every slot", started.elapsed());
    drop(stalled);
    let (out, _) = support::stop_serve(child).await;
    let outcomes: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["event"] == "vertex-broker.audit")
        .map(|l| l["outcome"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "caller_went_away").count(), 4, "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_still_going_at_the_deadline_is_cut() {
    let f = Fixture::new("hostile-deadline").await;
    let port = support::free_port();
    f.emu.set_vertex_latency(Duration::ZERO, Duration::from_millis(300));
    let child = serve(&f, port, &f.emu.url(), &[("VERTEX_BROKER_VERTEX_DEADLINE", "1s")]);
    support::wait_listening(port).await;
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{MODEL}:streamGenerateContent?alt=sse"))
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "w w w w w w w w w w"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.is_err(), "cut off, not ended as if whole");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let (out, _) = support::stop_serve(child).await;
    assert!(out.contains("\"outcome\":\"deadline_passed\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_parameters_and_unknown_ones_get_400_and_never_reach_upstream() {
    let f = Fixture::new("hostile-query").await;
    let port = support::free_port();
    let child = serve(&f, port, &f.emu.url(), &[]);
    support::wait_listening(port).await;
    let http = reqwest::Client::new();
    let endpoint = format!("http://127.0.0.1:{port}/vertex/v1/projects/proj-test/locations/us-central1/endpoints/1");
    let prompt = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "q"}]}]});
    for (url, post) in [
        (format!("{endpoint}?$httpMethod=DELETE"), false),
        (format!("{endpoint}?%24httpMethod=DELETE"), false),
        (format!("{endpoint}?$httpMethod=PATCH&updateMask=x"), false),
        (format!("http://127.0.0.1:{port}{MODEL}:generateContent?access_token=x"), true),
        (format!("http://127.0.0.1:{port}{MODEL}:generateContent?key=AIza"), true),
        (format!("http://127.0.0.1:{port}{MODEL}:generateContent?alt=json&callback=f"), true),
        (format!("http://127.0.0.1:{port}{MODEL}:generateContent?upload_protocol=raw"), true),
    ] {
        let resp = if post { http.post(&url).json(&prompt).send().await } else { http.get(&url).send().await }.unwrap();
        assert_eq!(resp.status(), 400, "{url}");
        let e: Value = resp.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains("query parameter"), "{e}");
    }
    assert_eq!(f.emu.calls("vertex"), 0, "none reached Vertex");
    drop(child);
}

/// An upstream that reflects what it is sent: the `Authorization` it got in a header and in the
/// body (split across two chunks), hop-by-hop headers of its own, and a 101 for streams.
async fn echoing_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = conn.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let auth =
                    head.lines().find_map(|l| l.strip_prefix("authorization: ")).unwrap_or("").trim().to_string();
                record.lock().unwrap().push(auth.clone());
                if head.contains(":streamGenerateContent") {
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let status = if head.contains(":countTokens") { "400 Bad Request" } else { "200 OK" };
                let body = format!(
                    r#"{{"error":{{"message":"you sent {auth}, did you mean to?"}},"usageMetadata":{{"totalTokenCount":1}}}}"#
                );
                let split = body.find("ya29.").map_or(body.len() / 2, |at| at + 8);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-echo: {auth}\r\nproxy-authenticate: Basic realm=\"x\"\r\n\
                     keep-alive: timeout=5\r\nconnection: close, x-hop\r\nx-hop: secret\r\ntransfer-encoding: chunked\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                for part in [&body[..split], &body[split..]] {
                    let _ = conn.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes()).await;
                    let _ = conn.flush().await;
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                let _ = conn.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_echoes_the_token_leaks_nothing_in_any_token_mode() {
    let f = Fixture::new("hostile-echo").await;
    let (upstream, seen) = echoing_upstream().await;
    let prompt = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "echo"}]}]});
    for mode in ["on", "off", "gateway"] {
        let port = support::free_port();
        let child = serve(&f, port, &upstream, &[("VERTEX_BROKER_TOKEN_ENDPOINTS", mode)]);
        support::wait_listening(port).await;
        let http = reqwest::Client::new();
        for verb in ["generateContent", "countTokens"] {
            let resp = http.post(format!("http://127.0.0.1:{port}{MODEL}:{verb}")).json(&prompt).send().await.unwrap();
            let sent = seen.lock().unwrap().last().cloned().unwrap();
            let token = sent.strip_prefix("Bearer ").expect("the upstream got the broker's token");
            assert!(token.starts_with("ya29."), "{mode}: {sent}");
            let headers = format!("{:?}", resp.headers());
            assert!(!headers.contains(token), "{mode} {verb}: a header leaks the token: {headers}");
            assert_eq!(resp.headers()["x-echo"], "[redacted by vertex-broker]", "{mode} {verb}");
            for hop in ["proxy-authenticate", "keep-alive", "x-hop", "connection", "upgrade"] {
                assert!(
                    resp.headers().get(hop).is_none(),
                    "{mode} {verb}: {hop} is the upstream's hop, not ours: {headers}"
                );
            }
            let body = resp.text().await.unwrap();
            assert!(!body.contains(token) && body.contains(&"*".repeat(token.len())), "{mode} {verb}: {body}");
        }
        let upgrade = http
            .post(format!("http://127.0.0.1:{port}{MODEL}:streamGenerateContent"))
            .json(&prompt)
            .send()
            .await
            .unwrap();
        assert_eq!(upgrade.status(), 502, "{mode}: a 101 nobody asked for");
        let (out, err) = support::stop_serve(child).await;
        assert!(err.contains("echoed the bearer token"), "{mode}: logged: {err}");
        let masked: u64 = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|l| l["TokenEchoesMasked"].as_u64())
            .sum();
        assert_eq!(masked, 4, "{mode}: a header and a body, twice, counted");
        assert!(!out.contains("ya29.") && !err.contains("ya29."), "{mode}: no token in any log");
    }
}
