//! Central minting's reader: the token secret the minter (`vertex-broker-minter`) writes. Read
//! when what it holds passes its refresh point, driven by requests and INVOKE (a frozen
//! environment runs no timers), and at once on SIGHUP. It mints nothing; it serves what it holds
//! while valid when Secrets Manager fails, and starts before the secret holds anything.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::broker::token_cache::{NoToken, Unavailable};
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::Token;
use crate::minter::stored::{StoredToken, StoredTokens};
use crate::store::{SecretStore, AWSCURRENT};

/// How often a read may be tried again while it fails or finds nothing newer.
const REREAD_EVERY: Duration = Duration::from_secs(1);

/// The minter's tokens, as last read.
pub(super) struct StoredSource {
    secret_id: String,
    store: Arc<dyn SecretStore>,
    held: RwLock<Option<Arc<StoredTokens>>>,
    /// Single-flight for reads.
    reading: tokio::sync::Mutex<()>,
    last_read: Mutex<Option<Instant>>,
    error: Mutex<Option<String>>,
}

impl StoredSource {
    pub fn new(secret_id: String, store: Arc<dyn SecretStore>) -> Self {
        Self {
            secret_id,
            store,
            held: RwLock::new(None),
            reading: tokio::sync::Mutex::new(()),
            last_read: Mutex::new(None),
            error: Mutex::new(None),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// What was last read, if anything.
    pub fn held(&self) -> Option<Arc<StoredTokens>> {
        crate::read(&self.held).clone()
    }

    /// Why the last read failed, if it did.
    pub fn error(&self) -> Option<String> {
        crate::lock(&self.error).clone()
    }

    /// Nothing held, or what is held passed its refresh point; and not read moments ago.
    pub fn reread_due(&self) -> bool {
        let stale = self.held().is_none_or(|h| h.refresh_at().is_none_or(|at| Utc::now() >= at));
        stale && crate::lock(&self.last_read).is_none_or(|t| t.elapsed() >= REREAD_EVERY)
    }

    /// On a request: starts a background read when one is due. Cheap when not.
    pub fn reread_if_due(self: &Arc<Self>) {
        if self.reread_due() {
            let me = self.clone();
            tokio::spawn(async move { me.read(false).await });
        }
    }

    /// Reads the secret (single-flight; `force`: whatever was read moments ago); keeps what
    /// is held when the read fails. Whether something is held after.
    pub async fn read(&self, force: bool) -> bool {
        let started = Instant::now();
        let _single_flight = self.reading.lock().await;
        let last = *crate::lock(&self.last_read);
        let read_meanwhile = last.is_some_and(|t| t >= started || (!force && t.elapsed() < REREAD_EVERY));
        if !read_meanwhile {
            let result = self.store.get(&self.secret_id, None, Some(AWSCURRENT)).await;
            *crate::lock(&self.last_read) = Some(Instant::now());
            let parsed = result.map_err(|e| e.to_string()).and_then(|v| StoredTokens::parse(&v.value));
            match parsed {
                Ok(stored) => {
                    *crate::write(&self.held) = Some(Arc::new(stored));
                    *crate::lock(&self.error) = None;
                }
                Err(message) => {
                    tracing::warn!(secret = %self.secret_id, error = %message, "could not read the token secret");
                    *crate::lock(&self.error) = Some(message);
                }
            }
        }
        self.held().is_some()
    }

    /// What is held, read first when nothing is; a background read when it passed its refresh
    /// point.
    async fn current(self: &Arc<Self>) -> Option<Arc<StoredTokens>> {
        if self.held().is_none() {
            self.read(false).await;
        } else {
            self.reread_if_due();
        }
        self.held()
    }

    /// The stored access token for `scopes`.
    pub async fn access_token(self: &Arc<Self>, scopes: &ScopeKey) -> Result<Token, NoToken> {
        let held = self.current().await;
        self.serve(held.as_deref(), |h| h.access(scopes), "scope set", scopes.as_str(), "VERTEX_BROKER_SCOPES")
    }

    /// The stored ID token for `audience`.
    pub async fn id_token(self: &Arc<Self>, audience: &Audience) -> Result<Token, NoToken> {
        let held = self.current().await;
        self.serve(held.as_deref(), |h| h.id(audience), "audience", audience.as_str(), "VERTEX_BROKER_AUDIENCES")
    }

    fn serve<'a, K: 'a>(
        &self,
        held: Option<&'a StoredTokens>,
        find: impl FnOnce(&'a StoredTokens) -> Option<&'a StoredToken<K>>,
        what: &str,
        name: &str,
        variable: &str,
    ) -> Result<Token, NoToken> {
        let Some(held) = held else { return Err(self.nothing_held().into()) };
        let Some(stored) = find(held) else {
            return Err(NoToken::NotMinted(format!(
                "the minter pre-mints no token for the {what} {}: add it to the minter's {variable}",
                crate::text::printable(name)
            )));
        };
        if stored.life_left(Utc::now()) <= 0 {
            return Err(Unavailable {
                message: format!(
                    "the stored tokens in {} expired (written {} s ago): the minter (vertex-broker-minter) has not \
                     renewed them; check its schedule and its last run's errors",
                    self.secret_id,
                    held.age(Utc::now())
                ),
                retry_after: 1,
            }
            .into());
        }
        Ok(stored.token())
    }

    pub fn nothing_held(&self) -> Unavailable {
        let why = self.error().unwrap_or_else(|| "it holds no value yet".into());
        Unavailable {
            message: format!(
                "the token secret {} holds no tokens yet ({why}): the minter (vertex-broker-minter) writes them; \
                 run it once (`vertex-broker mint`) or check its schedule",
                self.secret_id
            ),
            retry_after: 1,
        }
    }
}
