//! The four steps. Each is idempotent on the ClientRequestToken: a retry after a failure at
//! any point converges.

use std::time::Duration;

use backon::BackoffBuilder;
use tokio::time::Instant;

use super::{Outcome, Rotation, RotationError, DEADLINE_MARGIN, MAX_KEYS};
use crate::google::iam::RetryPolicy;
use crate::google::scopes::CLOUD_PLATFORM;
use crate::store::{SecretDescription, AWSCURRENT, AWSPENDING};

impl Rotation {
    pub(super) async fn create_secret(
        &self,
        desc: &SecretDescription,
        request_token: &str,
        rotation_token: Option<&str>,
    ) -> Result<Outcome, RotationError> {
        let current = self.key_at(desc, None, AWSCURRENT).await?;
        match self.key_at(desc, Some(request_token), AWSPENDING).await {
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
        if let Err(put_err) =
            self.store.put(&desc.arn, request_token, new_key.raw(), &[AWSPENDING], rotation_token).await
        {
            // Delete the new key only when it is certain the secret does not hold it.
            match self.store.get(&desc.arn, Some(request_token), Some(AWSPENDING)).await {
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

    pub(super) async fn set_secret(
        &self,
        desc: &SecretDescription,
        request_token: &str,
    ) -> Result<Outcome, RotationError> {
        // Google activates a key at creation: there is nothing to set, only to check.
        let current = self.key_at(desc, None, AWSCURRENT).await?;
        let pending = self.key_at(desc, Some(request_token), AWSPENDING).await?;
        if pending.client_email() != current.client_email() {
            return Err(RotationError::AccountMismatch {
                arn: desc.arn.clone(),
                current: current.client_email().into(),
                pending: pending.client_email().into(),
            });
        }
        Ok(Outcome::Verified { key_id: pending.private_key_id().to_string() })
    }

    pub(super) async fn test_secret(
        &self,
        desc: &SecretDescription,
        request_token: &str,
        deadline: Option<Instant>,
    ) -> Result<Outcome, RotationError> {
        let pending = self.key_at(desc, Some(request_token), AWSPENDING).await?;
        let key_id = pending.private_key_id().to_string();
        let start = Instant::now();
        let mut give_up = start + self.settings.propagation_timeout;
        if let Some(d) = deadline {
            give_up = give_up.min(d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        }
        // No count: the propagation timeout and the deadline bound the wait.
        let propagation = RetryPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retries: usize::MAX,
        };
        let mut delays = propagation.backoff().build();
        let scopes = [CLOUD_PLATFORM.to_string()];
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

    pub(super) async fn finish_secret(
        &self,
        desc: &SecretDescription,
        request_token: &str,
    ) -> Result<Outcome, RotationError> {
        let pending = self.key_at(desc, Some(request_token), AWSPENDING).await?;
        let key_id = pending.private_key_id().to_string();
        let current_version = desc.version_with(AWSCURRENT).map(str::to_string);
        self.store.update_stage(&desc.arn, AWSCURRENT, Some(request_token), current_version.as_deref()).await?;
        if let Err(e) = self.store.update_stage(&desc.arn, AWSPENDING, None, Some(request_token)).await {
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
}
