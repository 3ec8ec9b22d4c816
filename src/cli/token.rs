//! `vertex-broker token`: one fresh access token (or ID token with `--audience`) from the
//! configured source, minted the way the broker mints it, like `gcloud auth print-access-token`.

use serde_json::json;

use super::{AwsSide, ExitCode, Failure, Printer};
use crate::broker::Broker;
use crate::config::{check_source, Config};
use crate::google::scopes::{Audience, ScopeKey};
use crate::store::SecretStore;

/// `vertex-broker token`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  vertex-broker token --secret prod/vertex-key\n  \
    vertex-broker token --secret prod/vertex-key --audience https://my-service.run.app\n  \
    VERTEX_BROKER_CREDENTIAL_CONFIG=clientLibraryConfig.json vertex-broker token")]
pub struct Args {
    /// Secret id or ARN (default: VERTEX_BROKER_CREDENTIAL_CONFIG, else the first of VERTEX_BROKER_SECRET_ID).
    #[arg(long)]
    secret: Option<String>,
    /// Scopes, comma separated (default: VERTEX_BROKER_SCOPES).
    #[arg(long)]
    scopes: Option<String>,
    /// Mint an ID token for this audience instead.
    #[arg(long)]
    audience: Option<String>,
}

/// Mints and prints one token, as the broker would.
pub async fn run(args: Args, mut config: Config, out: Printer) -> Result<(), Failure> {
    if let Some(s) = args.secret {
        // A secret named on the command line is the source, whatever the environment says.
        config.secret_ids = vec![s];
        config.credential_config = None;
        config.token_secret_id = None;
    }
    check_source(&config.secret_ids, config.credential_config.as_ref(), config.token_secret_id.as_deref())
        .map_err(|e| Failure::usage(format!("{e}; or pass --secret SECRET")))?;
    let aws = AwsSide::load().await;
    if let Some(secret) = config.secret_ids.first().filter(|_| config.credential_config.is_none()) {
        // Classifies a missing secret (exit 3) apart from other AWS errors (exit 4).
        aws.store.describe(secret).await?;
    }
    let broker =
        Broker::new(&aws.broker_settings(&config), aws.store.clone()).map_err(|e| Failure::usage(e.to_string()))?;
    let account = broker.accounts()[0].clone();
    let minted = match &args.audience {
        Some(aud) => account.id_token(&Audience::parse(aud).map_err(|e| Failure::usage(e.to_string()))?).await,
        None => {
            let scopes = match &args.scopes {
                Some(s) => ScopeKey::parse(s).map_err(|e| Failure::usage(e.to_string()))?,
                None => broker.default_scopes().clone(),
            };
            account.access_token(&scopes).await
        }
    }
    .map_err(|e| Failure::new(ExitCode::Google, e.to_string()))?;
    let kind = if args.audience.is_some() { "id_token" } else { "access_token" };
    out.result(
        minted.bearer.expose(),
        json!({
            kind: minted.bearer.expose(),
            "expires_at": minted.expires_at.to_rfc3339(),
            "account": account.served_email().await.ok().flatten(),
        }),
    );
    Ok(())
}
