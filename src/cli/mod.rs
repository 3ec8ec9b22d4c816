//! The operator CLI, one file per command: each holds its clap arguments and a `run`. The
//! binary (`src/main.rs`) only parses and dispatches. Everything a command prints goes through
//! [`Printer`] (text for people, `--output json` for scripts); every failure is a [`Failure`]
//! whose [`ExitCode`] says what kind it was.

pub mod dev;
pub mod doctor;
pub mod health;
pub mod init;
pub mod mint;
pub mod revoke;
pub mod rotate;
pub mod serve;
pub mod status;
pub mod token;
mod token_status;

mod exit;
mod output;

pub use exit::{ExitCode, Failure};
pub use output::{Format, Printer};

use std::sync::Arc;

use crate::broker::BrokerSettings;
use crate::config::Config;
use crate::google::federation::AwsIdentity;
use crate::store::SecretsManagerStore;

/// The AWS side as the operator's environment gives it: the SDK's provider chain (environment,
/// profile, SSO, instance role), a Secrets Manager store over it, and the broker's settings
/// with that AWS identity for federation.
pub struct AwsSide {
    /// The AWS SDK's configuration (credentials, region, endpoint).
    pub sdk: aws_config::SdkConfig,
    /// Secrets Manager through that configuration.
    pub store: Arc<SecretsManagerStore>,
}

impl AwsSide {
    /// Loads aws-config's provider chain, as the AWS CLI would.
    pub async fn load() -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let store = Arc::new(SecretsManagerStore::from_config(&sdk));
        Self { sdk, store }
    }

    /// The broker's settings from `config`, federating as this AWS identity when configured.
    pub fn broker_settings(&self, config: &Config) -> BrokerSettings {
        let mut settings = BrokerSettings::from(config);
        settings.aws = AwsIdentity::from_sdk_config(&self.sdk);
        settings
    }
}

/// A file the operator named, or a usage error naming it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}
