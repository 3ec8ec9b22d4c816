//! `google-emulator --port P`: the local Google on 127.0.0.1, standalone.

use clap::Parser;

/// A local Google (IAM keys, OAuth token endpoint, Vertex AI) on 127.0.0.1, for tests and demos.
#[derive(Parser)]
#[command(version, about, after_help = "Example:\n  google-emulator --port 8085")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// AWS STS (or moto) that verifies federation subject tokens, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    aws_sts_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let filter: tracing_subscriber::filter::Targets =
        std::env::var("RUST_LOG").ok().and_then(|f| f.parse().ok()).unwrap_or_default();
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry().with(filter).with(tracing_subscriber::fmt::layer()).init();
    let args = Args::parse();
    let emulator = google_emulator::Emulator::start_on(args.port).await?;
    if let Some(endpoint) = &args.aws_sts_endpoint {
        emulator.set_aws_sts_endpoint(endpoint);
    }
    let url = emulator.url();
    println!("google-emulator listening on {url}");
    println!();
    println!("Seed a service account and get its key file:");
    println!(
        "  curl -s -X POST {url}/emulator/v1/accounts -H 'content-type: application/json' \\\n    -d '{{\"email\":\"app@demo.iam.gserviceaccount.com\"}}' | jq .key_file > key.json"
    );
    println!("Point the project at it:  export VERTEX_BROKER_IAM_ENDPOINT={url}");
    println!("Inject a fault:  curl -s -X POST {url}/emulator/v1/faults -H 'content-type: application/json' -d '{{\"endpoint\":\"iam.create\",\"status\":503}}'");
    tokio::signal::ctrl_c().await?;
    emulator.stop();
    Ok(())
}
