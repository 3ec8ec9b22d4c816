//! `Rotation`: the four Secrets Manager rotation steps for a Google service-account key, as one
//! engine shared by the rotation Lambda and `vertex-broker rotate --local`.
//!
//! Rules it keeps (the README's "How a rotation works"): every step is idempotent on the ClientRequestToken; keys named by
//! AWSCURRENT or AWSPREVIOUS are never revoked; only keys recorded in this secret's version
//! history are revoked; a key created but not stored is deleted when that is certain; the
//! 10-key limit is checked before creating; testSecret waits for propagation with backoff.
//!
//! [`ErrorClass`] names each failure's class for the operator (the Lambda's errorType).
//! [`operator`] adds what the CLI needs on top of the same engine: a local rotation, the
//! status report, revocation and the first key.

mod class;
pub mod operator;

pub use class::ErrorClass;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{Config, RevokeMode, DEFAULT_SCOPE};
use crate::google::iam::{IamClient, IamError, RetryPolicy};
use crate::google::token::{TokenClient, TokenError};
use crate::key::{KeyError, ServiceAccountKey};
use crate::store::{SecretDescription, SecretStore, StoreError, VersionInfo, AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// Google's limit on user-managed keys per service account.
pub const MAX_KEYS: usize = 10;
/// Time kept back from the Lambda deadline so a step can report its own failure.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// The event Secrets Manager sends the rotation function.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    pub step: String,
    pub secret_id: String,
    pub client_request_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_token: Option<String>,
}

/// The four steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::CreateSecret, Step::SetSecret, Step::TestSecret, Step::FinishSecret];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The version was already AWSCURRENT: nothing to do.
    AlreadyCurrent,
    /// createSecret minted `key_id` and stored it as AWSPENDING (after revoking `revoked`).
    Created { key_id: String, revoked: Vec<String> },
    /// createSecret found the pending key already stored.
    AlreadyCreated { key_id: String },
    /// setSecret checked the pending key belongs to the rotated account.
    Verified { key_id: String },
    /// testSecret minted a token with the pending key after `attempts` tries.
    Tested { key_id: String, attempts: u32, waited: Duration },
    /// finishSecret made `key_id` AWSCURRENT and revoked aged-out keys.
    Promoted { key_id: String, revoked: Vec<String>, revoke_failures: Vec<String> },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::AlreadyCurrent => write!(f, "version is already AWSCURRENT; nothing to do"),
            Outcome::Created { key_id, revoked } if revoked.is_empty() => {
                write!(f, "created key {key_id} as AWSPENDING")
            }
            Outcome::Created { key_id, revoked } => {
                write!(f, "revoked {} aged-out key(s), created key {key_id} as AWSPENDING", revoked.len())
            }
            Outcome::AlreadyCreated { key_id } => write!(f, "key {key_id} already stored as AWSPENDING"),
            Outcome::Verified { key_id } => write!(f, "key {key_id} belongs to the rotated account"),
            Outcome::Tested { key_id, attempts, waited } => {
                write!(f, "key {key_id} minted a token after {attempts} attempt(s) in {:.1}s", waited.as_secs_f64())
            }
            Outcome::Promoted { key_id, revoked, revoke_failures } => {
                write!(f, "key {key_id} is AWSCURRENT; revoked {} aged-out key(s)", revoked.len())?;
                if !revoke_failures.is_empty() {
                    write!(f, "; {} revoke(s) failed and will be retried next rotation", revoke_failures.len())?;
                }
                Ok(())
            }
        }
    }
}

/// Why a step failed. Messages of the pre-checks are those of AWS's own rotation templates.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("Secret {arn} is not enabled for rotation")]
    NotEnabled { arn: String },
    #[error("Secret version {token} has no stage for rotation of secret {arn}")]
    NoStage { token: String, arn: String },
    #[error("Secret version {token} not set as AWSPENDING for rotation of secret {arn}")]
    NotPending { token: String, arn: String },
    #[error("Invalid step parameter {step} for secret {arn}")]
    InvalidStep { step: String, arn: String },
    #[error("the {stage} version {version} of secret {arn} is not a usable Google service-account key: {source}")]
    BadSecret {
        arn: String,
        stage: &'static str,
        version: String,
        #[source]
        source: KeyError,
    },
    #[error(
        "the pending key belongs to {pending}, but secret {arn} holds a key of {current}; a secret \
         rotates one service account"
    )]
    AccountMismatch { arn: String, current: String, pending: String },
    #[error("Secrets Manager: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Iam(#[from] IamError),
    #[error(
        "could not get an access token for the IAM calls with {key}: {source}. Check that this key \
         is valid (for VERTEX_BROKER_ADMIN_SECRET_ID, the admin secret's AWSCURRENT key)"
    )]
    Auth {
        key: String,
        #[source]
        source: TokenError,
    },
    #[error(
        "{account} is at Google's limit of 10 keys: {protected} are AWSCURRENT/AWSPREVIOUS of this \
         secret and {foreign} were not minted by it. Delete keys this secret did not mint \
         (`vertex-broker status` lists them) and rotate again"
    )]
    KeyLimit { account: String, protected: usize, foreign: usize },
    #[error(
        "the new key {key_id} could not mint a token within {waited:?} (last answer: {last}). Google \
         can take minutes to propagate a new key: raise VERTEX_BROKER_PROPAGATION_TIMEOUT and the \
         function timeout, then let Secrets Manager retry"
    )]
    PropagationTimeout { key_id: String, waited: Duration, last: String },
    #[error(
        "refusing to revoke key {key_id}: it is the AWSCURRENT key of secret {arn}, in use by every \
         broker. Rotate first (`vertex-broker rotate`), then revoke it as --previous"
    )]
    RefuseCurrent { key_id: String, arn: String },
    #[error("nothing to revoke: {0}")]
    NothingToRevoke(String),
    #[error("the new key {key_id} was refused by the token endpoint: {source}")]
    PendingRefused {
        key_id: String,
        #[source]
        source: TokenError,
    },
}

/// Who runs a step: Secrets Manager (the Lambda), or an operator (`rotate --local`), for
/// whom rotation need not be enabled and createSecret may start a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invoker {
    SecretsManager,
    Operator,
}

/// The engine's settings (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct RotationSettings {
    pub iam_endpoint: String,
    pub admin_secret_id: Option<String>,
    pub propagation_timeout: Duration,
    pub revoke: RevokeMode,
    pub http_timeout: Duration,
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

/// Keys recorded in the secret's version history: key id -> version id.
type History = HashMap<String, String>;

impl Rotation {
    pub fn new(store: Arc<dyn SecretStore>, settings: RotationSettings) -> Self {
        let tokens = TokenClient::new(settings.http_timeout);
        Self { store, settings, http: reqwest::Client::new(), tokens, versions_seen: Default::default() }
    }

    /// Runs one step as Secrets Manager invokes it. `deadline` is the Lambda's, if any.
    pub async fn run(&self, event: &RotationEvent, deadline: Option<Instant>) -> Result<Outcome, RotationError> {
        self.run_as(event, deadline, Invoker::SecretsManager).await
    }

    async fn run_as(
        &self,
        event: &RotationEvent,
        deadline: Option<Instant>,
        invoker: Invoker,
    ) -> Result<Outcome, RotationError> {
        let secret = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        let desc = self.store.describe(secret).await?;
        let arn = desc.arn.clone();
        if !desc.rotation_enabled && invoker == Invoker::SecretsManager {
            return Err(RotationError::NotEnabled { arn });
        }
        // An operator's local rotation starts without RotateSecret: createSecret labels the token.
        let new_local = invoker == Invoker::Operator && event.step == Step::CreateSecret.as_str();
        let no_stages = Vec::new();
        let stages = match desc.versions.get(token) {
            Some(stages) => stages,
            None if new_local => &no_stages,
            None => return Err(RotationError::NoStage { token: token.into(), arn }),
        };
        if stages.iter().any(|s| s == AWSCURRENT) {
            // A finishSecret that promoted but failed to drop AWSPENDING left it here: tidy up.
            if event.step == Step::FinishSecret.as_str() && stages.iter().any(|s| s == AWSPENDING) {
                if let Err(e) = self.store.update_stage(secret, AWSPENDING, None, Some(token)).await {
                    tracing::warn!(secret = %arn, error = %e, "could not remove AWSPENDING from the AWSCURRENT version");
                }
            }
            tracing::info!(secret = %arn, version = token, "version is already AWSCURRENT; nothing to do");
            return Ok(Outcome::AlreadyCurrent);
        }
        if !stages.iter().any(|s| s == AWSPENDING) && !new_local {
            return Err(RotationError::NotPending { token: token.into(), arn });
        }
        let step = Step::parse(&event.step)
            .ok_or_else(|| RotationError::InvalidStep { step: event.step.clone(), arn: arn.clone() })?;
        let outcome = match step {
            Step::CreateSecret => self.create_secret(&desc, token, event.rotation_token.as_deref()).await,
            Step::SetSecret => self.set_secret(&desc, token).await,
            Step::TestSecret => self.test_secret(&desc, token, deadline).await,
            Step::FinishSecret => self.finish_secret(&desc, token).await,
        }?;
        tracing::info!(secret = %arn, step = step.as_str(), version = token, "{outcome}");
        Ok(outcome)
    }

    /// Reads and parses the key at `stage` (or a specific version).
    async fn key_at(
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

    async fn create_secret(
        &self,
        desc: &SecretDescription,
        token: &str,
        rotation_token: Option<&str>,
    ) -> Result<Outcome, RotationError> {
        let current = self.key_at(desc, None, AWSCURRENT).await?;
        match self.key_at(desc, Some(token), AWSPENDING).await {
            Ok(pending) => return Ok(Outcome::AlreadyCreated { key_id: pending.private_key_id().to_string() }),
            Err(RotationError::Store(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let account = current.client_email().to_string();
        let iam = self.iam_client(&current).await?;
        let protected = self.protected_keys(desc, &current).await;
        let history = self.history(&desc.arn, &account).await?;
        let keys = iam.list_keys(&account).await?;

        // Aged-out keys this secret minted (including an abandoned pending one) go first, so the
        // new key fits under the limit and nothing lingers.
        let (revoked, failures) = self.revoke_aged_out(&iam, &account, &keys, &history, &protected, true).await;
        if let Some(first) = failures.first() {
            tracing::warn!(secret = %desc.arn, error = %first, "could not revoke an aged-out key before creating");
        }
        let remaining = keys.iter().filter(|k| !revoked.contains(&k.id)).count();
        if remaining >= MAX_KEYS {
            let foreign = keys.iter().filter(|k| !history.contains_key(&k.id)).count();
            return Err(RotationError::KeyLimit { account, protected: remaining - foreign, foreign });
        }

        let (new_key, _) = iam.create_key(&account).await?;
        let key_id = new_key.private_key_id().to_string();
        tracing::info!(secret = %desc.arn, key_id = %key_id, account = %account, "created a Google key");
        if let Err(put_err) = self.store.put(&desc.arn, token, new_key.raw(), &[AWSPENDING], rotation_token).await {
            // Delete the new key only when it is certain the secret does not hold it.
            match self.store.get(&desc.arn, Some(token), Some(AWSPENDING)).await {
                Ok(v) if v.value.as_str() == new_key.raw() => {
                    tracing::warn!(secret = %desc.arn, error = %put_err, "PutSecretValue reported an error but the value is stored");
                    return Ok(Outcome::Created { key_id, revoked });
                }
                Err(e) if e.is_not_found() => match iam.delete_key(&account, &key_id).await {
                    Ok(()) => tracing::warn!(key_id = %key_id, "deleted the new key: it could not be stored"),
                    Err(e) => {
                        tracing::error!(key_id = %key_id, error = %e, "the new key could not be stored nor deleted: delete it by hand")
                    }
                },
                _ => {
                    tracing::error!(key_id = %key_id, "the new key may not be stored; left in place (`vertex-broker status` reports it)")
                }
            }
            return Err(put_err.into());
        }
        Ok(Outcome::Created { key_id, revoked })
    }

    async fn set_secret(&self, desc: &SecretDescription, token: &str) -> Result<Outcome, RotationError> {
        // Google activates a key at creation: there is nothing to set, only to check.
        let current = self.key_at(desc, None, AWSCURRENT).await?;
        let pending = self.key_at(desc, Some(token), AWSPENDING).await?;
        if pending.client_email() != current.client_email() {
            return Err(RotationError::AccountMismatch {
                arn: desc.arn.clone(),
                current: current.client_email().into(),
                pending: pending.client_email().into(),
            });
        }
        Ok(Outcome::Verified { key_id: pending.private_key_id().to_string() })
    }

    async fn test_secret(
        &self,
        desc: &SecretDescription,
        token: &str,
        deadline: Option<Instant>,
    ) -> Result<Outcome, RotationError> {
        let pending = self.key_at(desc, Some(token), AWSPENDING).await?;
        let key_id = pending.private_key_id().to_string();
        let start = Instant::now();
        let mut give_up = start + self.settings.propagation_timeout;
        if let Some(d) = deadline {
            give_up = give_up.min(d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        }
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build();
        let scopes = [DEFAULT_SCOPE.to_string()];
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.tokens.access_token(&pending, &scopes).await {
                Ok(_) => return Ok(Outcome::Tested { key_id, attempts, waited: start.elapsed() }),
                Err(e) => e,
            };
            // invalid_grant is how a not-yet-propagated key looks; other refusals will not heal.
            if !err.is_invalid_grant() && !err.is_transient() {
                return Err(RotationError::PendingRefused { key_id, source: err });
            }
            let wait = delays.next().unwrap_or(Duration::from_secs(10));
            if Instant::now() + wait >= give_up {
                return Err(RotationError::PropagationTimeout {
                    key_id,
                    waited: start.elapsed(),
                    last: err.to_string(),
                });
            }
            tracing::info!(key_id = %key_id, attempt = attempts, retry_in = ?wait, answer = %err, "new key not usable yet; waiting for propagation");
            tokio::time::sleep(wait).await;
        }
    }

    async fn finish_secret(&self, desc: &SecretDescription, token: &str) -> Result<Outcome, RotationError> {
        let pending = self.key_at(desc, Some(token), AWSPENDING).await?;
        let key_id = pending.private_key_id().to_string();
        let current_version = desc.version_with(AWSCURRENT).map(str::to_string);
        self.store.update_stage(&desc.arn, AWSCURRENT, Some(token), current_version.as_deref()).await?;
        if let Err(e) = self.store.update_stage(&desc.arn, AWSPENDING, None, Some(token)).await {
            // AWSPENDING on the AWSCURRENT version is a valid end state; the next rotation moves it.
            tracing::warn!(secret = %desc.arn, error = %e, "could not remove AWSPENDING from the new current version");
        }
        // Revocation is best effort: a failure is logged and retried by the next rotation.
        let (revoked, revoke_failures) = match self.revoke_after_promotion(desc, &pending).await {
            Ok(r) => r,
            Err(e) => (Vec::new(), vec![e.to_string()]),
        };
        for failure in &revoke_failures {
            tracing::warn!(secret = %desc.arn, error = %failure, "revoking an aged-out key failed; the next rotation retries it");
        }
        Ok(Outcome::Promoted { key_id, revoked, revoke_failures })
    }

    async fn revoke_after_promotion(
        &self,
        desc: &SecretDescription,
        current: &ServiceAccountKey,
    ) -> Result<(Vec<String>, Vec<String>), RotationError> {
        let desc = self.store.describe(&desc.arn).await?;
        let account = current.client_email().to_string();
        let iam = self.iam_client(current).await?;
        let protected = self.protected_keys(&desc, current).await;
        let history = self.history(&desc.arn, &account).await?;
        let keys = iam.list_keys(&account).await?;
        Ok(self.revoke_aged_out(&iam, &account, &keys, &history, &protected, false).await)
    }

    /// Key ids of AWSCURRENT (`current`) and AWSPREVIOUS: never revoked.
    async fn protected_keys(&self, desc: &SecretDescription, current: &ServiceAccountKey) -> HashSet<String> {
        let mut ids = HashSet::from([current.private_key_id().to_string()]);
        if desc.version_with(AWSPREVIOUS).is_some() {
            match self.key_at(desc, None, AWSPREVIOUS).await {
                Ok(previous) => {
                    ids.insert(previous.private_key_id().to_string());
                }
                Err(e) => tracing::debug!(error = %e, "AWSPREVIOUS holds no usable key"),
            }
        }
        ids
    }

    /// Every key of `account` that some version of the secret has held.
    async fn history(&self, secret: &str, account: &str) -> Result<History, RotationError> {
        Ok(self
            .version_keys(secret)
            .await?
            .into_iter()
            .filter_map(|(version, holder)| {
                holder.filter(|(email, _)| email == account).map(|(_, key_id)| (key_id, version.version_id))
            })
            .collect())
    }

    /// Every version of the secret with the (account, key id) it holds, if it holds a key.
    async fn version_keys(&self, secret: &str) -> Result<Vec<(VersionInfo, Option<(String, String)>)>, RotationError> {
        let mut out = Vec::new();
        for version in self.store.list_versions(secret).await? {
            let cached = self.versions_seen.lock().unwrap_or_else(|p| p.into_inner()).get(&version.version_id).cloned();
            let holder = match cached {
                Some(holder) => holder,
                None => {
                    let holder = match self.store.get(secret, Some(&version.version_id), None).await {
                        Ok(v) => ServiceAccountKey::parse(&v.value)
                            .ok()
                            .map(|k| (k.client_email().to_string(), k.private_key_id().to_string())),
                        // A version without a value yet (RotateSecret's pending one) may get one later.
                        Err(e) if e.is_not_found() => {
                            out.push((version, None));
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    self.versions_seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(version.version_id.clone(), holder.clone());
                    holder
                }
            };
            out.push((version, holder));
        }
        Ok(out)
    }

    /// Revokes keys this secret minted that are no longer AWSCURRENT or AWSPREVIOUS. With
    /// `make_room`, keys already disabled (VERTEX_BROKER_REVOKE=disable) are deleted to free
    /// places under the limit.
    async fn revoke_aged_out(
        &self,
        iam: &IamClient,
        account: &str,
        keys: &[crate::google::iam::GoogleKey],
        history: &History,
        protected: &HashSet<String>,
        make_room: bool,
    ) -> (Vec<String>, Vec<String>) {
        let (mut revoked, mut failures) = (Vec::new(), Vec::new());
        for key in keys.iter().filter(|k| history.contains_key(&k.id) && !protected.contains(&k.id)) {
            let delete = self.settings.revoke == RevokeMode::Delete || (make_room && key.disabled);
            let result = if delete {
                iam.delete_key(account, &key.id).await
            } else if !key.disabled {
                iam.disable_key(account, &key.id).await
            } else {
                continue;
            };
            match result {
                Ok(()) | Err(IamError::NotFound { .. }) => {
                    tracing::info!(key_id = %key.id, action = if delete { "deleted" } else { "disabled" }, "revoked an aged-out key");
                    if delete {
                        revoked.push(key.id.clone());
                    }
                }
                Err(e) => failures.push(format!("key {}: {e}", key.id)),
            }
        }
        (revoked, failures)
    }

    /// An IAM client authenticated as the admin key (VERTEX_BROKER_ADMIN_SECRET_ID) or, by
    /// default, as the rotated account's current key.
    async fn iam_client(&self, current: &ServiceAccountKey) -> Result<IamClient, RotationError> {
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
    async fn iam_client_as(&self, caller: &ServiceAccountKey) -> Result<IamClient, RotationError> {
        let scopes = [DEFAULT_SCOPE.to_string()];
        let retry = self.settings.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(retry.first_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries)
            .with_jitter();
        let bearer = (|| self.tokens.access_token(caller, &scopes))
            .retry(backoff)
            .when(TokenError::is_transient)
            .await
            .map_err(|source| RotationError::Auth { key: caller.to_string(), source })?;
        Ok(IamClient::new(self.http.clone(), &self.settings.iam_endpoint, bearer.secret, self.settings.http_timeout)
            .with_retry(self.settings.retry))
    }
}
