//! `vertex-broker`: the operator CLI. Configuration errors and failures print what to do next.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use vertex_broker::broker::{server, Broker, BrokerSettings};
use vertex_broker::config::Config;
use vertex_broker::store::SecretsManagerStore;

#[derive(Parser)]
#[command(
    version,
    about = "Rotate Google service-account keys in AWS Secrets Manager and serve short-lived Google tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker as a daemon on 127.0.0.1 (ECS sidecar, EC2, a laptop); stops on SIGTERM/SIGINT.
    #[command(after_help = "Example:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key vertex-broker serve\n  \
        export GCE_METADATA_HOST=127.0.0.1:2775 GCE_METADATA_IP=127.0.0.1:2775")]
    Serve {
        /// Port on 127.0.0.1 (default: VERTEX_BROKER_PORT, else 2775).
        #[arg(long)]
        port: Option<u16>,
        /// Secret id(s) or ARN(s), comma separated (default: VERTEX_BROKER_SECRET_ID).
        #[arg(long)]
        secret: Option<String>,
    },
}

/// Exit codes (documented in the README).
const EXIT_USAGE: u8 = 2;
const EXIT_FAILED: u8 = 1;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    vertex_broker::telemetry::init(&config.log, std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some());
    match cli.command {
        Command::Serve { port, secret } => {
            if let Some(p) = port {
                config.port = p;
            }
            if let Some(s) = secret {
                config.secret_ids = s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            }
            serve(config).await
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    if config.secret_ids.is_empty() {
        eprintln!("error: {}", vertex_broker::broker::BrokerError::NoSecret);
        return ExitCode::from(EXIT_USAGE);
    }
    let stop = shutdown_signal();
    // Listen first: clients can connect while the AWS configuration loads.
    let listener = match server::bind(config.port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{}: {e}; pick another with --port", config.port);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let broker = match Broker::new(&BrokerSettings::from(&config), store) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%addr, "vertex-broker listening");
    println!("vertex-broker serving on {addr}\nexport GCE_METADATA_HOST={addr} GCE_METADATA_IP={addr}");
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.warm_up().await }
    });
    server::serve(broker, listener, stop).await;
    tracing::info!("vertex-broker stopped");
    ExitCode::SUCCESS
}

/// Installs the SIGTERM and SIGINT handlers now (before the port opens, so a signal that
/// arrives early still stops cleanly) and resolves when either arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
