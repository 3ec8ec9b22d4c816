//! `Rotation`: the four Secrets Manager rotation steps for a Google service-account key, as one
//! engine shared by the rotation Lambda and `vertex-broker rotate --local`.
//!
//! Rules it keeps (the README's "How a rotation works"): every step is idempotent on the ClientRequestToken; keys named by
//! AWSCURRENT or AWSPREVIOUS are never revoked; only keys recorded in this secret's version
//! history are revoked; a key created but not stored is deleted when that is certain; the
//! 10-key limit is checked before creating; testSecret waits for propagation with backoff.
//!
//! | file | what |
//! |---|---|
//! | `event.rs` | what Secrets Manager sends (`RotationEvent`), the four `Step`s, each step's `Outcome` |
//! | `error.rs` | `RotationError`: why a step failed, with what to do |
//! | `class.rs` | `ErrorClass`: each failure's class, the Lambda's errorType |
//! | `steps.rs` | createSecret, setSecret, testSecret, finishSecret |
//! | `history.rs` | the keys this secret minted, which are protected, and revoking the aged-out ones |
//!
//! What operators do with the engine (a local rotation, status, revoke, the first key) is a
//! layer over this module's public interface: [`crate::operator`].

mod class;
mod error;
mod event;
mod history;
mod steps;
#[cfg(test)]
mod tests;

pub use class::ErrorClass;
pub use error::RotationError;
pub use event::{Outcome, RotationEvent, Step};
pub use history::History;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use tokio::time::Instant;

use crate::config::{Config, RevokeMode};
use crate::google::iam::{IamClient, RetryPolicy};
use crate::google::scopes::CLOUD_PLATFORM;
use crate::google::token::{TokenClient, TokenError};
use crate::key::ServiceAccountKey;
use crate::store::{SecretDescription, SecretStore, AWSCURRENT, AWSPENDING};

/// Google's limit on user-managed keys per service account.
pub const MAX_KEYS: usize = 10;
/// Time kept back from the Lambda deadline so a step can report its own failure.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// Who runs a step: Secrets Manager (the Lambda), or an operator (`rotate --local`), for
/// whom rotation need not be enabled and createSecret may start a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invoker {
    /// The rotation Lambda, invoked by Secrets Manager.
    SecretsManager,
    /// An operator's `rotate --local`.
    Operator,
}

/// The engine's settings (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct RotationSettings {
    /// Base URL of Google's IAM API (the emulator in tests).
    pub iam_endpoint: String,
    /// `VERTEX_BROKER_ADMIN_SECRET_ID`: a secret whose key makes the IAM calls instead.
    pub admin_secret_id: Option<String>,
    /// How long testSecret waits for a new key to work.
    pub propagation_timeout: Duration,
    /// Whether aged-out keys are deleted or disabled.
    pub revoke: RevokeMode,
    /// Bound on each AWS and Google call.
    pub http_timeout: Duration,
    /// Retries of Google calls that failed for a while (429, 5xx).
    pub retry: RetryPolicy,
}

impl From<&Config> for RotationSettings {
    fn from(c: &Config) -> Self {
        Self {
            iam_endpoint: c.iam_endpoint.clone(),
            admin_secret_id: c.admin_secret_id.clone(),
            propagation_timeout: c.propagation_timeout,
            revoke: c.revoke,
            http_timeout: c.http_timeout,
            retry: RetryPolicy::default(),
        }
    }
}

/// The rotation engine over a [`SecretStore`] and Google's IAM API.
pub struct Rotation {
    store: Arc<dyn SecretStore>,
    settings: RotationSettings,
    http: reqwest::Client,
    /// Google's token endpoint, shared by every mint of a warm function.
    tokens: TokenClient,
    /// Version id -> (account, key id) of the key it holds. A version's value never changes
    /// once set, so a warm function reads each version once instead of once per step.
    versions_seen: std::sync::Mutex<HashMap<String, Option<(String, String)>>>,
}

impl Rotation {
    /// The engine over `store`.
    pub fn new(store: Arc<dyn SecretStore>, settings: RotationSettings) -> Self {
        let tokens = TokenClient::new(settings.http_timeout);
        Self { store, settings, http: reqwest::Client::new(), tokens, versions_seen: Default::default() }
    }

    /// Runs one step as Secrets Manager invokes it. `deadline` is the Lambda's, if any.
    pub async fn run(&self, event: &RotationEvent, deadline: Option<Instant>) -> Result<Outcome, RotationError> {
        self.run_as(event, deadline, Invoker::SecretsManager).await
    }

    /// Runs one step for `invoker`; an operator's createSecret may start a new version.
    pub async fn run_as(
        &self,
        event: &RotationEvent,
        deadline: Option<Instant>,
        invoker: Invoker,
    ) -> Result<Outcome, RotationError> {
        let secret = event.secret_id.as_str();
        let request_token = event.client_request_token.as_str();
        let desc = self.store.describe(secret).await?;
        let arn = desc.arn.clone();
        if !desc.rotation_enabled && invoker == Invoker::SecretsManager {
            return Err(RotationError::NotEnabled { arn });
        }
        // An operator's local rotation starts without RotateSecret: createSecret labels the version.
        let new_local = invoker == Invoker::Operator && event.step == Step::CreateSecret.as_str();
        let no_stages = Vec::new();
        let stages = match desc.versions.get(request_token) {
            Some(stages) => stages,
            None if new_local => &no_stages,
            None => return Err(RotationError::NoStage { request_token: request_token.into(), arn }),
        };
        if stages.iter().any(|s| s == AWSCURRENT) {
            // A finishSecret that promoted but failed to drop AWSPENDING left it here: tidy up.
            if event.step == Step::FinishSecret.as_str() && stages.iter().any(|s| s == AWSPENDING) {
                if let Err(e) = self.store.update_stage(secret, AWSPENDING, None, Some(request_token)).await {
                    tracing::warn!(secret = %arn, error = %e, "could not remove AWSPENDING from the AWSCURRENT version");
                }
            }
            tracing::info!(secret = %arn, version = request_token, "version is already AWSCURRENT; nothing to do");
            return Ok(Outcome::AlreadyCurrent);
        }
        if !stages.iter().any(|s| s == AWSPENDING) && !new_local {
            return Err(RotationError::NotPending { request_token: request_token.into(), arn });
        }
        let step = Step::parse(&event.step)
            .ok_or_else(|| RotationError::InvalidStep { step: event.step.clone(), arn: arn.clone() })?;
        let outcome = match step {
            Step::CreateSecret => self.create_secret(&desc, request_token, event.rotation_token.as_deref()).await,
            Step::SetSecret => self.set_secret(&desc, request_token).await,
            Step::TestSecret => self.test_secret(&desc, request_token, deadline).await,
            Step::FinishSecret => self.finish_secret(&desc, request_token).await,
        }?;
        tracing::info!(secret = %arn, step = step.as_str(), version = request_token, "{outcome}");
        Ok(outcome)
    }

    /// The store the engine reads and writes.
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    /// The engine's settings.
    pub fn settings(&self) -> &RotationSettings {
        &self.settings
    }

    /// Reads and parses the key at `stage` (or a specific version).
    pub async fn key_at(
        &self,
        desc: &SecretDescription,
        version: Option<&str>,
        stage: &'static str,
    ) -> Result<ServiceAccountKey, RotationError> {
        let value = self.store.get(&desc.arn, version, Some(stage)).await?;
        ServiceAccountKey::parse(&value.value).map_err(|source| RotationError::BadSecret {
            arn: desc.arn.clone(),
            stage,
            version: value.version_id.clone(),
            source,
        })
    }

    /// An IAM client authenticated as the admin key (VERTEX_BROKER_ADMIN_SECRET_ID) or, by
    /// default, as the rotated account's current key.
    pub async fn iam_client(&self, current: &ServiceAccountKey) -> Result<IamClient, RotationError> {
        match &self.settings.admin_secret_id {
            Some(id) => {
                let desc = self.store.describe(id).await?;
                let admin = self.key_at(&desc, None, AWSCURRENT).await?;
                self.iam_client_as(&admin).await
            }
            None => self.iam_client_as(current).await,
        }
    }

    /// An IAM client whose calls `caller` authenticates.
    pub async fn iam_client_as(&self, caller: &ServiceAccountKey) -> Result<IamClient, RotationError> {
        let scopes = [CLOUD_PLATFORM.to_string()];
        let token = (|| self.tokens.access_token(caller, &scopes))
            .retry(self.settings.retry.backoff())
            .when(TokenError::is_transient)
            .await
            .map_err(|source| RotationError::Auth { key: caller.to_string(), source })?;
        Ok(IamClient::new(self.http.clone(), &self.settings.iam_endpoint, token.bearer, self.settings.http_timeout)
            .with_retry(self.settings.retry))
    }
}
