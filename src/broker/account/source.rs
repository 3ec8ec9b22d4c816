//! Where an account's own tokens come from, one type per source behind one enum: the account
//! asks it for tokens, its email and project, and what is due; nothing outside `account` sees
//! which it is except `doctor`, through [`Origin`].

use std::sync::Arc;
use std::time::Duration;

use super::books::Books;
use super::federated::Federated;
use super::rotated_key::RotatedKey;
use super::MintError;
use crate::broker::token_cache::Unavailable;
use crate::google::federation::Federation;
use crate::google::iam_credentials::Impersonation;
use crate::google::scopes::ScopeKey;
use crate::google::token::Token;

/// An account's token source.
pub(super) enum Source {
    /// The rotated key in a secret.
    Key(Arc<RotatedKey>),
    /// AWS workload identity federation.
    Federation(Box<Federated>),
}

/// Which source an account has, for `doctor`'s step-by-step walk.
pub enum Origin<'a> {
    /// The rotated key in the secret `secret_id`.
    RotatedKey {
        /// The secret's id or ARN.
        secret_id: &'a str,
    },
    /// AWS workload identity federation.
    Federation {
        /// The exchange at Google STS.
        federation: &'a Federation,
        /// The configuration's own impersonation, if any.
        impersonation: Option<&'a Impersonation>,
    },
}

impl Source {
    pub fn origin(&self) -> Origin<'_> {
        match self {
            Self::Key(k) => Origin::RotatedKey { secret_id: k.secret_id() },
            Self::Federation(f) => {
                Origin::Federation { federation: &f.federation, impersonation: f.impersonated.as_ref().map(|i| &i.to) }
            }
        }
    }

    /// The source's own access token for `scopes`.
    pub async fn access_token(&self, scopes: &ScopeKey, books: &Arc<Books>) -> Result<Token, MintError> {
        match self {
            Self::Key(k) => k.access_token(scopes, books).await,
            Self::Federation(f) => f.access_token(scopes, books).await,
        }
    }

    /// The source's own ID token for `audience`.
    pub async fn id_token(&self, audience: &str, books: &Arc<Books>) -> Result<Token, MintError> {
        match self {
            Self::Key(k) => k.id_token(audience, books).await,
            Self::Federation(f) => f.id_token(audience, books).await,
        }
    }

    /// The source's own account, when known without I/O (`None`: not loaded yet, or a
    /// federated principal, which has no email).
    pub fn email(&self) -> Option<String> {
        match self {
            Self::Key(k) => k.current().map(|c| c.key.client_email().to_string()),
            Self::Federation(f) => f.email(),
        }
    }

    /// The source's own account, loading the key if needed.
    pub async fn load_email(&self, books: &Arc<Books>) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Key(k) => Ok(Some(k.key(false, books).await?.key.client_email().to_string())),
            Self::Federation(f) => Ok(f.email()),
        }
    }

    /// The project the source itself names: the key's (loading it if needed), or the
    /// federation pool's project number.
    pub async fn project(&self, books: &Arc<Books>) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Key(k) => Ok(k.key(false, books).await?.key.project_id().map(str::to_string)),
            Self::Federation(f) => Ok(f.federation.config.project_number().map(str::to_string)),
        }
    }

    /// The impersonated lifetime the source asks for, if it impersonates.
    pub fn lifetime(&self) -> Option<Duration> {
        match self {
            Self::Key(_) => None,
            Self::Federation(f) => f.impersonated.as_ref().map(|i| i.to.lifetime),
        }
    }

    /// Ready to mint: a key has been loaded (federation is always ready).
    pub async fn prepare(&self, books: &Arc<Books>) -> bool {
        match self {
            Self::Key(k) => k.key(false, books).await.is_ok(),
            Self::Federation(_) => true,
        }
    }

    /// Re-reads what the source reads now (SIGHUP); whether it holds something usable.
    pub async fn reload(&self, books: &Arc<Books>) -> bool {
        match self {
            Self::Key(k) => k.reload(true, books).await.is_ok(),
            Self::Federation(_) => true,
        }
    }

    /// Whether a re-read is due (INVOKE work): no key yet, or SECRET_TTL has passed.
    pub fn reread_due(&self) -> bool {
        match self {
            Self::Key(k) => k.check_due(),
            Self::Federation(_) => false,
        }
    }

    /// The re-read [`Self::reread_due`] asks for.
    pub async fn reread(&self, books: &Arc<Books>) {
        if let Self::Key(k) = self {
            let _ = k.reload(false, books).await;
        }
    }

    /// On a cache hit: starts a background re-read when one is due. Cheap when not.
    pub fn reread_if_due(&self, books: &Arc<Books>) {
        if let Self::Key(k) = self {
            k.recheck_if_due(books);
        }
    }

    /// The loaded key's version and email, and the last read's error, for the status endpoint.
    pub fn key_status(&self) -> Option<(Option<Arc<super::CurrentKey>>, Option<String>)> {
        match self {
            Self::Key(k) => Some((k.current(), k.error())),
            Self::Federation(_) => None,
        }
    }

    /// The rotated key, loaded if needed; `None` for other sources.
    pub async fn key(&self, books: &Arc<Books>) -> Option<Result<Arc<super::CurrentKey>, Unavailable>> {
        match self {
            Self::Key(k) => Some(k.key(false, books).await),
            Self::Federation(_) => None,
        }
    }
}
