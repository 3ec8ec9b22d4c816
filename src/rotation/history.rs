//! Key history and revocation: which Google keys this secret minted (recorded in its
//! versions), which are protected (AWSCURRENT, AWSPREVIOUS), and revoking the aged-out rest.
//! Only keys in the history are ever revoked.

use std::collections::{HashMap, HashSet};

use super::{Rotation, RotationError};
use crate::config::RevokeMode;
use crate::google::iam::{GoogleKey, IamClient, IamError};
use crate::key::ServiceAccountKey;
use crate::store::{SecretDescription, VersionInfo, AWSPREVIOUS};

/// Keys recorded in the secret's version history: key id -> version id.
pub type History = HashMap<String, String>;

impl Rotation {
    pub(super) async fn revoke_after_promotion(
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
    pub async fn protected_keys(&self, desc: &SecretDescription, current: &ServiceAccountKey) -> HashSet<String> {
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
    pub async fn history(&self, secret: &str, account: &str) -> Result<History, RotationError> {
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
    pub async fn version_keys(
        &self,
        secret: &str,
    ) -> Result<Vec<(VersionInfo, Option<(String, String)>)>, RotationError> {
        let mut out = Vec::new();
        for version in self.store.list_versions(secret).await? {
            let cached = crate::lock(&self.versions_seen).get(&version.version_id).cloned();
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
                    crate::lock(&self.versions_seen).insert(version.version_id.clone(), holder.clone());
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
    pub(super) async fn revoke_aged_out(
        &self,
        iam: &IamClient,
        account: &str,
        keys: &[GoogleKey],
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
}
