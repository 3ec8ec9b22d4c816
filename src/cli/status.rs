//! `vertex-broker status`: the secret's versions and stages joined to the account's Google
//! keys, with warnings; for a token secret (central minting), its tokens and versions.

use super::{Failure, Printer};
use crate::config::Config;
use crate::minter::stored::StoredTokens;
use crate::operator::{Operator, SecretStatus};
use crate::rotation::RotationSettings;
use crate::store::{SecretStore, SecretsManagerStore, AWSCURRENT};

/// `vertex-broker status`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  vertex-broker status prod/vertex-key --output json")]
pub struct Args {
    /// The secret's name or ARN in Secrets Manager (a key secret, or a token secret).
    secret: String,
}

/// Prints the secret's versions, the account's keys and warnings.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let store = std::sync::Arc::new(SecretsManagerStore::from_env().await);
    let current = store.get(&args.secret, None, Some(AWSCURRENT)).await.ok();
    if let Some(held) = current.and_then(|v| StoredTokens::parse(&v.value).ok()) {
        return super::token_status::run(store.as_ref(), &args.secret, &held, out).await;
    }
    let status = Operator::new(store, RotationSettings::from(config)).status(&args.secret).await?;
    out.result(text(&status), serde_json::to_value(&status).unwrap_or_default());
    Ok(())
}

fn text(s: &SecretStatus) -> String {
    use std::fmt::Write;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string());
    let mut o = String::new();
    let _ = writeln!(o, "secret    {}", s.arn);
    let _ = writeln!(o, "account   {}", s.account);
    let _ = writeln!(
        o,
        "rotation  {}{}; last {}; next {}\n",
        if s.rotation_enabled { "enabled" } else { "disabled" },
        s.schedule.as_deref().map(|d| format!(", {d}")).unwrap_or_default(),
        time(s.last_rotated).unwrap_or_else(|| "never".into()),
        time(s.next_rotation).unwrap_or_else(|| "not scheduled".into()),
    );
    let _ = writeln!(o, "{:<42} {:<17} {:<17} {:<9} SECRET", "GOOGLE KEY", "CREATED", "EXPIRES", "STATE");
    for k in &s.keys {
        let secret = if !k.managed {
            "not minted by this secret".to_string()
        } else if k.stages.is_empty() {
            "aged out (revoked next rotation)".to_string()
        } else {
            k.stages.join(",")
        };
        let _ = writeln!(
            o,
            "{:<42} {:<17} {:<17} {:<9} {secret}",
            k.key_id,
            time(k.created).unwrap_or_else(|| "-".into()),
            time(k.expires).unwrap_or_else(|| "never".into()),
            if k.disabled { "disabled" } else { "enabled" },
        );
    }
    if s.warnings.is_empty() {
        o.push_str("\nno warnings");
    } else {
        o.push_str("\nwarnings:");
        for w in &s.warnings {
            let _ = write!(o, "\n  ! {w}");
        }
    }
    o
}
