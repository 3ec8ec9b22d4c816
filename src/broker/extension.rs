//! The Lambda extension: bind the listener, register with the Extensions API, warm the cache
//! at once (so code in the function's INIT phase can already get a token), do due refreshes on
//! every INVOKE (a frozen Lambda runs no timers), and stop within the SHUTDOWN deadline.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_extension::{service_fn, Extension, LambdaEvent, NextEvent};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::server::{self, ListenError};
use super::signals::Signals;
use super::{Broker, BrokerError, BrokerSettings, InvokeWork};
use crate::config::{Config, ConfigError, LambdaCredentials, NotInLambda};
use crate::store::SecretsManagerStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the extension stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// Started outside Lambda.
    #[error(transparent)]
    NotInLambda(#[from] NotInLambda),
    /// Reported to `/extension/init/error` as well, so the function's INIT fails saying why.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Registering or polling the Extensions API failed.
    #[error("the Lambda Extensions API failed: {0}")]
    Api(BoxError),
}

/// Why the broker could not start inside Lambda; [`StartError::error_type`] is what Lambda shows.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The settings name no usable source of credentials.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The port is taken, or signals cannot be handled.
    #[error("{}", listen_hint(.0))]
    Listen(#[from] ListenError),
    #[error(
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION must be set (Lambda sets them for the function's role)"
    )]
    /// Lambda's AWS credentials are missing from the environment.
    NoAwsEnvironment,
}

/// A taken port names the variable that moves it.
fn listen_hint(e: &ListenError) -> String {
    match e {
        ListenError::Port { .. } => format!("{e}; set VERTEX_BROKER_PORT to a free port"),
        ListenError::Signals(_) => e.to_string(),
    }
}

impl StartError {
    /// The error type Lambda records for the failed INIT.
    pub fn error_type(&self) -> &'static str {
        match self {
            StartError::Listen(_) => "Extension.ListenFailed",
            StartError::Config(_) | StartError::Broker(_) | StartError::NoAwsEnvironment => "Extension.ConfigInvalid",
        }
    }
}

/// Kept back from the SHUTDOWN deadline to exit in.
const EXIT_MARGIN: Duration = Duration::from_millis(300);
/// Longest drain at SHUTDOWN whatever the deadline says (Lambda gives extensions 2 s in all).
const MAX_SHUTDOWN_DRAIN: Duration = Duration::from_millis(1500);

/// Runs the extension until SHUTDOWN. Configuration errors go to `/extension/init/error`.
pub async fn run() -> Result<(), ExtensionError> {
    crate::config::require_lambda(
        "vertex-broker-extension (started by Lambda from the layer's /opt/extensions)",
        "to run the broker anywhere else use `vertex-broker serve`",
    )?;
    let config = Config::from_env();
    crate::telemetry::init(config.as_ref().ok().and_then(|c| c.log.as_deref()).unwrap_or("info"), true);
    // Listener first: the function's init code may call it as soon as it starts.
    let port = config.as_ref().map(|c| c.port).unwrap_or(crate::config::DEFAULT_PORT);
    let listening = server::listen(port).await;
    let limits = config.as_ref().map(|c| c.limits).unwrap_or_default();
    let (events, stopped) = Events::new(limits.drain_timeout, limits.invoke_budget);
    let handler = {
        let events = events.clone();
        move |event: LambdaEvent| {
            let events = events.clone();
            async move {
                events.handle(event).await;
                Ok::<(), BoxError>(())
            }
        }
    };
    let registered = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn(handler))
        .register()
        .await
        .map_err(ExtensionError::Api)?;
    let (broker, listener, signals) = match start(config, listening).await {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "vertex-broker cannot start");
            report_init_error(&registered.extension_id, e.error_type(), &e.to_string()).await;
            return Err(e.into());
        }
    };
    let _ = events.broker.set(broker.clone());
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.warm_up().await }
    });
    // As in `serve`: SIGHUP re-reads the secrets, SIGTERM/SIGINT drain and stop (Lambda itself
    // stops extensions with SHUTDOWN).
    tokio::spawn({
        let (broker, events) = (broker.clone(), events.clone());
        async move {
            signals.until_stop(broker).await;
            events.stop(limits.drain_timeout);
        }
    });
    let serving = tokio::spawn(server::serve(broker.clone(), listener, until_shutdown(stopped.clone())));
    tokio::select! {
        r = registered.run() => r.map_err(ExtensionError::Api)?,
        _ = until_shutdown(stopped) => {}
    }
    // The listener drains requests in flight (bounded by the SHUTDOWN deadline), then returns.
    let _ = serving.await;
    broker.metrics().flush();
    Ok(())
}

/// The broker, from the configuration read and the port bound before registering.
async fn start(
    config: Result<Config, ConfigError>,
    listening: Result<(TcpListener, Signals), ListenError>,
) -> Result<(Arc<Broker>, TcpListener, Signals), StartError> {
    let config = config?;
    let (listener, signals) = listening?;
    let credentials = LambdaCredentials::from_env().ok_or(StartError::NoAwsEnvironment)?;
    let store = Arc::new(SecretsManagerStore::from_lambda(&credentials));
    let mut settings = BrokerSettings::from(&config);
    settings.aws = Some(crate::google::federation::AwsIdentity::from_lambda(&credentials));
    Ok((Arc::new(Broker::new(&settings, store)?), listener, signals))
}

/// What the Extensions API's events do: INVOKE starts the work due, SHUTDOWN sets how long to
/// drain (the listener and the event loop both watch it).
struct Events {
    /// Set once the broker has started; INVOKEs before that have nothing to do.
    broker: OnceLock<Arc<Broker>>,
    stop: watch::Sender<Option<Duration>>,
    drain_timeout: Duration,
    invoke_budget: Duration,
}

impl Events {
    fn new(drain_timeout: Duration, invoke_budget: Duration) -> (Arc<Self>, watch::Receiver<Option<Duration>>) {
        let (stop, stopped) = watch::channel(None);
        (Arc::new(Self { broker: OnceLock::new(), stop, drain_timeout, invoke_budget }), stopped)
    }

    async fn handle(&self, event: LambdaEvent) {
        match event.next {
            NextEvent::Invoke(invoke) => {
                let Some(b) = self.broker.get() else { return };
                b.begin_invocation(&invoke.request_id, invoke.deadline_ms);
                // The previous invocations' metrics, before Lambda may freeze us.
                b.metrics().flush();
                if b.on_invoke(self.invoke_budget).await == InvokeWork::Continuing {
                    tracing::debug!(budget = ?self.invoke_budget, "renewals go on in the background");
                }
            }
            NextEvent::Shutdown(e) => {
                // Lambda allows external extensions 2 s in all; keep a margin to exit.
                let left = Duration::from_millis(e.deadline_ms)
                    .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
                tracing::info!(reason = %e.shutdown_reason, "shutting down");
                self.stop(self.drain_timeout.min(left.saturating_sub(EXIT_MARGIN)));
            }
        }
    }

    /// Stops serving, draining for at most `drain` (and never past [`MAX_SHUTDOWN_DRAIN`]).
    fn stop(&self, drain: Duration) {
        let drain = drain.min(MAX_SHUTDOWN_DRAIN);
        tracing::info!(?drain, "draining");
        let _ = self.stop.send(Some(drain));
    }
}

/// Resolves with the drain time once a stop is asked for.
async fn until_shutdown(mut stopped: watch::Receiver<Option<Duration>>) -> Duration {
    match stopped.wait_for(Option::is_some).await {
        Ok(drain) => drain.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

async fn report_init_error(extension_id: &str, kind: &str, message: &str) {
    let request = lambda_extension::requests::init_error(
        extension_id,
        kind,
        Some(lambda_extension::requests::ErrorRequest {
            error_message: message,
            error_type: kind,
            stack_trace: vec![],
        }),
    );
    let client = match lambda_runtime_api_client::Client::builder().build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot reach the Extensions API"),
    };
    if let Ok(request) = request {
        if let Err(e) = client.call(request).await {
            tracing::error!(error = %e, "could not report the init error");
        }
    }
}
