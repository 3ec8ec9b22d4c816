//! What operators do with the rotation engine, as a layer over its public interface: rotate
//! now in this process (the break-glass path), follow a rotation Secrets Manager runs, inspect a
//! secret against its Google keys, revoke keys, mint a first key.

mod revoke;
mod status;

pub use revoke::{RevokePlan, RevokeTarget};
pub use status::{KeyStatus, SecretStatus, VersionStatus, Warning};

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::key::ServiceAccountKey;
use crate::rotation::{Invoker, Outcome, Rotation, RotationError, RotationEvent, RotationSettings, Step};
use crate::store::{SecretStore, StoreError, AWSCURRENT, AWSPENDING};

/// The operator's actions on one store with the engine's settings.
pub struct Operator {
    engine: Rotation,
}

/// Why following a rotation ended without it finishing.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The version left both stages: another rotation replaced it, or it was cancelled.
    #[error("the rotation of {secret} stopped: version {version} is neither AWSPENDING nor AWSCURRENT")]
    Stopped {
        /// The secret.
        secret: String,
        /// The version followed.
        version: String,
    },
    /// The rotation was still running when the wait ended.
    #[error("the rotation of {secret} did not finish within {}", humantime::format_duration(*.timeout))]
    TimedOut {
        /// The secret.
        secret: String,
        /// How long it was followed.
        timeout: Duration,
    },
    /// Secrets Manager failed while the rotation was followed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Follows a rotation started with [`SecretStore::start_rotation`] until `version` holds
/// AWSCURRENT, looking every `poll` for at most `timeout`; `on_wait` runs before each wait.
pub async fn follow_rotation(
    store: &dyn SecretStore,
    secret: &str,
    version: &str,
    timeout: Duration,
    poll: Duration,
    mut on_wait: impl FnMut(),
) -> Result<(), FollowError> {
    let deadline = Instant::now() + timeout;
    loop {
        let desc = store.describe(secret).await?;
        let stages = desc.stages_of(version);
        if stages.iter().any(|s| s == AWSCURRENT) {
            return Ok(());
        }
        if !stages.iter().any(|s| s == AWSPENDING) && desc.versions.contains_key(version) {
            return Err(FollowError::Stopped { secret: secret.into(), version: version.into() });
        }
        if Instant::now() >= deadline {
            return Err(FollowError::TimedOut { secret: secret.into(), timeout });
        }
        on_wait();
        tokio::time::sleep(poll).await;
    }
}

impl Operator {
    /// The operator over `store`, with the engine's settings.
    pub fn new(store: Arc<dyn SecretStore>, settings: RotationSettings) -> Self {
        Self { engine: Rotation::new(store, settings) }
    }

    /// Runs the four steps here, now, with the caller's credentials. Resumes a rotation left
    /// half-done (a version holding AWSPENDING) with its ClientRequestToken; otherwise starts a new
    /// one.
    pub async fn rotate_locally(
        &self,
        secret_id: &str,
        mut on_step: impl FnMut(Step, &Outcome),
    ) -> Result<String, RotationError> {
        let desc = self.engine.store().describe(secret_id).await?;
        let current = desc.version_with(AWSCURRENT);
        let request_token = match desc.version_with(AWSPENDING) {
            Some(pending) if Some(pending) != current => pending.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        for step in Step::ALL {
            let event = RotationEvent {
                step: step.as_str().into(),
                secret_id: desc.arn.clone(),
                client_request_token: request_token.clone(),
                rotation_token: None,
            };
            let outcome = self.engine.run_as(&event, None, Invoker::Operator).await?;
            on_step(step, &outcome);
        }
        Ok(request_token)
    }

    /// Mints the first key of `account` with `admin`'s rights (for `init --service-account`).
    pub async fn mint_first_key(
        &self,
        admin: &ServiceAccountKey,
        account: &str,
    ) -> Result<ServiceAccountKey, RotationError> {
        let iam = self.engine.iam_client_as(admin).await?;
        let (key, _) = iam.create_key(account).await?;
        Ok(key)
    }
}
