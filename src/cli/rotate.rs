//! `vertex-broker rotate`: ask Secrets Manager to run the rotation function (and follow it with
//! `--wait`), or run the four steps in this process (`--local`, the break-glass path).

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;

use super::{Failure, Printer};
use crate::config::Config;
use crate::operator::{follow_rotation, FollowError, Operator};
use crate::rotation::RotationSettings;
use crate::store::{SecretStore, SecretsManagerStore};

/// `vertex-broker rotate`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  vertex-broker rotate prod/vertex-key --wait\n  \
    vertex-broker rotate prod/vertex-key --local   # break-glass: the Lambda is broken")]
pub struct Args {
    /// The secret's name or ARN in Secrets Manager.
    secret: String,
    /// Follow the rotation until it finishes or fails.
    #[arg(long)]
    wait: bool,
    /// Run the four steps in this process with your credentials (resumes a half-done rotation).
    #[arg(long)]
    local: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// How often `--wait` looks at the secret.
const POLL: Duration = Duration::from_secs(2);

/// Starts a rotation (or runs one here with `--local`), following it with `--wait`.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let store = std::sync::Arc::new(SecretsManagerStore::from_env().await);
    if args.local {
        return rotate_here(store, config, &args.secret, out).await;
    }
    let secret = &args.secret;
    let version = store.start_rotation(secret).await.map_err(|e| {
        let mut failure = Failure::from(e);
        failure.message.push_str(
            ". Is rotation configured (a rotation function and schedule)? \
             `vertex-broker rotate --local` runs the steps here instead",
        );
        failure
    })?;
    if !args.wait {
        out.result(
            format!(
                "rotation of {secret} started (version {version}); follow it with --wait or `vertex-broker status`"
            ),
            json!({"secret": secret, "version": version, "state": "started"}),
        );
        return Ok(());
    }
    let spinner = Spinner::new(std::io::stderr().is_terminal());
    let followed =
        follow_rotation(store.as_ref(), secret, &version, args.timeout, POLL, || spinner.tick(secret, &version)).await;
    spinner.clear();
    match followed {
        Ok(()) => {
            out.result(
                format!("rotated {secret}: version {version} is AWSCURRENT"),
                json!({"secret": secret, "version": version, "state": "finished"}),
            );
            Ok(())
        }
        Err(FollowError::Store(e)) => Err(e.into()),
        Err(e @ FollowError::Stopped { .. }) => {
            Err(Failure::failed(format!("{e}. Read the rotation function's logs, then `vertex-broker rotate --local`")))
        }
        Err(e @ FollowError::TimedOut { .. }) => Err(Failure::failed(format!(
            "{e}; it may still be running (Secrets Manager retries failed steps). See `vertex-broker status {secret}` \
             and the rotation function's logs"
        ))),
    }
}

/// The four steps in this process, each printed as it ends.
async fn rotate_here(
    store: std::sync::Arc<SecretsManagerStore>,
    config: &Config,
    secret: &str,
    out: Printer,
) -> Result<(), Failure> {
    let operator = Operator::new(store, RotationSettings::from(config));
    let mut steps = Vec::new();
    let token = operator
        .rotate_locally(secret, |step, outcome| {
            out.progress(format_args!("{:<13} {outcome}", step.as_str()));
            steps.push(json!({"step": step.as_str(), "outcome": outcome.to_string()}));
        })
        .await?;
    out.result(
        format!("rotated {secret}: version {token} is AWSCURRENT"),
        json!({"secret": secret, "version": token, "steps": steps}),
    );
    Ok(())
}

/// A one-character spinner on stderr while `--wait` waits, only on a terminal.
struct Spinner {
    on: bool,
    tick: std::cell::Cell<usize>,
}

impl Spinner {
    fn new(on: bool) -> Self {
        Self { on, tick: std::cell::Cell::new(0) }
    }

    fn tick(&self, secret: &str, version: &str) {
        if self.on {
            let n = self.tick.get();
            eprint!("\r{} rotating {secret} (version {version})", ['|', '/', '-', '\\'][n % 4]);
            self.tick.set(n + 1);
        }
    }

    fn clear(&self) {
        if self.on && self.tick.get() > 0 {
            eprint!("\r");
        }
    }
}
