//! `status`: the secret's versions joined to the account's Google keys, with warnings about
//! what is about to go wrong.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Operator;
use crate::google::iam::GoogleKey;
use crate::rotation::{RotationError, MAX_KEYS};
use crate::store::{AWSCURRENT, AWSPENDING};

/// One Google key of the account, joined to the secret's versions.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// Google's key id.
    pub key_id: String,
    /// When Google created it.
    pub created: Option<DateTime<Utc>>,
    /// When it expires, under the key-expiry org policy.
    pub expires: Option<DateTime<Utc>>,
    /// Disabled at Google.
    pub disabled: bool,
    /// Minted by this secret (recorded in its version history).
    pub managed: bool,
    /// Stages of the version holding it, if a version still holds it.
    pub stages: Vec<String>,
    /// The version holding it, if one does.
    pub version_id: Option<String>,
}

/// One version of the secret.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    /// Secrets Manager's version id.
    pub version_id: String,
    /// Its staging labels.
    pub stages: Vec<String>,
    /// The Google key it holds, if it parses as one.
    pub key_id: Option<String>,
    /// When the version was created.
    pub created: Option<DateTime<Utc>>,
}

/// Something about to go wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// The account is close to Google's key limit.
    NearKeyLimit {
        /// Keys it holds.
        held: usize,
        /// Google's limit (10).
        limit: usize,
    },
    /// A key expires (org policy) before the next scheduled rotation.
    ExpiresBeforeNextRotation {
        /// The key.
        key_id: String,
        /// When it expires.
        expires: DateTime<Utc>,
        /// When the next rotation is due.
        next_rotation: DateTime<Utc>,
    },
    /// A version has held AWSPENDING for a while: a rotation stopped half way.
    StuckPending {
        /// The pending version.
        version_id: String,
    },
    /// The account holds keys this secret did not mint.
    UnmanagedKeys {
        /// Their ids.
        key_ids: Vec<String>,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NearKeyLimit { held, limit } => write!(
                f,
                "the account holds {held} of Google's {limit} keys; a rotation needs a free place \
                 (`vertex-broker revoke --orphans`, or delete keys this secret did not mint)"
            ),
            Warning::ExpiresBeforeNextRotation { key_id, expires, next_rotation } => write!(
                f,
                "key {key_id} expires {expires} (org policy iam.serviceAccountKeyExpiryHours), before the \
                 next rotation {next_rotation}: rotate more often or now (`vertex-broker rotate`)"
            ),
            Warning::StuckPending { version_id } => write!(
                f,
                "a rotation is stuck: version {version_id} holds AWSPENDING; finish it with \
                 `vertex-broker rotate --local` or read the rotation function's logs"
            ),
            Warning::UnmanagedKeys { key_ids } => write!(
                f,
                "{} key(s) were not minted by this secret ({}); rotation never touches them",
                key_ids.len(),
                key_ids.join(", ")
            ),
        }
    }
}

/// A secret and the Google keys of its account, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct SecretStatus {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// The account of its AWSCURRENT key.
    pub account: String,
    /// Whether Secrets Manager rotates it.
    pub rotation_enabled: bool,
    /// The rotation function, if one is set.
    pub rotation_lambda_arn: Option<String>,
    /// The rotation schedule, as an expression or "every N days".
    pub schedule: Option<String>,
    /// When it last rotated.
    pub last_rotated: Option<DateTime<Utc>>,
    /// When it rotates next.
    pub next_rotation: Option<DateTime<Utc>>,
    /// Its versions, labelled or not.
    pub versions: Vec<VersionStatus>,
    /// The account's keys at Google.
    pub keys: Vec<KeyStatus>,
    /// What is about to go wrong.
    pub warnings: Vec<Warning>,
}

impl Operator {
    /// The secret's versions joined to the account's Google keys, with warnings.
    pub async fn status(&self, secret_id: &str) -> Result<SecretStatus, RotationError> {
        let desc = self.engine.store().describe(secret_id).await?;
        let current = self.engine.key_at(&desc, None, AWSCURRENT).await?;
        let account = current.client_email().to_string();
        let iam = self.engine.iam_client(&current).await?;
        let google_keys = iam.list_keys(&account).await?;
        let versions = self.engine.version_keys(&desc.arn).await?;

        let version_rows: Vec<VersionStatus> = versions
            .iter()
            .map(|(v, holder)| VersionStatus {
                version_id: v.version_id.clone(),
                stages: v.stages.clone(),
                key_id: holder.as_ref().map(|(_, id)| id.clone()),
                created: v.created,
            })
            .collect();
        let minted: HashSet<&str> = versions
            .iter()
            .filter_map(|(_, h)| h.as_ref().filter(|(e, _)| *e == account).map(|(_, id)| id.as_str()))
            .collect();
        let key_rows: Vec<KeyStatus> = google_keys
            .iter()
            .map(|k: &GoogleKey| {
                let holder =
                    version_rows.iter().find(|v| v.key_id.as_deref() == Some(k.id.as_str()) && !v.stages.is_empty());
                KeyStatus {
                    key_id: k.id.clone(),
                    created: k.valid_after,
                    expires: k.valid_before,
                    disabled: k.disabled,
                    managed: minted.contains(k.id.as_str()),
                    stages: holder.map(|v| v.stages.clone()).unwrap_or_default(),
                    version_id: holder.map(|v| v.version_id.clone()),
                }
            })
            .collect();

        let next_rotation = desc.next_rotation.or_else(|| {
            let days = desc.rotation_days?;
            Some(desc.last_rotated? + chrono::Duration::days(days))
        });
        let mut warnings = Vec::new();
        if key_rows.len() >= MAX_KEYS - 2 {
            warnings.push(Warning::NearKeyLimit { held: key_rows.len(), limit: MAX_KEYS });
        }
        if let (Some(next), Some(k)) = (next_rotation, key_rows.iter().find(|k| k.key_id == current.private_key_id())) {
            if let Some(expires) = k.expires.filter(|e| *e < next) {
                warnings.push(Warning::ExpiresBeforeNextRotation {
                    key_id: k.key_id.clone(),
                    expires,
                    next_rotation: next,
                });
            }
        }
        if let Some(pending) = desc.version_with(AWSPENDING).filter(|p| Some(*p) != desc.version_with(AWSCURRENT)) {
            warnings.push(Warning::StuckPending { version_id: pending.to_string() });
        }
        let unmanaged: Vec<String> = key_rows.iter().filter(|k| !k.managed).map(|k| k.key_id.clone()).collect();
        if !unmanaged.is_empty() {
            warnings.push(Warning::UnmanagedKeys { key_ids: unmanaged });
        }
        Ok(SecretStatus {
            arn: desc.arn.clone(),
            name: desc.name.clone(),
            account,
            rotation_enabled: desc.rotation_enabled,
            rotation_lambda_arn: desc.rotation_lambda_arn.clone(),
            schedule: desc.rotation_schedule.clone().or(desc.rotation_days.map(|d| format!("every {d} days"))),
            last_rotated: desc.last_rotated,
            next_rotation,
            versions: version_rows,
            keys: key_rows,
            warnings,
        })
    }
}
