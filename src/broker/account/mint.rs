//! The mint path of an account: from its source (a key, or federation), through the
//! impersonation it is configured with, to a token; each failure counted, logged in full, and
//! turned into a [`MintError`] a client may be told.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::refusal::{explain, explain_step, Refusal, Step};
use super::{Account, Kind, Source, CALLER_MIN_LIFE, CLOUD_PLATFORM};
use crate::broker::token_cache::Unavailable;
use crate::google::federation::Federation;
use crate::google::token::{Token, TokenError};
use crate::key::ServiceAccountKey;

/// Why a mint failed, as a client may be told it: what failed and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MintError {
    /// The secret holds no usable key (or cannot be read).
    #[error("{}", .0.message)]
    NoKey(Unavailable),
    /// Google's token endpoint refused or failed.
    #[error("{0}")]
    Google(String),
    /// Google STS or IAM Credentials refused a federation or impersonation call.
    #[error("{0}")]
    Refused(Refusal),
    /// Federation without impersonation serves a principal, which cannot have ID tokens.
    #[error(
        "ID tokens need a service account, and federation without impersonation has none: set \
         VERTEX_BROKER_IMPERSONATE to an account the federated principal may impersonate \
         (roles/iam.workloadIdentityUser), or create the credential configuration with --service-account"
    )]
    IdTokenNeedsAccount,
}

impl Account {
    pub(super) async fn mint_kind(self: &Arc<Self>, kind: Kind, key: &str) -> Result<Token, MintError> {
        let started = Instant::now();
        let minted = match kind {
            Kind::Access => self.mint_access(key).await,
            Kind::Id => self.mint_id(key).await,
        };
        self.metrics.mint(started.elapsed(), minted.is_ok());
        minted
    }

    async fn mint_access(self: &Arc<Self>, scope_key: &str) -> Result<Token, MintError> {
        let scopes: Vec<String> = scope_key.split(' ').map(str::to_string).collect();
        match &self.impersonation {
            Some(to) => {
                let caller = self.caller_token().await?;
                self.counted(self.iam_credentials.access_token(&caller.secret, to, &scopes).await, Step::Impersonate)
            }
            None => self.source_access(&scopes).await,
        }
    }

    async fn mint_id(self: &Arc<Self>, audience: &str) -> Result<Token, MintError> {
        if let Some(to) = &self.impersonation {
            let caller = self.caller_token().await?;
            return self.counted(self.iam_credentials.id_token(&caller.secret, to, audience).await, Step::Impersonate);
        }
        match &self.source {
            Source::Key => self.mint(|key| async move { self.tokens.id_token(&key, audience).await }).await,
            Source::Federation { federation, impersonation: Some(to) } => {
                let federated = self.federated_token(federation).await?;
                self.counted(self.iam_credentials.id_token(&federated.secret, to, audience).await, Step::Impersonate)
            }
            Source::Federation { impersonation: None, .. } => Err(MintError::IdTokenNeedsAccount),
        }
    }

    /// A token of the source's own identity for `scopes`: the key's account, or the federated
    /// principal (impersonating the configuration's account when it names one).
    async fn source_access(self: &Arc<Self>, scopes: &[String]) -> Result<Token, MintError> {
        match &self.source {
            Source::Key => self.mint(|key| async move { self.tokens.access_token(&key, scopes).await }).await,
            Source::Federation { federation, impersonation: Some(to) } => {
                let federated = self.federated_token(federation).await?;
                self.counted(self.iam_credentials.access_token(&federated.secret, to, scopes).await, Step::Impersonate)
            }
            Source::Federation { federation, impersonation: None } => {
                self.counted(federation.exchange(scopes).await, Step::Exchange)
            }
        }
    }

    /// The source's cloud-platform token that `VERTEX_BROKER_IMPERSONATE` is called with,
    /// reused while it has [`CALLER_MIN_LIFE`] left (one mint per hour, not one per token).
    async fn caller_token(self: &Arc<Self>) -> Result<Token, MintError> {
        reuse_while_fresh(&self.caller, self.source_access(&[CLOUD_PLATFORM.to_string()])).await
    }

    /// The federated token the configuration's own impersonation is called with, reused while
    /// fresh.
    async fn federated_token(self: &Arc<Self>, federation: &Federation) -> Result<Token, MintError> {
        let exchange = async { self.counted(federation.exchange(&[CLOUD_PLATFORM.to_string()]).await, Step::Exchange) };
        reuse_while_fresh(&self.federated, exchange).await
    }

    /// The lifetime asked of IAM Credentials for served tokens, when impersonating.
    fn asked_lifetime(&self) -> Option<Duration> {
        match (&self.impersonation, &self.source) {
            (Some(i), _) | (None, Source::Federation { impersonation: Some(i), .. }) => Some(i.lifetime),
            _ => None,
        }
    }

    /// Counts a federation or impersonation call's outcome; a failure becomes what a client may
    /// be told.
    fn counted(&self, result: Result<Token, TokenError>, step: Step) -> Result<Token, MintError> {
        if step == Step::Exchange {
            self.metrics.federation_exchange();
        }
        self.record(result, |e| MintError::Refused(explain_step(step, e, self.asked_lifetime())))
    }

    /// Counts a mint's outcome and logs a failure in full; `explain` turns it into what a client
    /// may be told.
    fn record(
        &self,
        result: Result<Token, TokenError>,
        explain: impl FnOnce(&TokenError) -> MintError,
    ) -> Result<Token, MintError> {
        match result {
            Ok(token) => {
                self.counters.mints.fetch_add(1, Ordering::Relaxed);
                Ok(token)
            }
            Err(e) => {
                self.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                self.metrics.upstream_error();
                tracing::warn!(account = %self.secret_id, error = %e, "minting a token failed");
                Err(explain(&e))
            }
        }
    }

    /// Mints with the current key; after `invalid_grant` (the key was rotated away) re-reads the
    /// secret at once and tries the new key. The error is what a client may be told: what failed
    /// and what to do, never a key id or an endpoint (the log line has those).
    async fn mint<F, Fut>(self: &Arc<Self>, mint: F) -> Result<Token, MintError>
    where
        F: Fn(ServiceAccountKey) -> Fut,
        Fut: std::future::Future<Output = Result<Token, TokenError>>,
    {
        let current = self.key(false).await.map_err(MintError::NoKey)?;
        let result = match mint(current.key.clone()).await {
            Err(e) if e.is_invalid_grant() => {
                let reloaded = self.key(true).await.map_err(MintError::NoKey)?;
                if reloaded.version_id != current.version_id {
                    mint(reloaded.key.clone()).await
                } else {
                    Err(e)
                }
            }
            other => other,
        };
        self.record(result, |e| MintError::Google(explain(e)))
    }
}

/// The token in `cached` while it has [`CALLER_MIN_LIFE`] left, else `mint`'s (kept for next
/// time). Callers wait on the lock: one mint at a time.
async fn reuse_while_fresh(
    cached: &tokio::sync::Mutex<Option<Token>>,
    mint: impl std::future::Future<Output = Result<Token, MintError>>,
) -> Result<Token, MintError> {
    let mut cached = cached.lock().await;
    let fresh = |t: &&Token| (t.expires_at - chrono::Utc::now()).to_std().is_ok_and(|left| left > CALLER_MIN_LIFE);
    if let Some(t) = cached.as_ref().filter(fresh) {
        return Ok(t.clone());
    }
    let token = mint.await?;
    *cached = Some(token.clone());
    Ok(token)
}
