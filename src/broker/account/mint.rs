//! The mint path of an account: its source's own token, or, with `VERTEX_BROKER_IMPERSONATE`,
//! the target's minted with it; timed for the metrics, each failure turned into a
//! [`MintError`] a client may be told.

use std::sync::Arc;

use tokio::time::Instant;

use super::diagnosis::Diagnosis;
use super::Account;
use crate::broker::token_cache::{NoToken, Unavailable};
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::Token;

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
    Refused(Diagnosis),
    /// Federation without impersonation serves a principal, which cannot have ID tokens.
    #[error(
        "ID tokens need a service account, and federation without impersonation has none: set \
         VERTEX_BROKER_IMPERSONATE to an account the federated principal may impersonate \
         (roles/iam.workloadIdentityUser), or create the credential configuration with --service-account"
    )]
    IdTokenNeedsAccount,
    /// Central minting: the token secret holds no usable token for this.
    #[error("{0}")]
    Stored(NoToken),
}

impl MintError {
    /// The class of failure, as the minter reports it (Lambda's errorType, the EMF dimension).
    pub fn class(&self) -> &'static str {
        match self {
            MintError::NoKey(_) => "KeyUnavailable",
            MintError::Google(_) => "GoogleRefused",
            MintError::Refused(_) => "FederationRefused",
            MintError::IdTokenNeedsAccount => "IdTokenNeedsAccount",
            MintError::Stored(_) => "NoStoredToken",
        }
    }
}

impl Account {
    /// An access token minted now, past the cache (the cache's mints, and the minter's renewals).
    pub async fn mint_access(self: &Arc<Self>, scopes: &ScopeKey) -> Result<Token, MintError> {
        self.timed(async {
            match &self.impersonated {
                Some(i) => i.access_token(scopes, self.caller_token(), &self.books).await,
                None => self.source.access_token(scopes, &self.books).await,
            }
        })
        .await
    }

    /// An ID token minted now, past the cache.
    pub async fn mint_id(self: &Arc<Self>, audience: &Audience) -> Result<Token, MintError> {
        self.timed(async {
            match &self.impersonated {
                Some(i) => i.id_token(audience.as_str(), self.caller_token(), &self.books).await,
                None => self.source.id_token(audience, &self.books).await,
            }
        })
        .await
    }

    /// A mint, timed and counted in the metrics.
    async fn timed(
        &self,
        mint: impl std::future::Future<Output = Result<Token, MintError>>,
    ) -> Result<Token, MintError> {
        let started = Instant::now();
        let minted = mint.await;
        self.books.metrics.mint(started.elapsed(), minted.is_ok());
        minted
    }

    /// The source's cloud-platform token that `VERTEX_BROKER_IMPERSONATE` is called with.
    async fn caller_token(&self) -> Result<Token, MintError> {
        self.source.access_token(&ScopeKey::cloud_platform(), &self.books).await
    }
}
