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
            secret_ids: secret_ids.iter().map(|s| s.to_string()).collect(),
            scopes: vec!["https://www.googleapis.com/auth/cloud-platform".into()],
            secret_ttl: ttl,
            http_timeout: Duration::from_secs(2),
            cache,
            limits: vertex_broker::config::Limits::default(),
        };
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
