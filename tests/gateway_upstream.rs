//! How the gateway reaches Vertex, through the real binary (`serve`): over TLS, trusting the
//! system's roots (`SSL_CERT_FILE` names a test CA here) in front of the emulator (nginx from
//! Debian terminates TLS), directly and through a CONNECT tunnel of the proxy `HTTPS_PROXY`
//! names (tinyproxy from Debian), `NO_PROXY` exempting the host, and a plain-HTTP endpoint
//! through `HTTP_PROXY`'s tunnel; a server the roots do not vouch for is refused with a 502 that
//! says why; a proxy it cannot use, or a CA file with no certificate, stops `serve` at start with
//! the variable's name.

use test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::nginx::Nginx;
use support::Fixture;

const MODEL: &str =
    "/vertex/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";

/// A test CA, a certificate for 127.0.0.1 it signed, and another CA (other.pem), made with the
/// openssl command.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=vertex-broker test CA"];
    let ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"];
    run(&[&["req", "-x509"][..], &ec, &ca, &ca_ext].concat());
    let other = ["-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=another CA"];
    run(&[&["req", "-x509"][..], &ec, &other, &ca_ext].concat());
    run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// nginx terminating TLS on `port` for `upstream`.
fn tls_front(dir: &Path, port: u16, upstream: &str, cert: &Path, key: &Path) -> Nginx {
    let server = format!(
        "  access_log off;\n  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {};\n\
         location / {{ proxy_pass {upstream}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}",
        cert.display(),
        key.display()
    );
    Nginx::start(dir, "tls-front", &server)
}

/// tinyproxy on `port`, tunnelling to `connect_ports` only; its log records each CONNECT.
fn proxy(dir: &Path, port: u16, connect_ports: &[u16]) -> (tokio::process::Child, PathBuf) {
    let log = dir.join("tinyproxy.log");
    let allowed: String = connect_ports.iter().map(|p| format!("ConnectPort {p}\n")).collect();
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n{allowed}MaxClients 20\n\
         LogLevel Connect\nLogFile \"{}\"\nPidFile \"{}\"\n",
        log.display(),
        dir.join("tinyproxy.pid").display()
    );
    std::fs::write(dir.join("tinyproxy.conf"), conf).unwrap();
    let child = tokio::process::Command::new("tinyproxy")
        .args(["-d", "-c", &dir.join("tinyproxy.conf").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("tinyproxy is installed by scripts/clients.sh");
    (child, log)
}

/// How many tunnels the proxy was asked for, to `host`.
fn tunnels(log: &Path, host: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains(&format!("CONNECT {host} "))).count()
}

/// One generateContent call through a `serve` with `env`: status and body.
async fn call_through(f: &Fixture, env: &[(&str, String)]) -> (u16, Value) {
    let port = support::free_port();
    let child = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), f, port)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .unwrap();
    support::wait_listening(port).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "over tls"}]}]});
    let resp = reqwest::Client::new().post(format!("http://127.0.0.1:{port}{MODEL}")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let value = resp.json::<Value>().await.unwrap_or(Value::Null);
    let (_, err) = support::stop_serve(child).await;
    assert!(!err.contains("ya29."), "no token in serve's log: {err}");
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_vertex_with_the_system_roots_directly_and_through_a_connect_proxy() {
    let f = Fixture::new("gw-tls").await;
    let dir = std::env::temp_dir().join(support::unique("gw-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let tls_port = support::free_port();
    let _front = tls_front(&dir, tls_port, &f.emu.url(), &cert, &key);
    let proxy_port = support::free_port();
    let emulator_port: u16 = f.emu.url().rsplit(':').next().unwrap().parse().unwrap();
    let (_proxy, log) = proxy(&dir, proxy_port, &[tls_port, emulator_port]);
    support::wait_listening(tls_port).await;
    support::wait_listening(proxy_port).await;
    let host = format!("127.0.0.1:{tls_port}");
    let endpoint = ("VERTEX_BROKER_VERTEX_ENDPOINT", format!("https://{host}"));
    let roots = ("SSL_CERT_FILE", ca.display().to_string());
    let through = ("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"));

    let (status, v) = call_through(&f, &[endpoint.clone(), roots.clone()]).await;
    assert_eq!(status, 200, "directly, over TLS: {v}");
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "echo: over tls");
    assert_eq!(tunnels(&log, &host), 0);

    let (status, v) = call_through(&f, &[endpoint.clone(), roots.clone(), through.clone()]).await;
    assert_eq!(status, 200, "through the proxy: {v}");
    assert_eq!(tunnels(&log, &host), 1, "one CONNECT to the TLS front, in the proxy's log");

    let exempt = ("NO_PROXY", "localhost,127.0.0.1".to_string());
    let (status, _) = call_through(&f, &[endpoint.clone(), roots, through, exempt]).await;
    assert_eq!(status, 200);
    assert_eq!(tunnels(&log, &host), 1, "NO_PROXY: no tunnel");
    assert_eq!(f.emu.calls("vertex"), 3);

    // A plain-HTTP endpoint goes through HTTP_PROXY's tunnel, on the port its URL names.
    let plain = [("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url()), ("HTTP_PROXY", format!("127.0.0.1:{proxy_port}"))];
    let (status, _) = call_through(&f, &plain).await;
    assert_eq!(status, 200);
    assert_eq!(tunnels(&log, &format!("127.0.0.1:{emulator_port}")), 1, "HTTP_PROXY: one tunnel to the emulator");
    assert_eq!(f.emu.calls("vertex"), 4);

    // Trusting another CA only, the front's certificate is nobody's: refused, and the answer says so.
    let (status, v) =
        call_through(&f, &[endpoint, ("SSL_CERT_FILE", dir.join("other.pem").display().to_string())]).await;
    assert_eq!(status, 502, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("cannot reach Vertex at https://{host}")), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "says what failed: {message}");
    assert_eq!(f.emu.calls("vertex"), 4, "nothing went up");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_the_gateway_cannot_use_stops_serve_with_its_name_and_not_its_password() {
    let f = Fixture::new("gw-proxy-bad").await;
    let port = support::free_port();
    let out = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), &f, port)
        .env("HTTPS_PROXY", "socks5://user:s3cret@127.0.0.1:1080")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTPS_PROXY") && err.contains("http://proxy.internal:3128"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_without_certificates_stops_serve_with_its_name() {
    let f = Fixture::new("gw-ca-bad").await;
    let dir = std::env::temp_dir().join(support::unique("gw-ca-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    for file in [dir.join("missing.pem"), dir.join("empty.pem")] {
        let out = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), &f, support::free_port())
            .env("SSL_CERT_FILE", &file)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "a usage error, not a panic: {err}");
        assert!(err.contains("SSL_CERT_FILE") && err.contains("PEM CA certificates"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
