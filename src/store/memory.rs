//! An in-memory `SecretStore` with Secrets Manager's staging-label rules, for `dev` and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::*;

struct Version {
    id: String,
    value: Option<Zeroizing<String>>,
    stages: Vec<String>,
    created: DateTime<Utc>,
}

struct Secret {
    arn: String,
    name: String,
    rotation_enabled: bool,
    versions: Vec<Version>,
}

/// Secrets held in this process only.
#[derive(Default)]
pub struct MemoryStore {
    secrets: Mutex<HashMap<String, Secret>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a secret whose first version (AWSCURRENT) is `value`, rotation enabled.
    pub fn create(&self, name: &str, value: &str) -> String {
        let arn = format!("arn:aws:secretsmanager:local:000000000000:secret:{name}");
        let version = Version {
            id: uuid::Uuid::new_v4().to_string(),
            value: Some(Zeroizing::new(value.to_string())),
            stages: vec![AWSCURRENT.to_string()],
            created: Utc::now(),
        };
        let secret =
            Secret { arn: arn.clone(), name: name.to_string(), rotation_enabled: true, versions: vec![version] };
        self.lock().insert(name.to_string(), secret);
        arn
    }

    /// Turns rotation on or off, as configuring (or removing) a rotation function does.
    pub fn set_rotation_enabled(&self, name: &str, enabled: bool) {
        if let Some(s) = self.lock().get_mut(name) {
            s.rotation_enabled = enabled;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Secret>> {
        crate::lock(&self.secrets)
    }
}

fn find<'a>(
    secrets: &'a mut HashMap<String, Secret>,
    id: &str,
    operation: &'static str,
) -> Result<&'a mut Secret, StoreError> {
    secrets.values_mut().find(|s| s.name == id || s.arn == id).ok_or_else(|| StoreError::NotFound {
        operation,
        what: format!("secret {id}"),
        message: "Secrets Manager can't find the specified secret.".into(),
    })
}

/// Puts `stage` on `version` alone; moving AWSCURRENT hands AWSPREVIOUS to the old holder.
fn move_stage(secret: &mut Secret, stage: &str, version: &str) {
    let old = secret.versions.iter().find(|v| v.stages.iter().any(|s| s == stage)).map(|v| v.id.clone());
    if old.as_deref() == Some(version) {
        return;
    }
    for v in &mut secret.versions {
        v.stages.retain(|s| s != stage);
    }
    if let Some(v) = secret.versions.iter_mut().find(|v| v.id == version) {
        v.stages.push(stage.to_string());
    }
    if stage == AWSCURRENT {
        if let Some(old) = old {
            move_stage(secret, AWSPREVIOUS, &old);
        }
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "DescribeSecret")?;
        let versions: BTreeMap<String, Vec<String>> =
            s.versions.iter().filter(|v| !v.stages.is_empty()).map(|v| (v.id.clone(), v.stages.clone())).collect();
        Ok(SecretDescription {
            arn: s.arn.clone(),
            name: s.name.clone(),
            rotation_enabled: s.rotation_enabled,
            versions,
            ..SecretDescription::default()
        })
    }

    async fn get(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "GetSecretValue")?;
        let stage = if version_id.is_none() { Some(stage.unwrap_or(AWSCURRENT)) } else { stage };
        let found = s.versions.iter().find(|v| {
            version_id.is_none_or(|id| v.id == id) && stage.is_none_or(|st| v.stages.iter().any(|x| x == st))
        });
        match found {
            Some(Version { value: Some(value), id, stages, .. }) => {
                Ok(SecretValue { version_id: id.clone(), stages: stages.clone(), value: value.clone() })
            }
            _ => Err(StoreError::NotFound {
                operation: "GetSecretValue",
                what: format!("version {:?} stage {:?} of {secret_id}", version_id, stage),
                message: "Secrets Manager can't find the specified secret value.".into(),
            }),
        }
    }

    async fn put(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        stages: &[&str],
        _rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "PutSecretValue")?;
        match s.versions.iter_mut().find(|v| v.id == token) {
            Some(v) => match &v.value {
                Some(existing) if existing.as_str() != value => {
                    return Err(StoreError::Refused {
                        operation: "PutSecretValue",
                        code: "ResourceExistsException".into(),
                        message: format!("version {token} already holds a different value"),
                    })
                }
                _ => v.value = Some(Zeroizing::new(value.to_string())),
            },
            None => s.versions.push(Version {
                id: token.to_string(),
                value: Some(Zeroizing::new(value.to_string())),
                stages: vec![],
                created: Utc::now(),
            }),
        }
        let stages: Vec<&str> = if stages.is_empty() { vec![AWSCURRENT] } else { stages.to_vec() };
        for stage in stages {
            move_stage(s, stage, token);
        }
        Ok(())
    }

    async fn update_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "UpdateSecretVersionStage")?;
        let holder = s.versions.iter().find(|v| v.stages.iter().any(|x| x == stage)).map(|v| v.id.clone());
        let refuse = |message: String| StoreError::Refused {
            operation: "UpdateSecretVersionStage",
            code: "InvalidParameterException".into(),
            message,
        };
        if let Some(from) = remove_from {
            if holder.as_deref() != Some(from) {
                return Err(refuse(format!("{stage} is not attached to version {from}")));
            }
        }
        match move_to {
            Some(to) => {
                if !s.versions.iter().any(|v| v.id == to) {
                    return Err(refuse(format!("version {to} does not exist")));
                }
                if holder.is_some() && holder.as_deref() != Some(to) && remove_from.is_none() {
                    return Err(refuse(format!(
                        "{stage} is attached to {}; name it in RemoveFromVersionId",
                        holder.unwrap_or_default()
                    )));
                }
                move_stage(s, stage, to);
            }
            None => {
                if stage == AWSCURRENT {
                    return Err(refuse("AWSCURRENT cannot be removed, only moved".into()));
                }
                for v in &mut s.versions {
                    v.stages.retain(|x| x != stage);
                }
            }
        }
        Ok(())
    }

    async fn create(&self, name: &str, value: &str, _description: &str) -> Result<String, StoreError> {
        if self.lock().contains_key(name) {
            return Err(StoreError::Refused {
                operation: "CreateSecret",
                code: "ResourceExistsException".into(),
                message: format!("the secret {name} already exists"),
            });
        }
        Ok(MemoryStore::create(self, name, value))
    }

    /// Secrets Manager's part of RotateSecret: a new version holding AWSPENDING and no value. No
    /// rotation function is invoked here; whoever holds the store runs the steps with its id.
    async fn start_rotation(&self, secret_id: &str) -> Result<String, StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "RotateSecret")?;
        let pending = s
            .versions
            .iter()
            .any(|v| v.stages.iter().any(|x| x == AWSPENDING) && !v.stages.iter().any(|x| x == AWSCURRENT));
        if pending {
            return Err(StoreError::Refused {
                operation: "RotateSecret",
                code: "InvalidRequestException".into(),
                message: "A previous rotation isn't complete. That rotation will be reattempted.".into(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        s.versions.push(Version { id: id.clone(), value: None, stages: vec![AWSPENDING.into()], created: Utc::now() });
        Ok(id)
    }

    async fn list_versions(&self, secret_id: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let mut secrets = self.lock();
        let s = find(&mut secrets, secret_id, "ListSecretVersionIds")?;
        Ok(s.versions
            .iter()
            .map(|v| VersionInfo { version_id: v.id.clone(), stages: v.stages.clone(), created: Some(v.created) })
            .collect())
    }
}
