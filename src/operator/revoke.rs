//! `revoke`: a plan the operator confirms, then carried out. Never the AWSCURRENT key.

use serde::Serialize;

use super::Operator;
use crate::config::RevokeMode;
use crate::rotation::RotationError;
use crate::store::{AWSCURRENT, AWSPREVIOUS};

/// Which keys `revoke` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// One key by id (even one this secret did not mint: the operator asked for it).
    KeyId(String),
    /// The AWSPREVIOUS key.
    Previous,
    /// Keys this secret minted that are neither AWSCURRENT nor AWSPREVIOUS.
    Orphans,
}

/// What a revoke would do, for the operator to confirm.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RevokePlan {
    /// The secret's ARN.
    pub secret: String,
    /// The account whose keys would go.
    pub account: String,
    /// The keys, never the AWSCURRENT one.
    pub key_ids: Vec<String>,
    /// `delete` or `disable` (`VERTEX_BROKER_REVOKE`).
    pub action: &'static str,
}

impl Operator {
    /// Which keys a revoke would touch. Never the AWSCURRENT key.
    pub async fn revoke_plan(&self, secret_id: &str, target: &RevokeTarget) -> Result<RevokePlan, RotationError> {
        let desc = self.engine.store().describe(secret_id).await?;
        let current = self.engine.key_at(&desc, None, AWSCURRENT).await?;
        let account = current.client_email().to_string();
        let key_ids = match target {
            RevokeTarget::KeyId(id) if id == current.private_key_id() => {
                return Err(RotationError::RefuseCurrent { key_id: id.clone(), arn: desc.arn });
            }
            RevokeTarget::KeyId(id) => vec![id.clone()],
            RevokeTarget::Previous => {
                if desc.version_with(AWSPREVIOUS).is_none() {
                    return Err(RotationError::NothingToRevoke(format!(
                        "secret {} has no AWSPREVIOUS version",
                        desc.arn
                    )));
                }
                let previous = self.engine.key_at(&desc, None, AWSPREVIOUS).await?;
                if previous.private_key_id() == current.private_key_id() {
                    return Err(RotationError::RefuseCurrent {
                        key_id: previous.private_key_id().into(),
                        arn: desc.arn,
                    });
                }
                vec![previous.private_key_id().to_string()]
            }
            RevokeTarget::Orphans => {
                let protected = self.engine.protected_keys(&desc, &current).await;
                let history = self.engine.history(&desc.arn, &account).await?;
                let iam = self.engine.iam_client(&current).await?;
                let held = iam.list_keys(&account).await?;
                held.into_iter()
                    .map(|k| k.id)
                    .filter(|id| history.contains_key(id) && !protected.contains(id))
                    .collect()
            }
        };
        let action = if self.engine.settings().revoke == RevokeMode::Delete { "delete" } else { "disable" };
        Ok(RevokePlan { secret: desc.arn, account, key_ids, action })
    }

    /// Carries out a plan from [`Rotation::revoke_plan`]; returns the keys revoked.
    pub async fn revoke(&self, plan: &RevokePlan) -> Result<Vec<String>, RotationError> {
        let desc = self.engine.store().describe(&plan.secret).await?;
        let current = self.engine.key_at(&desc, None, AWSCURRENT).await?;
        let iam = self.engine.iam_client(&current).await?;
        let mut done = Vec::new();
        for id in &plan.key_ids {
            if id == current.private_key_id() {
                return Err(RotationError::RefuseCurrent { key_id: id.clone(), arn: desc.arn });
            }
            match self.engine.settings().revoke {
                RevokeMode::Delete => iam.delete_key(&plan.account, id).await?,
                RevokeMode::Disable => iam.disable_key(&plan.account, id).await?,
            }
            tracing::info!(key_id = %id, action = plan.action, "revoked a key");
            done.push(id.clone());
        }
        Ok(done)
    }
}
