//! The rotation Lambda (`bootstrap`): a thin lambda_runtime adapter over
//! `vertex_broker::rotation::Rotation`. Configuration comes from the environment through
//! `vertex_broker::config`; logs are JSON; each step emits one CloudWatch EMF line.

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use vertex_broker::rotation::{Rotation, RotationError, RotationEvent, RotationSettings};
use vertex_broker::store::SecretsManagerStore;
use vertex_broker::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = telemetry::start_lambda_function(
        "bootstrap (the rotation function)",
        "to rotate from a shell use `vertex-broker rotate SECRET --local`",
    )?;
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let rotation = Arc::new(Rotation::new(store, RotationSettings::from(&config)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| {
        let rotation = rotation.clone();
        async move { handle(&rotation, event).await }
    }))
    .await
}

/// A failed step as Lambda reports it: its class is the errorType (`KeyLimitReached`,
/// `PropagationTimeout`, ...), which Secrets Manager and CloudWatch show the operator.
struct StepFailure(RotationError);

impl From<StepFailure> for Diagnostic {
    fn from(StepFailure(e): StepFailure) -> Self {
        Diagnostic { error_type: e.class().as_str().to_string(), error_message: e.to_string() }
    }
}

/// Runs one step and emits its metric line.
async fn handle(rotation: &Rotation, event: LambdaEvent<RotationEvent>) -> Result<(), Diagnostic> {
    let (event, context) = event.into_parts();
    let started = Instant::now();
    // Lambda's deadline, as an Instant on our clock.
    let deadline = context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .ok()
        .map(|left| tokio::time::Instant::now() + left);
    let result = rotation.run(&event, deadline).await;
    let class = result.as_ref().err().map(|e| e.class());
    let line = telemetry::step_metric(
        &event.secret_id,
        &event.step,
        class.map(|c| c.as_str()),
        started.elapsed(),
        chrono::Utc::now().timestamp_millis(),
    );
    telemetry::emit(&line);
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            let class = e.class();
            tracing::error!(secret = %event.secret_id, step = %event.step, error_type = %class, error = %e, "rotation step failed");
            Err(StepFailure(e).into())
        }
    }
}
