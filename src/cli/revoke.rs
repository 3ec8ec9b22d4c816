//! `vertex-broker revoke`: delete (or disable) keys, never the AWSCURRENT one; asks first
//! unless `--yes`.

use std::io::IsTerminal;
use std::sync::Arc;

use serde_json::json;

use super::{Failure, Printer};
use crate::config::Config;
use crate::operator::{Operator, RevokeTarget};
use crate::rotation::RotationSettings;
use crate::store::SecretsManagerStore;

/// `vertex-broker revoke`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  vertex-broker revoke prod/vertex-key --previous\n  \
    vertex-broker revoke prod/vertex-key --orphans --yes")]
pub struct Args {
    /// The secret's name or ARN in Secrets Manager.
    secret: String,
    #[command(flatten)]
    which: Revoked,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Revoked {
    /// One key by id.
    #[arg(long)]
    key_id: Option<String>,
    /// The AWSPREVIOUS key.
    #[arg(long)]
    previous: bool,
    /// Keys this secret minted that are neither AWSCURRENT nor AWSPREVIOUS.
    #[arg(long)]
    orphans: bool,
}

/// Shows the plan, asks unless `--yes`, then revokes.
pub async fn run(args: Args, config: &Config, out: Printer) -> Result<(), Failure> {
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let operator = Operator::new(store, RotationSettings::from(config));
    let target = match (args.which.key_id, args.which.previous) {
        (Some(id), _) => RevokeTarget::KeyId(id),
        (None, true) => RevokeTarget::Previous,
        _ => RevokeTarget::Orphans,
    };
    let plan = operator.revoke_plan(&args.secret, &target).await?;
    if plan.key_ids.is_empty() {
        out.result("nothing to revoke", json!({"revoked": [], "plan": plan}));
        return Ok(());
    }
    if !args.yes {
        let what =
            format!("{} {} key(s) of {} ({})", plan.action, plan.key_ids.len(), plan.account, plan.key_ids.join(", "));
        confirm(&what)?;
    }
    let done = operator.revoke(&plan).await?;
    let text: Vec<String> = done.iter().map(|id| format!("{}d key {id} of {}", plan.action, plan.account)).collect();
    out.result(text.join("\n"), json!({"revoked": done, "action": plan.action, "account": plan.account}));
    Ok(())
}

/// Asks on the terminal; off a terminal, `--yes` is the only way to confirm.
fn confirm(what: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!("would {what}; not on a terminal, so pass --yes to confirm")));
    }
    eprint!("{what}? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::failed("not confirmed; nothing revoked"))
    }
}
