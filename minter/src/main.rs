//! The minter Lambda (`vertex-broker-minter`): a thin lambda_runtime adapter over
//! `vertex_broker::minter::Minter`, invoked by an EventBridge Scheduler schedule (any payload).
//! Each invocation is one run: it renews what is due in the token secret and emits one EMF line;
//! a run that could not renew a token fails with that failure's class as the errorType.

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::{json, Value};
use vertex_broker::broker::BrokerSettings;
use vertex_broker::config::LambdaCredentials;
use vertex_broker::google::federation::AwsIdentity;
use vertex_broker::minter::{metric, Minter};
use vertex_broker::store::SecretsManagerStore;
use vertex_broker::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = telemetry::start_lambda_function(
        "vertex-broker-minter (the central minting function)",
        "to mint from a shell use `vertex-broker mint`",
    )?;
    let Some(token_secret) = config.token_secret_id.clone() else {
        let message = "VERTEX_BROKER_TOKEN_SECRET_ID is not set: name the token secret the minter writes";
        tracing::error!("{message}");
        return Err(message.into());
    };
    let credentials = LambdaCredentials::from_env();
    let store = match &credentials {
        Some(c) => Arc::new(SecretsManagerStore::from_lambda(c)),
        None => Arc::new(SecretsManagerStore::from_env().await),
    };
    let mut settings = BrokerSettings::from(&config);
    settings.aws = credentials.as_ref().map(AwsIdentity::from_lambda);
    let minter = Arc::new(Minter::new(&settings, store, token_secret, config.audiences.clone())?);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let minter = minter.clone();
        async move { handle(&minter).await }
    }))
    .await
}

/// One run and its metric line.
async fn handle(minter: &Minter) -> Result<Value, Diagnostic> {
    let started = Instant::now();
    let result = minter.run().await;
    let line = metric::run_metric(
        minter.secret_id(),
        result.as_ref(),
        started.elapsed(),
        chrono::Utc::now().timestamp_millis(),
    );
    telemetry::emit(&line);
    let report = result.map_err(|e| {
        tracing::error!(secret = %minter.secret_id(), error_type = e.class(), error = %e, "the minter could not run");
        Diagnostic { error_type: e.class().to_string(), error_message: e.to_string() }
    })?;
    if let Some(f) = report.failures.first() {
        return Err(Diagnostic {
            error_type: f.class.to_string(),
            error_message: format!(
                "{} of {} token(s) not renewed; the first, for {}: {}",
                report.failures.len(),
                report.failures.len() + report.renewed + report.kept,
                f.slot,
                f.message
            ),
        });
    }
    Ok(json!({
        "renewed": report.renewed,
        "kept": report.kept,
        "version": report.version,
        "least_life_left_s": report.least_life_left,
    }))
}
