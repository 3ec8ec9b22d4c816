//! Starts the broker in this process on a free loopback port.

use std::sync::Arc;
use std::time::Duration;

use vertex_broker::broker::token_cache::CachePolicy;
use vertex_broker::broker::{server, Broker, BrokerSettings};
use vertex_broker::store::SecretStore;

/// A broker serving in this test process; dropping it stops the server.
pub struct RunningBroker {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: std::net::SocketAddr,
    /// The broker itself, for reading its accounts and metrics.
    pub broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningBroker {
    /// A broker over `store` serving `secret_ids`, with the secret TTL and cache policy given.
    pub async fn start(store: Arc<dyn SecretStore>, secret_ids: &[&str], ttl: Duration, cache: CachePolicy) -> Self {
        let settings = BrokerSettings {
            secret_ttl: ttl,
            http_timeout: Duration::from_secs(2),
            cache,
            ..BrokerSettings::for_secrets(secret_ids.iter().map(|s| s.to_string()).collect())
        };
        Self::with_settings(settings, store).await
    }

    /// A broker with any settings (federation, impersonation).
    pub async fn with_settings(settings: BrokerSettings, store: Arc<dyn SecretStore>) -> Self {
        let broker = Arc::new(Broker::new(&settings, store).unwrap());
        let listener = server::bind(0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server::serve(broker.clone(), listener, async {
            let _ = stopped.await;
            Duration::from_secs(1)
        }));
        Self { addr, broker, stop: Some(stop) }
    }

    /// The URL of `path` on this broker.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The default account's token answer as JSON (panics unless 200).
    pub async fn get_token(&self) -> serde_json::Value {
        let r = self.get("/computeMetadata/v1/instance/service-accounts/default/token").await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// GET with the metadata header, as Google's clients send it.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new().get(self.url(path)).header("Metadata-Flavor", "Google").send().await.unwrap()
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A Google client library process pointed at the broker exactly as the layer's wrapper does it,
/// with no other Google configuration it could fall back on (empty HOME, no gcloud config).
pub fn google_client(program: &str, b: &RunningBroker) -> tokio::process::Command {
    google_client_at(program, &b.addr.to_string())
}

/// [`google_client`] for a broker at `addr` (`127.0.0.1:PORT`), e.g. a `serve` process.
pub fn google_client_at(program: &str, addr: &str) -> tokio::process::Command {
    let mut cmd = super::clean_command(program);
    cmd.env("GCE_METADATA_HOST", addr).env("GCE_METADATA_IP", addr);
    cmd
}

/// Runs `tests/python/vertex_clients.py`: one of Vertex's popular clients (`genai`, `openai`,
/// `anthropic`) against `base_url` for project `proj-test`, with its credentials from the broker at
/// `addr`; what the client saw (`{"error": ...}` when it raised).
pub async fn vertex_client(
    addr: &str,
    surface: &str,
    base_url: &str,
    location: &str,
    model: &str,
) -> serde_json::Value {
    let mut cmd = google_client_at(&format!("{}/.venv/bin/python", super::REPO), addr);
    cmd.arg(format!("{}/tests/python/vertex_clients.py", super::REPO)).args([
        surface,
        base_url,
        "proj-test",
        location,
        model,
    ]);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{surface}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{surface}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The four clients every broker setup is proven with: Python google-auth, Node
/// google-auth-library, Go x/oauth2/google and Java google-auth-library, each as (name, command)
/// pointed at `addr` and asking for an ID token for `audience`. Each prints one JSON object
/// (email, project, token, id_token).
pub fn google_clients(addr: &str, audience: &str) -> Vec<(&'static str, tokio::process::Command)> {
    let dir = super::REPO;
    let mut python = google_client_at(&format!("{dir}/.venv/bin/python"), addr);
    python.arg(format!("{dir}/tests/python/google_auth_client.py")).arg(audience);
    let mut node = google_client_at("node", addr);
    node.arg(format!("{dir}/tests/node/google_auth_client.js")).arg(audience);
    let mut go = google_client_at(go_client().to_str().unwrap(), addr);
    go.arg(audience);
    let java = java_client(addr, audience);
    vec![
        ("python google-auth", python),
        ("node google-auth-library", node),
        ("go x/oauth2/google", go),
        ("java google-auth-library", java),
    ]
}

/// Debian's Java google-auth-library (libgoogle-auth-java) and what it needs at run time.
const JAVA_JARS: [&str; 12] = [
    "google-auth-library-credentials",
    "google-auth-library-oauth2-http",
    "google-http-client",
    "google-http-client-jackson2",
    "jackson-core",
    "guava",
    "opencensus-api",
    "opencensus-contrib-http-util",
    "grpc-context",
    "gson",
    "auto-value-annotations",
    "jsr305",
];

/// tests/java/BrokerToken.java run from source (the JDK compiles it in memory) against the broker
/// at `addr`.
pub fn java_client(addr: &str, audience: &str) -> tokio::process::Command {
    let classpath: Vec<String> = JAVA_JARS.iter().map(|j| format!("/usr/share/java/{j}.jar")).collect();
    let mut java = google_client_at("java", addr);
    java.arg("-cp")
        .arg(classpath.join(":"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../java/BrokerToken.java"))
        .arg(audience);
    java
}

/// tests/go/metadata_client.go built once per test binary with Debian's packaged x/oauth2 and
/// compute/metadata, in GOPATH mode (no module download).
pub fn go_client() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let work = std::env::temp_dir().join(super::unique("go-client"));
            std::fs::create_dir_all(&work).unwrap();
            let binary = work.join("metadata-client");
            let build = std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../go/metadata_client.go"))
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", work.join("cache"))
                .env("GOFLAGS", "")
                .output()
                .expect("the test command installs Debian's golang-go and golang-golang-x-oauth2-google-dev");
            assert!(build.status.success(), "go build: {}", String::from_utf8_lossy(&build.stderr));
            binary
        })
        .clone()
}
