//! Who is a browser: Node's built-in `fetch` (undici, which sends `sec-fetch-mode: cors` on
//! every request) is served by the gateway and the metadata endpoints; headless Chromium
//! loading a page that `fetch()`es the broker gets no token and no gateway answer, whether the
//! page is on another loopback origin, same-origin through a relay, or on a rebinding-shaped host
//! (`attacker.example` resolved to 127.0.0.1 with `--host-resolver-rules`).

use test_support as support;

use base64::Engine;
use serde_json::Value;
use support::broker::RunningBroker;
use support::Fixture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vertex_broker::broker::BrokerSettings;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const MODEL: &str =
    "/vertex/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";

/// A broker with real Google tokens on its metadata endpoint (the mode a page would want) and
/// its gateway calling the emulator.
async fn broker(f: &Fixture) -> RunningBroker {
    let mut settings =
        BrokerSettings { audit: false, metrics_namespace: None, ..BrokerSettings::for_secrets(vec![f.secret.clone()]) };
    settings.vertex.endpoint = Some(f.emu.url());
    RunningBroker::with_settings(settings, f.store.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_global_fetch_is_served_by_the_gateway_and_the_token_endpoint() {
    let f = Fixture::new("node-fetch").await;
    let b = broker(&f).await;
    let out = tokio::process::Command::new("node")
        .args([&format!("{REPO}/tests/node/gateway_client.js"), "fetch", &b.url(""), MODEL])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["candidates"][0]["content"]["parts"][0]["text"], "echo: hello from fetch");
    assert_eq!(v["token_status"], 200, "{v}");
    assert_eq!(f.emu.token_account(v["token"]["access_token"].as_str().unwrap()).as_deref(), Some(f.account.as_str()));
}

/// The page: same-origin fetches (through the relay that served it) and cross-origin ones
/// straight at the broker; what each returned, base64 JSON in `<pre id=out>`.
fn page(broker: &str) -> String {
    format!(
        r#"<html><body><pre id="out">pending</pre><script>
const broker = "{broker}";
const token = "/computeMetadata/v1/instance/service-accounts/default/token";
const model = "{MODEL}";
const prompt = JSON.stringify({{contents: [{{role: "user", parts: [{{text: "from a page"}}]}}]}});
async function one(url, init) {{
  try {{ const r = await fetch(url, init); return {{status: r.status, body: (await r.text()).slice(0, 400)}}; }}
  catch (e) {{ return {{error: String(e)}}; }}
}}
(async () => {{
  const flavor = {{headers: {{"Metadata-Flavor": "Google"}}}};
  const json = {{method: "POST", headers: {{"content-type": "application/json"}}, body: prompt}};
  const results = {{
    same_token: await one(token, flavor),
    same_project: await one("/computeMetadata/v1/project/project-id", flavor),
    same_gateway: await one(model, json),
    cross_token: await one(broker + token, flavor),
    cross_gateway: await one(broker + model, json),
    cross_simple_post: await one(broker + model, {{method: "POST", headers: {{"content-type": "text/plain"}}, body: prompt}}),
    cross_no_cors: await one(broker + model, {{method: "POST", mode: "no-cors", body: prompt}}),
  }};
  document.getElementById("out").textContent = btoa(JSON.stringify(results));
}})();
</script></body></html>"#
    )
}

/// Serves the page at `/page.html` and relays every other connection byte for byte to the
/// broker, as DNS rebinding would: the browser thinks it talks to the page's origin.
async fn relay(broker: std::net::SocketAddr, page: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 16 * 1024];
                let mut n = 0;
                while !head[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < head.len() {
                    match conn.read(&mut head[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => n += m,
                    }
                }
                if head.starts_with(b"GET /page.html ") {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    return;
                }
                if head.starts_with(b"GET /favicon.ico ") {
                    let _ = conn
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(broker).await else { return };
                if upstream.write_all(&head[..n]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
            });
        }
    });
    port
}

/// Chromium, headless, loads `url` and runs its script; the page's results.
async fn chromium(url: &str, host: &str) -> Value {
    let profile = std::env::temp_dir().join(support::unique("chromium-profile"));
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=10000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--host-resolver-rules=MAP {host} 127.0.0.1"))
    .arg(url)
    .kill_on_drop(true);
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output()).await.expect("chromium ended").unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    let encoded = dom.split("<pre id=\"out\">").nth(1).and_then(|s| s.split("</pre>").next()).unwrap_or_default();
    let json = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_else(|_| {
        panic!("the page did not finish: {dom}\n{}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""))
    });
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_gets_no_token_and_no_gateway_answer_from_any_origin() {
    let f = Fixture::new("chromium").await;
    let b = broker(&f).await;
    let token = b.get_token().await["access_token"].as_str().unwrap().to_string();
    let port = relay(b.addr, page(&b.url(""))).await;
    // What gives each page away on a same-origin GET: the fetch metadata Chromium sends to a
    // loopback origin, and the Host it must send on a rebinding host (which is not "potentially
    // trustworthy", so it gets no fetch metadata). POSTs carry Origin either way.
    for (origin, get_refused_for) in [
        (format!("http://127.0.0.1:{port}"), "web browser (sec-fetch-site header)"),
        (format!("http://attacker.example:{port}"), "(DNS rebinding?)"),
    ] {
        let results = chromium(&format!("{origin}/page.html"), "attacker.example").await;
        let text = results.to_string();
        assert!(
            !text.contains(&token) && !text.contains("access_token") && !text.contains("echo:"),
            "{origin}: {results}"
        );
        for (name, r) in results.as_object().unwrap() {
            if name.starts_with("same_") {
                // It reached the broker (through the relay), which refused it, saying why.
                assert_eq!(r["status"], 403, "{origin} {name}: {r}");
                let body = r["body"].as_str().unwrap();
                assert!(body.contains("vertex-broker:"), "{origin} {name}: {body}");
                if name == "same_gateway" {
                    assert!(body.contains("web browser (origin header)"), "{origin} {name}: {body}");
                } else {
                    assert!(body.contains(get_refused_for), "{origin} {name}: {body}");
                }
            } else {
                // A cross-origin answer is never readable: refused by the broker, or not let
                // through by the browser (no CORS headers), or opaque.
                assert!(r["status"] == 403 || r["status"] == 0 || r.get("error").is_some(), "{origin} {name}: {r}");
            }
        }
    }
    assert_eq!(f.emu.calls("vertex"), 0, "no page's call reached Vertex");
}
