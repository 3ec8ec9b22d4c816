//! `VERTEX_BROKER_IMPERSONATE` on top of any source: the served tokens are the target's, minted
//! at IAM Credentials with the source's own cloud-platform token, which is reused while fresh.

use std::time::Duration;

use super::books::Books;
use super::diagnosis::GoogleCall;
use super::MintError;
use crate::google::iam_credentials::{IamCredentials, Impersonation};
use crate::google::scopes::ScopeKey;
use crate::google::token::Token;

/// A caller token is reused while it has at least this long left.
const CALLER_MIN_LIFE: Duration = Duration::from_secs(300);

/// Who is impersonated, and the caller token last used to.
pub(super) struct Impersonated {
    pub to: Impersonation,
    iam: IamCredentials,
    /// The source's token the target is impersonated with, reused while fresh.
    caller: tokio::sync::Mutex<Option<Token>>,
}

impl Impersonated {
    pub fn new(to: Impersonation, iam: IamCredentials) -> Self {
        Self { to, iam, caller: tokio::sync::Mutex::new(None) }
    }

    /// The target's access token for `scopes`, minted with the caller token `caller` yields
    /// (called only when the one kept is not fresh).
    pub async fn access_token(
        &self,
        scopes: &ScopeKey,
        caller: impl std::future::Future<Output = Result<Token, MintError>>,
        books: &Books,
    ) -> Result<Token, MintError> {
        let caller = reuse_while_fresh(&self.caller, caller).await?;
        let minted = self.iam.access_token(&caller.bearer, &self.to, &scopes.to_vec()).await;
        books.counted(minted, GoogleCall::Impersonate, Some(self.to.lifetime))
    }

    /// The target's ID token for `audience`.
    pub async fn id_token(
        &self,
        audience: &str,
        caller: impl std::future::Future<Output = Result<Token, MintError>>,
        books: &Books,
    ) -> Result<Token, MintError> {
        let caller = reuse_while_fresh(&self.caller, caller).await?;
        let minted = self.iam.id_token(&caller.bearer, &self.to, audience).await;
        books.counted(minted, GoogleCall::Impersonate, Some(self.to.lifetime))
    }
}

/// The token in `kept` while it has [`CALLER_MIN_LIFE`] left, else `mint`'s (kept for next
/// time): one mint per hour, not one per token. Callers wait on the lock: one mint at a time.
pub(super) async fn reuse_while_fresh(
    kept: &tokio::sync::Mutex<Option<Token>>,
    mint: impl std::future::Future<Output = Result<Token, MintError>>,
) -> Result<Token, MintError> {
    let mut kept = kept.lock().await;
    let fresh = |t: &&Token| (t.expires_at - chrono::Utc::now()).to_std().is_ok_and(|left| left > CALLER_MIN_LIFE);
    if let Some(t) = kept.as_ref().filter(fresh) {
        return Ok(t.clone());
    }
    let token = mint.await?;
    *kept = Some(token.clone());
    Ok(token)
}
