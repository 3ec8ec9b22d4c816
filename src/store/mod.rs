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

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// What DescribeSecret says about a secret.
#[derive(Debug, Clone, Default)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    /// Version id -> its staging labels (only versions that hold a label).
    pub versions: BTreeMap<String, Vec<String>>,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_days: Option<i64>,
    pub rotation_schedule: Option<String>,
    pub last_rotated: Option<DateTime<Utc>>,
    pub next_rotation: Option<DateTime<Utc>>,
}

impl SecretDescription {
    /// The version that holds `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions.iter().find(|(_, s)| s.iter().any(|x| x == stage)).map(|(v, _)| v.as_str())
    }

    pub fn stages_of(&self, version: &str) -> &[String] {
        self.versions.get(version).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One version as ListSecretVersionIds reports it, labelled or not.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created: Option<DateTime<Utc>>,
}

/// A secret value. Debug never shows it; it is zeroized on drop.
pub struct SecretValue {
    pub version_id: String,
    pub stages: Vec<String>,
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
    #[error("{operation}: {what} not found in Secrets Manager ({message})")]
    NotFound { operation: &'static str, what: String, message: String },
    #[error("{operation} refused: {message}")]
    Refused { operation: &'static str, code: String, message: String },
    #[error("{operation} failed: {message}")]
    Unavailable { operation: &'static str, message: String },
}

impl StoreError {
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
