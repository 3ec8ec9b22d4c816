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
        let read_meanwhile = last.is_some_and(|t| t > started || (!force && t.elapsed() < REREAD_EVERY));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::Credential;
    use crate::minter::stored::StoredToken;
    use crate::store::MemoryStore;

    /// Stored tokens holding one cloud-platform token `name` of 45 s, `left` seconds from expiry.
    fn tokens(name: &str, left: i64) -> String {
        let mut stored = StoredTokens::empty();
        stored.access_tokens.push(StoredToken {
            slot: ScopeKey::cloud_platform(),
            token: Credential::new(name.into()),
            expires_at: Utc::now() + chrono::Duration::seconds(left),
            lifetime_s: 45,
        });
        stored.to_value()
    }

    async fn served(source: &Arc<StoredSource>) -> String {
        source.access_token(&ScopeKey::cloud_platform()).await.unwrap().bearer.expose().to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_version_is_served_on_its_own_past_the_refresh_point_and_at_once_on_sighup() {
        let store = Arc::new(MemoryStore::new());
        store.create("tokens", &tokens("first", 40));
        let source = Arc::new(StoredSource::new("tokens".into(), store.clone()));
        assert_eq!(served(&source).await, "first");

        // Before its refresh point (7.5 s before expiry for a 45 s token) nothing is re-read.
        store.put("tokens", "v2", &tokens("second", 45), &[AWSCURRENT], None).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!source.reread_due());
        assert_eq!(served(&source).await, "first");

        // SIGHUP: at once, whatever the refresh point.
        assert!(source.read(true).await);
        assert_eq!(served(&source).await, "second");

        // Past the refresh point a request serves what is held and reads in the background.
        store.put("tokens", "v3", &tokens("expiring", 5), &[AWSCURRENT], None).await.unwrap();
        assert!(source.read(true).await);
        store.put("tokens", "v4", &tokens("renewed", 45), &[AWSCURRENT], None).await.unwrap();
        tokio::time::advance(REREAD_EVERY).await;
        assert!(source.reread_due());
        assert_eq!(served(&source).await, "expiring", "still valid: served while the read runs");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(served(&source).await, "renewed");
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_held_is_served_through_a_failed_read_and_nothing_held_is_a_503_naming_the_minter() {
        let store = Arc::new(MemoryStore::new());
        let source = Arc::new(StoredSource::new("missing".into(), store.clone()));
        let NoToken::Unavailable(u) = source.access_token(&ScopeKey::cloud_platform()).await.unwrap_err() else {
            panic!("503 expected")
        };
        assert!(u.message.contains("vertex-broker-minter") && u.message.contains("missing"), "{}", u.message);

        store.create("tokens", &tokens("held", 5));
        let source = Arc::new(StoredSource::new("tokens".into(), store.clone()));
        assert_eq!(served(&source).await, "held");
        // A read that fails (here: a version that is not the minter's) keeps what is held.
        store.put("tokens", "bad", "{\"not\": \"tokens\"}", &[AWSCURRENT], None).await.unwrap();
        tokio::time::advance(REREAD_EVERY).await;
        assert!(source.read(true).await, "still holding the last good tokens");
        assert_eq!(served(&source).await, "held", "a failed read: what is held is served");
        assert!(source.error().is_some());
        let NoToken::NotMinted(why) = source.access_token(&ScopeKey::parse("openid").unwrap()).await.unwrap_err()
        else {
            panic!("404 expected")
        };
        assert!(why.contains("VERTEX_BROKER_SCOPES"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_invoke_reads_a_newer_version_once_the_held_token_passes_its_refresh_point() {
        use crate::broker::account::{Account, AccountLimits};
        use crate::broker::metrics::Metrics;
        use crate::broker::mint_limit::MintLimiter;
        use crate::broker::token_cache::CachePolicy;

        let store = Arc::new(MemoryStore::new());
        store.create("tokens", &tokens("expiring", 5));
        let limits = AccountLimits {
            policy: CachePolicy::default(),
            max_slots: 4,
            default_scopes: ScopeKey::cloud_platform(),
            limiter: Arc::new(MintLimiter::new(4, 5)),
        };
        let metrics = Arc::new(Metrics::new(None, "test".into()));
        let account = Arc::new(Account::stored("tokens".into(), store.clone(), &limits, metrics));
        assert!(account.prepare().await);
        store.put("tokens", "v2", &tokens("renewed", 45), &[AWSCURRENT], None).await.unwrap();
        tokio::time::advance(REREAD_EVERY).await;
        // A frozen environment runs no timers: the INVOKE starts the read, no request needed.
        let work = account.start_due_work().expect("a read is due");
        work.await.unwrap();
        let served = account.access_token(&ScopeKey::cloud_platform()).await.unwrap();
        assert_eq!(served.bearer.expose(), "renewed");
        assert!(account.start_due_work().is_none(), "nothing due after: the INVOKE costs nothing");
    }
}
