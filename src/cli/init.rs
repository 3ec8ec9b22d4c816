//! `vertex-broker init`: store the first key, from a key file or minted for a service account
//! with an admin key. An existing secret gets the key as a new AWSCURRENT version.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::{read_file, Failure, Printer};
use crate::config::Config;
use crate::key::ServiceAccountKey;
use crate::operator::Operator;
use crate::rotation::RotationSettings;
use crate::store::{SecretStore, SecretsManagerStore, AWSCURRENT};

/// `vertex-broker init`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  vertex-broker init prod/vertex-key --key-file key.json\n  \
    vertex-broker init prod/vertex-key --service-account app@proj.iam.gserviceaccount.com --admin-key-file admin.json")]
pub struct Args {
    /// The secret's name or ARN in Secrets Manager (created when it does not exist).
    secret: String,
    #[command(flatten)]
    source: FirstKey,
    /// Admin key file for --service-account (default: VERTEX_BROKER_ADMIN_SECRET_ID's key).
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct FirstKey {
    /// A Google service-account JSON key file.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Mint the first key of this service account (needs an admin key).
    #[arg(long)]
    service_account: Option<String>,
}

/// Stores a first key in the secret.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let key = match (&args.source.key_file, &args.source.service_account) {
        (Some(path), _) => ServiceAccountKey::parse(&read_file(path)?)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        (None, Some(account)) => {
            let admin_text =
                match (&args.admin_key_file, &config.admin_secret_id) {
                    (Some(path), _) => read_file(path)?,
                    (None, Some(id)) => store.get(id, None, Some(AWSCURRENT)).await?.value.to_string(),
                    (None, None) => return Err(Failure::usage(
                        "--service-account needs an admin key: --admin-key-file FILE or VERTEX_BROKER_ADMIN_SECRET_ID",
                    )),
                };
            let admin = ServiceAccountKey::parse(&admin_text).map_err(|e| Failure::usage(format!("admin key: {e}")))?;
            Operator::new(store.clone(), RotationSettings::from(config)).mint_first_key(&admin, account).await?
        }
        (None, None) => unreachable!("clap requires one source"),
    };
    let (arn, version, created) = match store.describe(&args.secret).await {
        Ok(desc) => {
            let version = uuid::Uuid::new_v4().to_string();
            store.put(&desc.arn, &version, key.raw(), &[AWSCURRENT], None).await?;
            (desc.arn, Some(version), false)
        }
        Err(e) if e.is_not_found() => {
            let arn =
                store.create(&args.secret, key.raw(), "Google service-account key, rotated by vertex-broker").await?;
            (arn, None, true)
        }
        Err(e) => return Err(e.into()),
    };
    let text = if created {
        format!("created {arn} holding {key}")
    } else {
        format!(
            "stored {key} in {arn} as the new AWSCURRENT version {}; the previous key stays AWSPREVIOUS",
            version.as_deref().unwrap_or_default()
        )
    };
    out.result(
        text,
        json!({"secret": arn, "created": created, "version": version,
            "account": key.client_email(), "key_id": key.private_key_id()}),
    );
    Ok(())
}
