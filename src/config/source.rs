//! The token source's variables: the federation configuration (parsed here, once), the account
//! to impersonate, its delegates and the lifetime asked for.

use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, MAX_TOKEN_LIFETIME};
use crate::google::federation::CredentialConfig;
use crate::google::scopes::Audience;
use crate::google::token::DEFAULT_LIFETIME;
use crate::text::split_list;

/// Neither a secret nor a federation configuration: the broker has nothing to mint with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", NoSource::WHAT, NoSource::FIX)]
pub struct NoSource;

impl NoSource {
    /// What is wrong.
    pub const WHAT: &str = "no token source: none of VERTEX_BROKER_SECRET_ID, VERTEX_BROKER_CREDENTIAL_CONFIG and \
                            VERTEX_BROKER_TOKEN_SECRET_ID is set";
    /// What to do.
    pub const FIX: &str = "set VERTEX_BROKER_SECRET_ID to the id or ARN of the Secrets Manager secret that holds \
        the Google service-account key (several, comma separated), or VERTEX_BROKER_CREDENTIAL_CONFIG to the \
        workload identity federation configuration `gcloud iam workload-identity-pools create-cred-config --aws` \
        wrote (no key), or VERTEX_BROKER_TOKEN_SECRET_ID to the token secret the minter writes (central minting)";
}

/// The one check that some token source is configured.
pub fn check_source(
    secret_ids: &[String],
    credential_config: Option<&CredentialConfig>,
    token_secret_id: Option<&str>,
) -> Result<(), NoSource> {
    match (secret_ids, credential_config, token_secret_id) {
        ([], None, None) => Err(NoSource),
        _ => Ok(()),
    }
}

/// `VERTEX_BROKER_AUDIENCES`: the audiences the minter pre-mints ID tokens for.
pub(super) fn audiences<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Vec<Audience>, ConfigError> {
    let Some(value) = vars.get("VERTEX_BROKER_AUDIENCES") else { return Ok(Vec::new()) };
    split_list(&value).iter().map(|a| Audience::parse(a)).collect::<Result<_, _>>().map_err(|e| ConfigError {
        variable: "VERTEX_BROKER_AUDIENCES",
        value,
        expected: format!("audiences, comma separated: {e}"),
    })
}

/// `VERTEX_BROKER_CREDENTIAL_CONFIG`, parsed; inline JSON is not repeated in the error.
pub(super) fn credential_config<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<Option<CredentialConfig>, ConfigError> {
    let Some(value) = vars.get("VERTEX_BROKER_CREDENTIAL_CONFIG") else { return Ok(None) };
    CredentialConfig::load(&value).map(Some).map_err(|e| {
        let shown = if value.trim_start().starts_with('{') { "(inline JSON)".to_string() } else { value.clone() };
        ConfigError { variable: "VERTEX_BROKER_CREDENTIAL_CONFIG", value: shown, expected: e.0 }
    })
}

/// `VERTEX_BROKER_TOKEN_LIFETIME`: whole seconds up to Google's longest.
pub(super) fn token_lifetime<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Duration, ConfigError> {
    let lifetime = vars.duration("VERTEX_BROKER_TOKEN_LIFETIME", DEFAULT_LIFETIME)?;
    if lifetime > MAX_TOKEN_LIFETIME || lifetime.subsec_nanos() != 0 {
        return Err(ConfigError {
            variable: "VERTEX_BROKER_TOKEN_LIFETIME",
            value: vars.get("VERTEX_BROKER_TOKEN_LIFETIME").unwrap_or_default(),
            expected: "whole seconds up to 43200s (above 3600s only where the org policy \
                       constraints/iam.allowServiceAccountCredentialLifetimeExtension lists the account)"
                .into(),
        });
    }
    Ok(lifetime)
}

/// `VERTEX_BROKER_IMPERSONATE`: at most one account.
pub(super) fn impersonate<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Option<String>, ConfigError> {
    let accounts = emails(vars, "VERTEX_BROKER_IMPERSONATE")?;
    if accounts.len() > 1 {
        return Err(ConfigError {
            variable: "VERTEX_BROKER_IMPERSONATE",
            value: accounts.join(","),
            expected: "one account; put the accounts in between in VERTEX_BROKER_DELEGATES".into(),
        });
    }
    Ok(accounts.into_iter().next())
}

/// A comma-separated list of service-account emails.
pub(super) fn emails<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    name: &'static str,
) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = vars.get(name).map(|v| split_list(&v)).unwrap_or_default();
    match list.iter().find(|e| !e.contains('@') || e.contains(['/', ':', ' '])) {
        Some(bad) => Err(ConfigError {
            variable: name,
            value: bad.clone(),
            expected: "service-account emails (name@project.iam.gserviceaccount.com), comma separated".into(),
        }),
        None => Ok(list),
    }
}
