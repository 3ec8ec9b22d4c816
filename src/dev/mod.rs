//! `vertex-broker dev`: the whole system on one machine, offline, like `vault server -dev`.
//! The embedded Google emulator, an in-memory Secrets Manager seeded with a sample account and
//! key, the broker on 127.0.0.1, and a rotation every `rotate_every` so keys turn over while
//! clients keep working. `--keyless` shows workload identity federation instead: no key, the
//! emulator standing in for AWS STS as well as Google.

mod secrets_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::server::{self, ListenError};
use crate::broker::token_cache::CachePolicy;
use crate::broker::{Broker, BrokerSettings};
use crate::config::RevokeMode;
use crate::google::federation::{AwsIdentity, CredentialConfig};
use crate::google::iam::RetryPolicy;
use crate::google::scopes::ScopeKey;
use crate::operator::Operator;
use crate::rotation::{Outcome, RotationSettings};
use crate::store::{MemoryStore, SecretStore, AWSCURRENT};

/// The sample service account `dev` seeds.
pub const DEV_ACCOUNT: &str = "vertex-dev@dev-project.iam.gserviceaccount.com";
/// The in-memory secret holding the sample account's key.
pub const DEV_SECRET: &str = "vertex-broker-dev";
/// `--keyless`: the AWS role the sandbox's function runs as, and the pool provider trusting it.
pub const DEV_ROLE: &str = "arn:aws:iam::111122223333:role/vertex-dev-function";
/// The workload identity pool provider of `--keyless`.
pub const DEV_PROVIDER: &str =
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/vertex-dev/providers/aws";

/// What `vertex-broker dev` was asked for.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The broker's port.
    pub port: u16,
    /// How often the secret rotates.
    pub rotate_every: Duration,
    /// Workload identity federation instead of a key: nothing to rotate.
    pub keyless: bool,
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The embedded emulator could not start.
    #[error("cannot start the embedded Google emulator: {0}")]
    Emulator(std::io::Error),
    /// The port is taken.
    #[error("cannot listen on 127.0.0.1:{port}: {source}; another broker may be running: pick another with --port N (make dev PORT=N)")]
    Listen {
        /// The port asked for.
        port: u16,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// SIGTERM, SIGINT or SIGHUP could not be handled.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The keyless sandbox's configuration file could not be written.
    #[error("cannot write the sandbox's credential configuration to {path}: {source}")]
    Config {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the sandbox until SIGTERM or SIGINT (SIGHUP re-reads the sandbox's secret, as in
/// `serve`). `say` receives each line meant for the user.
pub async fn run(opts: DevOptions, say: impl Fn(String)) -> Result<(), DevError> {
    let google = google_emulator::Emulator::start().await.map_err(DevError::Emulator)?;
    let store = Arc::new(MemoryStore::new());
    let (listener, signals) = server::listen(opts.port).await.map_err(|e| match e {
        ListenError::Port { port, source } => DevError::Listen { port, source },
        ListenError::Signals(source) => DevError::Signals(source),
    })?;
    let addr = listener.local_addr().map_err(|source| DevError::Listen { port: opts.port, source })?;
    let g = google.url();

    // Re-check the secret often so each rotation shows up within seconds.
    let ttl = (opts.rotate_every / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let base = BrokerSettings {
        scopes: ScopeKey::cloud_platform(),
        secret_ttl: ttl,
        http_timeout: Duration::from_secs(5),
        cache: CachePolicy::default(),
        // The gateway calls the emulator's Vertex; metrics would only clutter the terminal.
        vertex: crate::config::VertexGateway { endpoint: Some(g.clone()), ..Default::default() },
        metrics_namespace: None,
        ..BrokerSettings::for_secrets(Vec::new())
    };
    let config_path = std::env::temp_dir().join(format!("vertex-broker-dev-{}.json", std::process::id()));
    let (settings, source_lines, arn) = if opts.keyless {
        let (settings, lines) = keyless(&google, base, &config_path)?;
        (settings, lines, None)
    } else {
        let arn = store.create(DEV_SECRET, &google.seed_key(DEV_ACCOUNT));
        let lines = format!(
            "\x20 secret          {arn} (in memory)\n\
             \x20 account         {DEV_ACCOUNT}\n\
             \x20 rotation        every {}\n",
            humantime::format_duration(opts.rotate_every)
        );
        (BrokerSettings { secret_ids: vec![arn.clone()], ..base }, lines, Some(arn))
    };
    // The secret as Secrets Manager's API, so the CLI can be tried against it.
    let (asked_tx, mut asked) = tokio::sync::mpsc::channel::<String>(4);
    let secrets_api = match arn {
        Some(_) => {
            let listener = server::bind(0).await.map_err(|source| DevError::Listen { port: 0, source })?;
            let api = listener.local_addr().map_err(|source| DevError::Listen { port: 0, source })?;
            let serving = tokio::spawn(secrets_api::serve(listener, store.clone(), asked_tx));
            Some((api, serving))
        }
        None => None,
    };
    let cli_lines = match &secrets_api {
        Some((api, _)) => format!(
            "\n\
             Try the CLI against the in-memory secret (this sandbox serves Secrets Manager's API for it):\n\
             \x20 export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://{api} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=sandbox \\\n\
             \x20   AWS_SECRET_ACCESS_KEY=sandbox VERTEX_BROKER_IAM_ENDPOINT={g}\n\
             \x20 vertex-broker status {DEV_SECRET}\n\
             \x20 vertex-broker token --secret {DEV_SECRET}\n\
             \x20 vertex-broker rotate {DEV_SECRET} --wait\n"
        ),
        None => String::new(),
    };
    let broker = Arc::new(Broker::new(&settings, store.clone()).expect("the sandbox's source is configured"));
    broker.warm_up().await;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = signals.until_stop(broker.clone());
    let serving = tokio::spawn(server::serve(broker, listener, async {
        let _ = server_stopped.await;
        Duration::from_secs(1)
    }));

    say(format!(
        "vertex-broker dev: everything local, nothing leaves this machine.\n\
         \n\
         \x20 broker          http://{addr}  (GCE metadata protocol)\n\
         \x20 Google emulator {g}  (IAM, OAuth, STS, IAM Credentials, Vertex AI)\n\
         {source_lines}\
         \n\
         Leave this running. Everything below goes in a second terminal.\n\
         \n\
         Point Google's client libraries at the broker, and the Vertex SDKs (GenAI, AnthropicVertex) at\n\
         its gateway, as the layer's wrapper does in Lambda:\n\
         \x20 export GCE_METADATA_HOST={addr} GCE_METADATA_IP={addr}\n\
         \x20 export GOOGLE_VERTEX_BASE_URL=http://{addr}/vertex/ ANTHROPIC_VERTEX_BASE_URL=http://{addr}/vertex/v1\n\
         \n\
         Get a token, then call the emulator's Vertex AI with it:\n\
         \x20 curl -s -H 'Metadata-Flavor: Google' http://{addr}/computeMetadata/v1/instance/service-accounts/default/token\n\
         \x20 TOKEN=$(curl -s -H 'Metadata-Flavor: Google' http://{addr}/computeMetadata/v1/instance/service-accounts/default/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"instances\":[{{\"prompt\":\"hello\"}}]}}' {g}/v1/projects/dev-project/locations/us-central1/endpoints/demo:predict\n\
         \n\
         Or let the broker's gateway hold the token; an audit line follows each call:\n\
         \x20 curl -s -H 'Content-Type: application/json' -d '{{\"contents\":[{{\"role\":\"user\",\"parts\":[{{\"text\":\"hello\"}}]}}]}}' http://{addr}/vertex/v1/projects/dev-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent\n\
         \n\
         Status: curl -s -H 'Metadata-Flavor: Google' http://{addr}/vertex-broker/v1/status\n\
         {cli_lines}\
         Ctrl-C stops.\n",
    ));

    let rotations = async {
        let Some(arn) = &arn else {
            // Keyless: nothing to rotate.
            return std::future::pending().await;
        };
        let operator = Operator::new(
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
        let mut round = 0u32;
        loop {
            // On schedule, or now when `vertex-broker rotate` asked (RotateSecret), as Secrets
            // Manager would invoke the rotation function.
            let asked_now = tokio::select! {
                _ = tokio::time::sleep(opts.rotate_every) => false,
                Some(_) = asked.recv() => true,
            };
            round += 1;
            let line = rotate_once(&operator, &store, arn, round).await;
            say(if asked_now { line.replacen(':', " (asked by RotateSecret):", 1) } else { line });
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = rotations => {}
    }
    let _ = stop_server.send(());
    let _ = serving.await;
    if let Some((_, api)) = secrets_api {
        api.abort();
    }
    if opts.keyless {
        let _ = std::fs::remove_file(&config_path);
    }
    say("vertex-broker dev stopped.".into());
    Ok(())
}

/// The keyless path, offline: the emulator's own AWS STS issues the "function role's"
/// credentials, a pool provider trusts its account, and the role may impersonate the sample
/// account. The broker federates exactly as it would from Lambda. Also writes the credential
/// configuration to a file, so `doctor` and `token` can be tried against it.
fn keyless(
    google: &google_emulator::Emulator,
    base: BrokerSettings,
    path: &std::path::Path,
) -> Result<(BrokerSettings, String), DevError> {
    let g = google.url();
    let creds = google.issue_aws_credentials(DEV_ROLE, "vertex-dev");
    let aws_account = DEV_ROLE.split(':').nth(4).unwrap_or_default();
    google.add_aws_provider(DEV_PROVIDER, aws_account);
    google.set_aws_sts_endpoint(&format!("{g}/aws-sts"));
    let pool = DEV_PROVIDER.trim_start_matches("//iam.googleapis.com/").rsplit_once("/providers/").map_or("", |p| p.0);
    let role = creds.arn.rsplit_once('/').map_or(creds.arn.as_str(), |r| r.0);
    let member = format!("principalSet://iam.googleapis.com/{pool}/attribute.aws_role/{role}");
    google.grant(DEV_ACCOUNT, google_emulator::WORKLOAD_IDENTITY_USER, &member);
    // What `gcloud iam workload-identity-pools create-cred-config --aws --service-account` writes,
    // with Google's and AWS's endpoints replaced by the emulator's.
    let config = serde_json::json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": DEV_PROVIDER,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": format!("{g}/v1/token"),
        "service_account_impersonation_url":
            format!("{g}/v1/projects/-/serviceAccounts/{DEV_ACCOUNT}:generateAccessToken"),
        "credential_source": {
            "environment_id": "aws1",
            "regional_cred_verification_url": format!("{g}/aws-sts/?Action=GetCallerIdentity&Version=2011-06-15"),
        }
    });
    std::fs::write(path, config.to_string())
        .map_err(|source| DevError::Config { path: path.display().to_string(), source })?;
    let settings = BrokerSettings {
        credential_config: Some(
            CredentialConfig::parse(&config.to_string()).expect("the sandbox's configuration is valid"),
        ),
        aws: Some(AwsIdentity::fixed(
            &creds.access_key_id,
            &creds.secret_access_key,
            Some(&creds.session_token),
            "us-east-1",
        )),
        ..base
    };
    let lines = format!(
        "\x20 source          workload identity federation, no key: {role} -> Google STS -> {DEV_ACCOUNT}\n\
         \x20 configuration   {path}\n\
         \n\
         Walk the keyless path step by step (the AWS keys exist only in this sandbox's emulator):\n\
         \x20 AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_SESSION_TOKEN={} AWS_REGION=us-east-1 \\\n\
         \x20   VERTEX_BROKER_CREDENTIAL_CONFIG={} vertex-broker doctor\n",
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
        path.display(),
        path = path.display(),
    );
    Ok((settings, lines))
}

/// One rotation through the engine's own operator path; returns the one-line report.
async fn rotate_once(operator: &Operator, store: &Arc<MemoryStore>, arn: &str, round: u32) -> String {
    let started = Instant::now();
    let key_id = || async {
        let v = store.get(arn, None, Some(AWSCURRENT)).await.ok()?;
        crate::key::ServiceAccountKey::parse(&v.value).ok().map(|k| k.private_key_id()[..8].to_string())
    };
    let before = key_id().await.unwrap_or_default();
    let mut revoked = 0;
    let result = operator
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
