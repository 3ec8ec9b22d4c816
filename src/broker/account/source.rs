//! Where an account's own tokens come from, one type per source behind one enum: the account
//! asks it for tokens, its email and project, and what is due; nothing outside `account` sees
//! which it is except `doctor`, through [`Origin`].

use std::sync::Arc;
use std::time::Duration;

use super::books::Books;
use super::federated::Federated;
use super::rotated_key::RotatedKey;
use super::stored::StoredSource;
use super::MintError;
use crate::broker::token_cache::Unavailable;
use crate::google::federation::Federation;
use crate::google::iam_credentials::Impersonation;
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::Token;

/// An account's token source.
pub(super) enum Source {
    /// The rotated key in a secret.
    Key(Arc<RotatedKey>),
    /// AWS workload identity federation.
    Federation(Box<Federated>),
    /// The minter's tokens in a token secret (central minting): mints nothing.
    Stored(Arc<StoredSource>),
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
    /// The minter's tokens in the token secret `secret_id`.
    Stored {
        /// The token secret's id or ARN.
        secret_id: &'a str,
    },
}

impl Source {
    pub fn origin(&self) -> Origin<'_> {
        match self {
            Self::Key(k) => Origin::RotatedKey { secret_id: k.secret_id() },
            Self::Federation(f) => {
                Origin::Federation { federation: &f.federation, impersonation: f.impersonated.as_ref().map(|i| &i.to) }
            }
            Self::Stored(s) => Origin::Stored { secret_id: s.secret_id() },
        }
    }

    /// The source's own access token for `scopes`.
    pub async fn access_token(&self, scopes: &ScopeKey, books: &Arc<Books>) -> Result<Token, MintError> {
        match self {
            Self::Key(k) => k.access_token(scopes, books).await,
            Self::Federation(f) => f.access_token(scopes, books).await,
            Self::Stored(s) => s.access_token(scopes).await.map_err(MintError::Stored),
        }
    }

    /// The source's own ID token for `audience`.
    pub async fn id_token(&self, audience: &Audience, books: &Arc<Books>) -> Result<Token, MintError> {
        match self {
            Self::Key(k) => k.id_token(audience.as_str(), books).await,
            Self::Federation(f) => f.id_token(audience.as_str(), books).await,
            Self::Stored(s) => s.id_token(audience).await.map_err(MintError::Stored),
        }
    }

    /// The source's own account, when known without I/O (`None`: not loaded yet, or a
    /// federated principal, which has no email).
    pub fn email(&self) -> Option<String> {
        match self {
            Self::Key(k) => k.current().map(|c| c.key.client_email().to_string()),
            Self::Federation(f) => f.email(),
            Self::Stored(s) => s.held().and_then(|h| h.email.clone()),
        }
    }

    /// The source's own account, loading the key if needed.
    pub async fn load_email(&self, books: &Arc<Books>) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Key(k) => Ok(Some(k.key(false, books).await?.key.client_email().to_string())),
            Self::Federation(f) => Ok(f.email()),
            Self::Stored(s) => match s.read(false).await {
                true => Ok(s.held().and_then(|h| h.email.clone())),
                false => Err(s.nothing_held()),
            },
        }
    }

    /// The project the source itself names: the key's (loading it if needed), or the
    /// federation pool's project number.
    pub async fn project(&self, books: &Arc<Books>) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Key(k) => Ok(k.key(false, books).await?.key.project_id().map(str::to_string)),
            Self::Federation(f) => Ok(f.federation.config.project_number().map(str::to_string)),
            Self::Stored(s) => match s.read(false).await {
                true => Ok(s.held().and_then(|h| h.project.clone())),
                false => Err(s.nothing_held()),
            },
        }
    }

    /// The impersonated lifetime the source asks for, if it impersonates.
    pub fn lifetime(&self) -> Option<Duration> {
        match self {
            Self::Key(_) | Self::Stored(_) => None,
            Self::Federation(f) => f.impersonated.as_ref().map(|i| i.to.lifetime),
        }
    }

    /// Ready to mint: a key has been loaded (federation is always ready).
    pub async fn prepare(&self, books: &Arc<Books>) -> bool {
        match self {
            Self::Key(k) => k.key(false, books).await.is_ok(),
            Self::Federation(_) => true,
            Self::Stored(s) => s.read(false).await,
        }
    }

    /// Re-reads what the source reads now (SIGHUP); whether it holds something usable.
    pub async fn reload(&self, books: &Arc<Books>) -> bool {
        match self {
            Self::Key(k) => k.reload(true, books).await.is_ok(),
            Self::Federation(_) => true,
            Self::Stored(s) => s.read(true).await,
        }
    }

    /// Whether a re-read is due (INVOKE work): no key yet, or SECRET_TTL has passed.
    pub fn reread_due(&self) -> bool {
        match self {
            Self::Key(k) => k.check_due(),
            Self::Federation(_) => false,
            Self::Stored(s) => s.reread_due(),
        }
    }

    /// The re-read [`Self::reread_due`] asks for.
    pub async fn reread(&self, books: &Arc<Books>) {
        match self {
            Self::Key(k) => drop(k.reload(false, books).await),
            Self::Federation(_) => {}
            Self::Stored(s) => drop(s.read(false).await),
        }
    }

    /// On a cache hit: starts a background re-read when one is due. Cheap when not.
    pub fn reread_if_due(&self, books: &Arc<Books>) {
        match self {
            Self::Key(k) => k.recheck_if_due(books),
            Self::Federation(_) => {}
            Self::Stored(s) => s.reread_if_due(),
        }
    }

    /// The loaded key's version and email, and the last read's error, for the status endpoint.
    pub fn key_status(&self) -> Option<(Option<Arc<super::CurrentKey>>, Option<String>)> {
        match self {
            Self::Key(k) => Some((k.current(), k.error())),
            Self::Federation(_) | Self::Stored(_) => None,
        }
    }

    /// The rotated key, loaded if needed; `None` for other sources.
    pub async fn key(&self, books: &Arc<Books>) -> Option<Result<Arc<super::CurrentKey>, Unavailable>> {
        match self {
            Self::Key(k) => Some(k.key(false, books).await),
            Self::Federation(_) | Self::Stored(_) => None,
        }
    }

    /// Central minting's source, which the account serves from without its caches.
    pub fn stored(&self) -> Option<&Arc<StoredSource>> {
        match self {
            Self::Stored(s) => Some(s),
            _ => None,
        }
    }

    /// The minter's tokens as last read, and the last read's error; `None` for other sources.
    pub fn stored_status(&self) -> Option<(Option<Arc<crate::minter::stored::StoredTokens>>, Option<String>)> {
        self.stored().map(|s| (s.held(), s.error()))
    }
}
