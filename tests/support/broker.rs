//! Starts the broker in this process on a free loopback port.

use std::sync::Arc;
use std::time::Duration;

use vertex_broker::broker::token_cache::CachePolicy;
use vertex_broker::broker::{server, Broker, BrokerSettings};
use vertex_broker::store::SecretStore;

pub struct RunningBroker {
    pub addr: std::net::SocketAddr,
    pub broker: Arc<Broker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningBroker {
    pub async fn start(store: Arc<dyn SecretStore>, secret_ids: &[&str], ttl: Duration, cache: CachePolicy) -> Self {
        let settings = BrokerSettings {
            scopes: vec!["https://www.googleapis.com/auth/cloud-platform".into()],
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET with the metadata header, as Google's clients send it.
    /// The default account's token answer as JSON (panics unless 200).
    pub async fn get_token(&self) -> serde_json::Value {
        let r = self.get("/computeMetadata/v1/instance/service-accounts/default/token").await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

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
    let home = std::env::temp_dir().join(super::unique("client-home"));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLOUDSDK_CONFIG", &home)
        .env("GCE_METADATA_HOST", b.addr.to_string())
        .env("GCE_METADATA_IP", b.addr.to_string());
    cmd
}
