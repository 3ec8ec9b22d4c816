//! `SecretStore` on AWS Secrets Manager (aws-sdk-secretsmanager). Endpoints follow the SDK's own
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SECRETS_MANAGER`, which is how tests reach moto.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::RotationRulesType;
use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::*;

/// Secrets Manager through the AWS SDK.
#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    /// The store over a Secrets Manager client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client from the SDK's default chain (environment, profile, Lambda role).
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config))
    }

    /// A client from an already loaded AWS configuration.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// A client from what Lambda puts in every function's (and extension's) environment: the
    /// execution role's keys and session token, and AWS_REGION; endpoint overrides as the SDK
    /// reads them. No provider chain (profiles, SSO, IMDS, STS) is linked or probed, which
    /// keeps the layer binary small and its start fast.
    pub fn from_lambda(c: &crate::config::LambdaCredentials) -> Self {
        use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
        let credentials = Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "lambda-environment",
        );
        let mut config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(c.region.clone()))
            .credentials_provider(credentials);
        if let Some(endpoint) = crate::config::aws_endpoint("AWS_ENDPOINT_URL_SECRETS_MANAGER") {
            config = config.endpoint_url(endpoint);
        }
        Self::new(Client::from_conf(config.build()))
    }

    /// The client, for the calls the store does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn to_chrono(t: Option<&aws_sdk_secretsmanager::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

const NO_REGION: &str = "no AWS region is configured: set AWS_REGION (for example AWS_REGION=us-east-1), \
    or a region in your AWS profile";

/// Maps an SDK error to a `StoreError` by its AWS error code; never includes request bodies.
fn map<E, R>(operation: &'static str, what: String, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if matches!(err, SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_))
        && DisplayErrorContext(&err).to_string().contains("Missing Region")
    {
        return StoreError::Unavailable { operation, message: NO_REGION.into() };
    }
    if let SdkError::DispatchFailure(d) = &err {
        let detail = DisplayErrorContext(&err).to_string();
        let message = if detail.contains("credentials") {
            "no usable AWS credentials (looked in the environment, profiles, SSO and the instance role): \
             set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is attached"
                .to_string()
        } else if d.is_timeout() || d.is_io() {
            "could not reach Secrets Manager (network or endpoint); check AWS_REGION and AWS_ENDPOINT_URL".to_string()
        } else {
            format!("the request could not be sent: {}", detail.chars().take(300).collect::<String>())
        };
        return StoreError::Unavailable { operation, message };
    }
    let message = err.message().map(str::to_string).unwrap_or_else(|| DisplayErrorContext(&err).to_string());
    match err.code() {
        Some("ResourceNotFoundException") => StoreError::NotFound { operation, what, message },
        Some(code) => StoreError::Refused { operation, code: code.to_string(), message },
        None => StoreError::Unavailable { operation, message },
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| map("DescribeSecret", format!("secret {secret_id}"), e))?;
        let rules: Option<&RotationRulesType> = out.rotation_rules();
        Ok(SecretDescription {
            arn: out.arn().unwrap_or(secret_id).to_string(),
            name: out.name().unwrap_or(secret_id).to_string(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out.version_ids_to_stages().cloned().unwrap_or_default().into_iter().collect(),
            rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_string),
            rotation_days: rules.and_then(|r| r.automatically_after_days()),
            rotation_schedule: rules.and_then(|r| r.schedule_expression()).map(str::to_string),
            last_rotated: to_chrono(out.last_rotated_date()),
            next_rotation: to_chrono(out.next_rotation_date()),
        })
    }

    async fn get(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, StoreError> {
        // moto may answer a stage-less, version-less read with a stale version: always name one.
        let stage = if version_id.is_none() { Some(stage.unwrap_or(AWSCURRENT)) } else { stage };
        let what = format!("version {} stage {} of {secret_id}", version_id.unwrap_or("-"), stage.unwrap_or("-"));
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_string))
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await
            .map_err(|e| map("GetSecretValue", what.clone(), e))?;
        // A version created by RotateSecret holds no value yet (AWS: not found; moto: empty).
        let value = out.secret_string().filter(|s| !s.is_empty()).ok_or_else(|| StoreError::NotFound {
            operation: "GetSecretValue",
            what,
            message: "the version holds no value yet".into(),
        })?;
        Ok(SecretValue {
            version_id: out.version_id().unwrap_or_default().to_string(),
            stages: out.version_stages().to_vec(),
            value: Zeroizing::new(value.to_string()),
        })
    }

    async fn put(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        stages: &[&str],
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value)
            .set_rotation_token(rotation_token.map(str::to_string));
        for stage in stages {
            req = req.version_stages(*stage);
        }
        req.send().await.map_err(|e| map("PutSecretValue", format!("secret {secret_id}"), e))?;
        Ok(())
    }

    async fn update_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), StoreError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(move_to.map(str::to_string))
            .set_remove_from_version_id(remove_from.map(str::to_string))
            .send()
            .await
            .map_err(|e| map("UpdateSecretVersionStage", format!("secret {secret_id}"), e))?;
        Ok(())
    }

    async fn create(&self, name: &str, value: &str, description: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .create_secret()
            .name(name)
            .description(description)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| map("CreateSecret", format!("secret {name}"), e))?;
        Ok(out.arn().unwrap_or(name).to_string())
    }

    async fn start_rotation(&self, secret_id: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .rotate_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| map("RotateSecret", format!("secret {secret_id}"), e))?;
        Ok(out.version_id().unwrap_or_default().to_string())
    }

    async fn list_versions(&self, secret_id: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let mut versions = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| map("ListSecretVersionIds", format!("secret {secret_id}"), e))?;
            for v in out.versions() {
                versions.push(VersionInfo {
                    version_id: v.version_id().unwrap_or_default().to_string(),
                    stages: v.version_stages().to_vec(),
                    created: to_chrono(v.created_date()),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(versions),
            }
        }
    }
}
