//! The minter: central minting's one writer. Each run renews every token of the token secret
//! with less than half of its lifetime left (and mints what is missing) through the broker's own
//! token source (rotated key, federation, impersonation), and writes one new version of the
//! secret. The fleet's brokers only read it: the Google calls do not grow with the fleet and no
//! Google credential is within reach of function code.
//!
//! Idempotent: a run with nothing to renew writes nothing; two runs at once each write a whole,
//! valid set, and the last one stands. A Google failure keeps the stored token it would have
//! replaced and is reported by class.

pub mod metric;
pub mod stored;

use std::sync::Arc;

use chrono::Utc;

use crate::broker::account::{Account, MintError};
use crate::broker::{Broker, BrokerError, BrokerSettings};
use crate::google::scopes::{Audience, ScopeKey};
use crate::store::{SecretStore, StoreError, AWSCURRENT};
use stored::{StoredToken, StoredTokens};

/// Why a run could not read or write the token secret, or start.
#[derive(Debug, thiserror::Error)]
pub enum MinterError {
    /// The source configuration cannot work.
    #[error(transparent)]
    Config(#[from] BrokerError),
    /// Secrets Manager refused or failed.
    #[error("the token secret {secret}: {source}")]
    Store {
        /// The token secret.
        secret: String,
        /// What Secrets Manager said.
        source: StoreError,
    },
}

impl MinterError {
    /// The class of failure (Lambda's errorType).
    pub fn class(&self) -> &'static str {
        match self {
            MinterError::Config(_) => "ConfigInvalid",
            MinterError::Store { source, .. } if source.is_not_found() => "TokenSecretNotFound",
            MinterError::Store { .. } => "SecretsManager",
        }
    }
}

/// One token the run could not renew, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The scope set or audience.
    pub slot: String,
    /// The class of [`MintError`].
    pub class: &'static str,
    /// What Google (or the key secret) said.
    pub message: String,
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Tokens minted this run.
    pub renewed: usize,
    /// Tokens kept, with at least half of their lifetime left.
    pub kept: usize,
    /// Tokens that could not be minted (the stored one, if any, stays).
    pub failures: Vec<Failure>,
    /// The least life left on what is stored after the run, in seconds.
    pub least_life_left: Option<i64>,
    /// The version written, if any.
    pub version: Option<String>,
}

/// The minter for one token secret.
pub struct Minter {
    account: Arc<Account>,
    store: Arc<dyn SecretStore>,
    secret_id: String,
    scopes: Vec<ScopeKey>,
    audiences: Vec<Audience>,
}

impl Minter {
    /// Mints for the default account of `settings` (its source and impersonation) into
    /// `secret_id`: access tokens for the default scope set and cloud-platform (the gateway's),
    /// ID tokens for `audiences`.
    pub fn new(
        settings: &BrokerSettings,
        store: Arc<dyn SecretStore>,
        secret_id: String,
        audiences: Vec<Audience>,
    ) -> Result<Self, MinterError> {
        // The minter mints from the source; the token secret is where it writes, not a source.
        let settings = BrokerSettings { token_secret_id: None, ..settings.clone() };
        let broker = Broker::new(&settings, store.clone())?;
        let account = broker.accounts()[0].clone();
        let mut scopes = vec![broker.default_scopes().clone()];
        if !scopes.contains(&ScopeKey::cloud_platform()) {
            scopes.push(ScopeKey::cloud_platform());
        }
        Ok(Self { account, store, secret_id, scopes, audiences })
    }

    /// The token secret it writes.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// One run: read, renew what is due, write one version when anything changed.
    pub async fn run(&self) -> Result<Report, MinterError> {
        let held = self.read().await?;
        let mut report = Report::default();
        let mut next = StoredTokens::empty();
        for scopes in &self.scopes {
            let held = held.access(scopes);
            let mint = || self.account.mint_access(scopes);
            next.access_tokens.extend(renew(scopes, scopes.as_str(), held, mint, &mut report).await);
        }
        for audience in &self.audiences {
            let held = held.id(audience);
            let mint = || self.account.mint_id(audience);
            next.id_tokens.extend(renew(audience, audience.as_str(), held, mint, &mut report).await);
        }
        next.email = self.account.served_email().await.ok().flatten().or_else(|| held.email.clone());
        next.project = self.account.project().await.ok().flatten().or_else(|| held.project.clone());
        let changed = report.renewed > 0
            || (held.access_tokens.len(), held.id_tokens.len()) != (next.access_tokens.len(), next.id_tokens.len())
            || (&held.email, &held.project) != (&next.email, &next.project);
        let stands = if changed {
            let version = uuid::Uuid::new_v4().to_string();
            self.store
                .put(&self.secret_id, &version, &next.to_value(), &[AWSCURRENT], None)
                .await
                .map_err(|source| MinterError::Store { secret: self.secret_id.clone(), source })?;
            report.version = Some(version);
            &next
        } else {
            &held
        };
        report.least_life_left = stands.least_life_left(Utc::now());
        Ok(report)
    }

    /// What the token secret holds now: nothing when it has no value yet (the first run fills
    /// it); a value that is not the minter's is replaced.
    async fn read(&self) -> Result<StoredTokens, MinterError> {
        let store_error = |source| MinterError::Store { secret: self.secret_id.clone(), source };
        match self.store.get(&self.secret_id, None, Some(AWSCURRENT)).await {
            Ok(value) => Ok(StoredTokens::parse(&value.value).unwrap_or_else(|e| {
                tracing::warn!(secret = %self.secret_id, error = %e, "replacing what the token secret holds");
                StoredTokens::empty()
            })),
            Err(e) if e.is_not_found() => {
                // No value yet, or no secret at all: only the first is fine.
                self.store.describe(&self.secret_id).await.map_err(store_error)?;
                Ok(StoredTokens::empty())
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

/// One slot's token after a run: the held one while it has half its lifetime left, else a
/// new one; when minting fails, the held one while it is still valid.
async fn renew<K: Clone, Fut>(
    slot: &K,
    label: &str,
    held: Option<&StoredToken<K>>,
    mint: impl FnOnce() -> Fut,
    report: &mut Report,
) -> Option<StoredToken<K>>
where
    Fut: std::future::Future<Output = Result<crate::google::token::Token, MintError>>,
{
    let now = Utc::now();
    if let Some(held) = held.filter(|t| !t.wants_renewal(now)) {
        report.kept += 1;
        return Some(held.clone());
    }
    match mint().await {
        Ok(token) => {
            report.renewed += 1;
            Some(StoredToken::minted(slot.clone(), token))
        }
        Err(e) => {
            tracing::warn!(slot = label, class = e.class(), error = %e, "could not renew a stored token");
            report.failures.push(Failure { slot: label.to_string(), class: e.class(), message: e.to_string() });
            held.filter(|t| t.life_left(now) > 0).cloned()
        }
    }
}
