//! `vertex-broker dev`: the whole system on one machine, offline, like `vault server -dev`.
//! The embedded Google emulator, an in-memory Secrets Manager seeded with a sample account and
//! key, the broker on 127.0.0.1, and a rotation every `rotate_every` so keys turn over while
//! clients keep working.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::token_cache::CachePolicy;
use crate::broker::{server, Broker, BrokerSettings};
use crate::config::{RevokeMode, DEFAULT_SCOPE};
use crate::google::iam::RetryPolicy;
use crate::rotation::{Outcome, Rotation, RotationSettings};
use crate::store::{MemoryStore, SecretStore, AWSCURRENT};

/// The sample service account `dev` seeds.
pub const DEV_ACCOUNT: &str = "vertex-dev@dev-project.iam.gserviceaccount.com";
pub const DEV_SECRET: &str = "vertex-broker-dev";

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub port: u16,
    pub rotate_every: Duration,
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot start the embedded Google emulator: {0}")]
    Emulator(std::io::Error),
    #[error("cannot listen on 127.0.0.1:{port}: {source}; another broker may be running: pick a port with --port")]
    Listen { port: u16, source: std::io::Error },
}

/// Runs the sandbox until `shutdown` resolves. `say` receives each line meant for the user.
pub async fn run(opts: DevOptions, shutdown: impl Future<Output = ()>, say: impl Fn(String)) -> Result<(), DevError> {
    let google = google_emulator::Emulator::start().await.map_err(DevError::Emulator)?;
    let store = Arc::new(MemoryStore::new());
    let arn = store.create(DEV_SECRET, &google.seed_key(DEV_ACCOUNT));
    let listener = server::bind(opts.port).await.map_err(|source| DevError::Listen { port: opts.port, source })?;
    let addr = listener.local_addr().map_err(|source| DevError::Listen { port: opts.port, source })?;

    // Re-check the secret often so each rotation shows up within seconds.
    let ttl = (opts.rotate_every / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let settings = BrokerSettings {
        scopes: vec![DEFAULT_SCOPE.to_string()],
        secret_ttl: ttl,
        http_timeout: Duration::from_secs(5),
        cache: CachePolicy::default(),
        ..BrokerSettings::for_secrets(vec![arn.clone()])
    };
    let broker = Arc::new(Broker::new(&settings, store.clone()).expect("one secret id is configured"));
    broker.warm_up().await;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(broker, listener, async {
        let _ = server_stopped.await;
        Duration::from_secs(1)
    }));

    let g = google.url();
    say(format!(
        "vertex-broker dev: everything local, nothing leaves this machine.\n\
         \n\
         \x20 broker          http://{addr}  (GCE metadata protocol)\n\
         \x20 Google emulator {g}  (IAM, OAuth, Vertex AI)\n\
         \x20 secret          {arn} (in memory)\n\
         \x20 account         {DEV_ACCOUNT}\n\
         \x20 rotation        every {}\n\
         \n\
         Point Google's client libraries at the broker:\n\
         \x20 export GCE_METADATA_HOST={addr} GCE_METADATA_IP={addr}\n\
         \n\
         Get a token, then call the emulator's Vertex AI with it:\n\
         \x20 curl -s -H 'Metadata-Flavor: Google' http://{addr}/computeMetadata/v1/instance/service-accounts/default/token\n\
         \x20 TOKEN=$(curl -s -H 'Metadata-Flavor: Google' http://{addr}/computeMetadata/v1/instance/service-accounts/default/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"instances\":[{{\"prompt\":\"hello\"}}]}}' {g}/v1/projects/dev-project/locations/us-central1/endpoints/demo:predict\n\
         \n\
         Status: curl -s -H 'Metadata-Flavor: Google' http://{addr}/vertex-broker/v1/status\n\
         Ctrl-C stops.\n",
        humantime::format_duration(opts.rotate_every)
    ));

    let rotation = Rotation::new(
        store.clone(),
        RotationSettings {
            iam_endpoint: g.clone(),
            admin_secret_id: None,
            propagation_timeout: Duration::from_secs(60),
            revoke: RevokeMode::Delete,
            http_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        },
    );
    let rotations = async {
        let mut round = 0u32;
        loop {
            tokio::time::sleep(opts.rotate_every).await;
            round += 1;
            say(rotate_once(&rotation, &store, &arn, round).await);
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = rotations => {}
    }
    let _ = stop_server.send(());
    let _ = serving.await;
    say("vertex-broker dev stopped.".into());
    Ok(())
}

/// One rotation through the engine's own operator path; returns the one-line report.
async fn rotate_once(rotation: &Rotation, store: &Arc<MemoryStore>, arn: &str, round: u32) -> String {
    let started = Instant::now();
    let key_id = || async {
        let v = store.get(arn, None, Some(AWSCURRENT)).await.ok()?;
        crate::key::ServiceAccountKey::parse(&v.value).ok().map(|k| k.private_key_id()[..8].to_string())
    };
    let before = key_id().await.unwrap_or_default();
    let mut revoked = 0;
    let result = rotation
        .rotate_locally(arn, |_, outcome| {
            if let Outcome::Created { revoked: r, .. } | Outcome::Promoted { revoked: r, .. } = outcome {
                revoked += r.len();
            }
        })
        .await;
    if let Err(e) = result {
        return format!("rotation {round} failed: {e}");
    }
    let after = key_id().await.unwrap_or_default();
    format!(
        "rotation {round}: key {before}… -> {after}… is AWSCURRENT, {revoked} aged-out key(s) revoked ({:.1} s)",
        started.elapsed().as_secs_f64()
    )
}
