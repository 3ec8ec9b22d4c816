//! `vertex-broker health`: the container's HEALTHCHECK, with no shell or curl in the image. Asks
//! the broker on 127.0.0.1:VERTEX_BROKER_PORT for its status: healthy when it answers and its
//! default account holds a servable token (minted, or read from the token secret).

use std::time::Duration;

use serde_json::Value;

use super::{Failure, Printer};
use crate::config::Config;

/// How long the probe waits (Docker's --timeout is longer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `vertex-broker health`'s arguments.
#[derive(clap::Args)]
#[command(
    after_help = "Example (a Dockerfile's HEALTHCHECK):\n  HEALTHCHECK CMD [\"/usr/local/bin/vertex-broker\", \"health\"]"
)]
pub struct Args {
    /// Port on 127.0.0.1 (default: VERTEX_BROKER_PORT, else 2775).
    #[arg(long)]
    port: Option<u16>,
}

/// Probes the broker; fails (exit 1) saying why when it is not healthy.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let port = args.port.unwrap_or(config.port);
    let url = format!("http://127.0.0.1:{port}/vertex-broker/v1/status");
    let http = reqwest::Client::builder().timeout(PROBE_TIMEOUT).no_proxy().build().unwrap_or_default();
    let answer = http
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| Failure::failed(format!("no broker answers on 127.0.0.1:{port}: {}", e.without_url())))?;
    if !answer.status().is_success() {
        return Err(Failure::failed(format!("the broker on 127.0.0.1:{port} answered {}", answer.status())));
    }
    let status: Value = answer.json().await.map_err(|e| Failure::failed(format!("unreadable status: {e}")))?;
    let account = &status["accounts"][0];
    let servable = match account.get("stored_tokens").filter(|s| !s.is_null()) {
        Some(stored) => stored["least_life_left_s"].as_i64().is_some_and(|left| left > 0),
        None => account["access_tokens"]["servable"].as_u64().is_some_and(|n| n > 0),
    };
    if !servable {
        return Err(Failure::failed(format!(
            "the broker on 127.0.0.1:{port} holds no servable token yet: `vertex-broker doctor` says why"
        )));
    }
    out.result(format!("healthy: 127.0.0.1:{port}"), serde_json::json!({"healthy": true, "port": port}));
    Ok(())
}
