//! `SecretStore`: the one seam for storage. Secrets Manager in production, memory for `dev`
//! and unit tests. Every read names a stage or a version: moto may answer a read that names
//! neither with a stale version.

pub mod memory;
pub mod secrets_manager;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

pub use memory::MemoryStore;
pub use secrets_manager::SecretsManagerStore;

/// The stage of the version in use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The stage of a version being rotated to.
pub const AWSPENDING: &str = "AWSPENDING";
/// The stage of the version used before AWSCURRENT.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// What DescribeSecret says about a secret.
#[derive(Debug, Clone, Default)]
pub struct SecretDescription {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// Whether rotation is turned on.
    pub rotation_enabled: bool,
    /// Version id -> its staging labels (only versions that hold a label).
    pub versions: BTreeMap<String, Vec<String>>,
    /// The rotation function, if one is set.
    pub rotation_lambda_arn: Option<String>,
    /// `AutomaticallyAfterDays`, if the schedule is set that way.
    pub rotation_days: Option<i64>,
    /// `ScheduleExpression`, if the schedule is set that way.
    pub rotation_schedule: Option<String>,
    /// When it last rotated.
    pub last_rotated: Option<DateTime<Utc>>,
    /// When it rotates next.
    pub next_rotation: Option<DateTime<Utc>>,
}

impl SecretDescription {
    /// The version that holds `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions.iter().find(|(_, s)| s.iter().any(|x| x == stage)).map(|(v, _)| v.as_str())
    }

    /// The staging labels of `version` (none if it holds none).
    pub fn stages_of(&self, version: &str) -> &[String] {
        self.versions.get(version).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One version as ListSecretVersionIds reports it, labelled or not.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The version id.
    pub version_id: String,
    /// Its staging labels.
    pub stages: Vec<String>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
}

/// A secret value. Debug never shows it; it is zeroized on drop.
pub struct SecretValue {
    /// The version id.
    pub version_id: String,
    /// Its staging labels.
    pub stages: Vec<String>,
    /// The value, zeroized on drop.
    pub value: Zeroizing<String>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("version_id", &self.version_id)
            .field("stages", &self.stages)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    /// The secret or version does not exist.
    #[error("{operation}: {what} not found in Secrets Manager ({message})")]
    NotFound {
        /// The call.
        operation: &'static str,
        /// What was asked for.
        what: String,
        /// AWS's message.
        message: String,
    },
    /// AWS refused the call (permissions, state, validation).
    #[error("{operation} refused: {message}")]
    Refused {
        /// The call.
        operation: &'static str,
        /// AWS's error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The call failed in transit or AWS failed it (timeouts, 5xx).
    #[error("{operation} failed: {message}")]
    Unavailable {
        /// The call.
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    /// The secret or version does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// Storage for the key file, with Secrets Manager's versions and staging labels.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// DescribeSecret.
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError>;

    /// GetSecretValue for a stage, or a version (optionally also checked against a stage).
    /// A version that exists but holds no value yet is NotFound.
    async fn get(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, StoreError>;

    /// PutSecretValue with `token` as the version id and `stages` as its labels. Idempotent for
    /// the same token and value.
    async fn put(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        stages: &[&str],
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError>;

    /// UpdateSecretVersionStage: move `stage` to `move_to` and/or remove it from `remove_from`.
    /// Moving AWSCURRENT gives AWSPREVIOUS to the version that held it.
    async fn update_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), StoreError>;

    /// ListSecretVersionIds, including versions without labels.
    async fn list_versions(&self, secret_id: &str) -> Result<Vec<VersionInfo>, StoreError>;

    /// CreateSecret with `value` as its first (AWSCURRENT) version; returns the ARN.
    async fn create(&self, name: &str, value: &str, description: &str) -> Result<String, StoreError>;

    /// RotateSecret: start a rotation now. Returns the new version's id, which holds AWSPENDING
    /// (and no value) until the rotation function's steps fill and promote it.
    async fn start_rotation(&self, secret_id: &str) -> Result<String, StoreError>;
}
