//! `vertex-broker status TOKEN_SECRET`: a token secret's versions and the life left on each token
//! it holds now (central minting), instead of a key secret's keys.

use chrono::Utc;
use serde_json::json;

use super::{Failure, Printer};
use crate::minter::stored::StoredTokens;
use crate::store::{SecretStore, VersionInfo};

/// Prints the token secret `secret`, whose AWSCURRENT value is `held`.
pub async fn run(store: &dyn SecretStore, secret: &str, held: &StoredTokens, out: Printer) -> Result<(), Failure> {
    let versions = store.list_versions(secret).await?;
    let now = Utc::now();
    let tokens: Vec<(String, &'static str, i64)> = held
        .access_tokens
        .iter()
        .map(|t| (t.slot.to_string(), "access", t.life_left(now)))
        .chain(held.id_tokens.iter().map(|t| (t.slot.as_str().to_string(), "id", t.life_left(now))))
        .collect();
    out.result(
        text(secret, held, &versions, &tokens),
        json!({
            "token_secret": secret,
            "written_at": held.written_at.to_rfc3339(),
            "email": held.email,
            "project": held.project,
            "versions": versions.iter().map(|v| json!({
                "version_id": v.version_id,
                "stages": v.stages,
                "created": v.created.map(|c| c.to_rfc3339()),
            })).collect::<Vec<_>>(),
            "tokens": tokens.iter().map(|(slot, kind, left)| json!({"for": slot, "kind": kind, "life_left_s": left}))
                .collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

fn text(secret: &str, held: &StoredTokens, versions: &[VersionInfo], tokens: &[(String, &str, i64)]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "token secret  {secret} (central minting)");
    let _ = writeln!(o, "account       {}", held.email.as_deref().unwrap_or("a federated principal"));
    let _ = writeln!(o, "written       {} s ago by the minter\n", held.age(Utc::now()));
    let _ = writeln!(o, "{:<8} {:>12}  FOR", "TOKEN", "LIFE LEFT");
    for (slot, kind, left) in tokens {
        let left = if *left > 0 { format!("{left} s") } else { "expired".to_string() };
        let _ = writeln!(o, "{kind:<8} {left:>12}  {slot}");
    }
    let _ = writeln!(o, "\n{:<38} {:<17} STAGES", "VERSION", "CREATED");
    for v in versions {
        let created = v.created.map(|c| c.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(o, "{:<38} {created:<17} {}", v.version_id, v.stages.join(","));
    }
    if tokens.iter().any(|(_, _, left)| *left < 1200) {
        o.push_str("\nwarning: a token has less than 20 minutes left: the minter is not renewing it");
    }
    o.trim_end().to_string()
}
