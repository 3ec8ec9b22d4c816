//! `vertex-broker mint`: the minter's work once, from a shell: renew what is due in the token
//! secret with this shell's credentials and the configured source.

use std::sync::Arc;

use serde_json::json;

use super::{AwsSide, ExitCode, Failure, Printer};
use crate::config::Config;
use crate::minter::Minter;

/// `vertex-broker mint`'s arguments.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key VERTEX_BROKER_TOKEN_SECRET_ID=prod/vertex-tokens \
    vertex-broker mint"
)]
pub struct Args {
    /// The token secret to write (default: VERTEX_BROKER_TOKEN_SECRET_ID).
    #[arg(long)]
    token_secret: Option<String>,
}

/// Runs one mint and prints what it did; fails when a token could not be renewed.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let Some(secret) = args.token_secret.or_else(|| config.token_secret_id.clone()) else {
        return Err(Failure::usage(
            "no token secret: pass --token-secret SECRET or set VERTEX_BROKER_TOKEN_SECRET_ID (the secret the \
             template's Minting=Central creates)",
        ));
    };
    let aws = AwsSide::load().await;
    let settings = aws.broker_settings(config);
    let store: Arc<dyn crate::store::SecretStore> = aws.store.clone();
    let minter = Minter::new(&settings, store, secret.clone(), config.audiences.clone())
        .map_err(|e| Failure::usage(e.to_string()))?;
    let report = minter.run().await.map_err(|e| Failure::new(ExitCode::Aws, e.to_string()))?;
    let failures: Vec<_> =
        report.failures.iter().map(|f| json!({"for": f.slot, "class": f.class, "message": f.message})).collect();
    let written = report
        .version
        .as_deref()
        .map_or("nothing written: every token has half its life left".into(), |v| format!("wrote version {v}"));
    out.result(
        format!(
            "{secret}: {} renewed, {} kept, {} failed; {written}; the shortest has {} s left",
            report.renewed,
            report.kept,
            report.failures.len(),
            report.least_life_left.unwrap_or(0)
        ),
        json!({
            "token_secret": secret,
            "renewed": report.renewed,
            "kept": report.kept,
            "failures": failures,
            "version": report.version,
            "least_life_left_s": report.least_life_left,
        }),
    );
    match report.failures.first() {
        None => Ok(()),
        Some(f) => Err(Failure::new(ExitCode::Google, format!("{} ({}): {}", f.slot, f.class, f.message))),
    }
}
