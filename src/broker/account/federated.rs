//! Workload identity federation from AWS: the AWS identity exchanged at Google STS for a
//! federated token, and, when the credential configuration names one, the account that token
//! impersonates (its `service_account_impersonation_url`).

use super::books::Books;
use super::diagnosis::GoogleCall;
use super::impersonated::Impersonated;
use super::MintError;
use crate::google::federation::Federation;
use crate::google::scopes::{ScopeKey, CLOUD_PLATFORM};
use crate::google::token::Token;

/// The exchange, and the configuration's own impersonation, if any.
pub(super) struct Federated {
    pub federation: Federation,
    pub impersonated: Option<Impersonated>,
}

impl Federated {
    /// The account the configuration impersonates, if any.
    pub fn email(&self) -> Option<String> {
        self.impersonated.as_ref().map(|i| i.to.target.clone())
    }

    /// The federated principal's token for `scopes`, or the configuration's account's.
    pub async fn access_token(&self, scopes: &ScopeKey, books: &Books) -> Result<Token, MintError> {
        match &self.impersonated {
            Some(i) => i.access_token(scopes, self.exchange_cloud_platform(books), books).await,
            None => self.exchange(&scopes.to_vec(), books).await,
        }
    }

    /// The configuration's account's ID token; a federated principal cannot have one.
    pub async fn id_token(&self, audience: &str, books: &Books) -> Result<Token, MintError> {
        match &self.impersonated {
            Some(i) => i.id_token(audience, self.exchange_cloud_platform(books), books).await,
            None => Err(MintError::IdTokenNeedsAccount),
        }
    }

    async fn exchange_cloud_platform(&self, books: &Books) -> Result<Token, MintError> {
        self.exchange(&[CLOUD_PLATFORM.to_string()], books).await
    }

    async fn exchange(&self, scopes: &[String], books: &Books) -> Result<Token, MintError> {
        let lifetime = self.impersonated.as_ref().map(|i| i.to.lifetime);
        books.counted(self.federation.exchange(scopes).await, GoogleCall::Exchange, lifetime)
    }
}
