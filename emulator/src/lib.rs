//! A local Google for tests and `vertex-broker dev`, reached over HTTP exactly like Google.
//!
//! | module | what it emulates |
//! |---|---|
//! | [`iam`] | `iam.googleapis.com/v1` service-account keys: create, list, get, delete, disable, enable |
//! | [`oauth`] | the OAuth token endpoint (JWT-bearer grant: access and ID tokens) and `/oauth2/v3/certs` |
//! | [`sts`] | Google STS `/v1/token`: AWS subject tokens exchanged for federated access tokens |
//! | [`aws`] | AWS subject tokens: SigV4 recomputed, GetCallerIdentity replayed to AWS STS (moto) |
//! | [`aws_sts`] | a minimal AWS STS (`/aws-sts/` GetCallerIdentity) for its own AWS keys, for offline use |
//! | [`iam_credentials`] | IAM Credentials `generateAccessToken`, `generateIdToken`, `signJwt` (impersonation) |
//! | [`vertex`] | Vertex AI, v1 and v1beta1: Gemini's model calls (SSE streams), OpenAI-compatible chat completions, Claude's `:rawPredict`, models.get, context caches, batch jobs |
//! | [`admin`] | `/emulator/v1/...`: seed accounts, inject faults, set propagation delay, read counters |
//! | [`state`] | the world behind them: accounts, keys, issued tokens, faults, counters |
//! | [`google_error`] | Google's error bodies |
//! | [`crypto`] | RSA keys, PEM and RS256 JWTs on aws-lc-rs |
//!
//! Google's behaviour it keeps: RS256 assertions verified against the keys it minted (by `kid`,
//! else any enabled key), at most 10 keys per account, the key-creation org policy, new keys
//! invisible and unusable for a propagation delay, federation only for providers it knows and
//! callers whose signature verifies, impersonation only along bindings, token lifetimes within
//! the org policy, and Google's error bodies throughout.

mod admin;
mod aws;
mod aws_sts;
mod crypto;
mod google_error;
mod iam;
mod iam_credentials;
mod oauth;
mod quota;
mod state;
mod sts;
mod vertex;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;

pub use aws_sts::AwsCredentials;
pub use crypto::{generate_rsa_2048, GeneratedKey};
use state::World;
pub use state::{Counters, Fault, KeyInfo, TOKEN_CREATOR, WORKLOAD_IDENTITY_USER};

/// State shared by every handler.
pub struct Shared {
    world: Mutex<World>,
    /// For calls to AWS STS (subject-token verification).
    http: reqwest::Client,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a pending fault for `endpoint`: waits its delay, then returns its status, if any.
    async fn take_fault(&self, endpoint: &str) -> Option<u16> {
        let fault = self.world().take_fault(endpoint)?;
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        fault.status
    }

    /// Counts a call of `endpoint` as in flight until the returned guard drops.
    fn enter(self: &Arc<Self>, endpoint: &'static str) -> InFlight {
        let mut world = self.world();
        let (now, max) = world.in_flight.entry(endpoint.to_string()).or_default();
        *now += 1;
        *max = (*max).max(*now);
        InFlight { shared: self.clone(), endpoint }
    }

    async fn fault(&self, endpoint: &str) -> Option<google_error::ApiError> {
        self.take_fault(endpoint).await.map(google_error::ApiError::for_status)
    }
}

/// One call being answered (see [`Shared::enter`]).
struct InFlight {
    shared: Arc<Shared>,
    endpoint: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((now, _)) = self.shared.world().in_flight.get_mut(self.endpoint) {
            *now -= 1;
        }
    }
}

/// A running emulator on 127.0.0.1. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Emulator {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts on 127.0.0.1:`port` (0 picks a free one).
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        let shared = Arc::new(Shared { world: Mutex::new(World::new(format!("http://{addr}"))), http });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        // As Google's front ends do: small writes (an SSE event after its headers) go out at once.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { shared, addr, stop: Some(stop) })
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`; use it as `VERTEX_BROKER_IAM_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token endpoint that minted key files name as `token_uri`.
    pub fn token_uri(&self) -> String {
        self.shared.world().token_uri()
    }

    /// Creates the account if needed and mints a key for it that works at once (no propagation
    /// delay, no limit check bypass): returns the JSON key file as Google would issue it.
    pub fn seed_key(&self, email: &str) -> String {
        admin::seed_key(&self.shared, email)
    }

    /// Lets `admin` manage `target`'s keys (as an IAM role binding would).
    pub fn grant_key_admin(&self, target: &str, admin: &str) {
        let mut world = self.shared.world();
        world.account_mut(admin);
        world.account_mut(target).admins.insert(admin.to_string());
    }

    /// Applies (or lifts) the `iam.disableServiceAccountKeyCreation` org policy to `email`.
    pub fn set_key_creation_disabled(&self, email: &str, disabled: bool) {
        self.shared.world().account_mut(email).key_creation_disabled = disabled;
    }

    /// Applies the `iam.serviceAccountKeyExpiryHours` org policy: keys created from now on
    /// expire `expiry` after creation (None lifts it).
    pub fn set_key_expiry(&self, email: &str, expiry: Option<Duration>) {
        self.shared.world().account_mut(email).key_expiry = expiry.and_then(|d| chrono::Duration::from_std(d).ok());
    }

    /// Denies (or grants) `email` the Vertex AI predict permission.
    pub fn set_vertex_denied(&self, email: &str, denied: bool) {
        self.shared.world().account_mut(email).vertex_denied = denied;
    }

    /// Grants `member` (an account's email or a federated `principal://` / `principalSet://`)
    /// `role` on the account `target`, e.g. [`TOKEN_CREATOR`].
    pub fn grant(&self, target: &str, role: &str, member: &str) {
        self.shared.world().account_mut(target).bindings.insert((role.to_string(), member.to_string()));
    }

    /// Lists (or unlists) `email` in the org policy
    /// `constraints/iam.allowServiceAccountCredentialLifetimeExtension` (tokens up to 12 hours).
    pub fn set_lifetime_extension(&self, email: &str, allowed: bool) {
        self.shared.world().account_mut(email).lifetime_extension = allowed;
    }

    /// Creates a workload identity pool provider for AWS account `aws_account`; `audience` is
    /// its full resource name, `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V`.
    pub fn add_aws_provider(&self, audience: &str, aws_account: &str) {
        let provider = state::AwsProvider { aws_account: aws_account.to_string() };
        self.shared.world().aws_providers.insert(audience.to_string(), provider);
    }

    /// Where subject tokens' GetCallerIdentity requests go (moto in tests).
    pub fn set_aws_sts_endpoint(&self, endpoint: &str) {
        self.shared.world().aws_sts_endpoint = Some(endpoint.to_string());
    }

    /// Issues AWS credentials for `role_arn` (`arn:aws:iam::ACCOUNT:role/NAME`) in session
    /// `session`, known only to the emulator's own STS at `/aws-sts/`: the keyless path
    /// with no AWS at all. Make it the STS subject tokens are checked with by passing
    /// `{url}/aws-sts` to [`Self::set_aws_sts_endpoint`].
    pub fn issue_aws_credentials(&self, role_arn: &str, session: &str) -> aws_sts::AwsCredentials {
        let (account, role) = role_arn
            .strip_prefix("arn:aws:iam::")
            .and_then(|rest| rest.split_once(":role/"))
            .unwrap_or(("000000000000", role_arn));
        let arn = format!("arn:aws:sts::{account}:assumed-role/{role}/{session}");
        let id: String = crypto::random_token(16).chars().filter(char::is_ascii_alphanumeric).take(13).collect();
        let access_key_id = format!("ASIAEMU{}", id.to_ascii_uppercase());
        let secret_access_key = crypto::random_token(40);
        let key = aws_sts::AwsKey { secret: secret_access_key.clone(), arn: arn.clone() };
        self.shared.world().aws_keys.insert(access_key_id.clone(), key);
        aws_sts::AwsCredentials { access_key_id, secret_access_key, session_token: crypto::random_token(64), arn }
    }

    /// Grants a federated member (`principal://...` or `principalSet://...`) Vertex AI use.
    pub fn grant_vertex(&self, member: &str) {
        self.shared.world().vertex_members.insert(member.to_string());
    }

    /// Vertex's latency: before the first byte of an answer, and between streamed events.
    pub fn set_vertex_latency(&self, first_byte: Duration, between_events: Duration) {
        self.shared.world().vertex_latency = (first_byte, between_events);
    }

    /// How long new keys stay invisible and unusable.
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.shared.world().propagation_delay = delay;
    }

    /// Allows the token endpoints at most `per_second` calls a second each (`sts`: Google STS,
    /// `token`: the OAuth token endpoint), as Google's per-project quotas do; beyond it, 429
    /// `RESOURCE_EXHAUSTED`.
    pub fn set_quota(&self, endpoint: &str, per_second: u32) {
        self.shared.world().quotas.set(endpoint, per_second);
    }

    /// How many calls of `endpoint` its quota refused.
    pub fn quota_refusals(&self, endpoint: &str) -> u64 {
        self.shared.world().quotas.refused(endpoint)
    }

    /// Queues a fault for the next `fault.count` calls of `fault.endpoint`.
    pub fn inject(&self, fault: Fault) {
        self.shared.world().faults.push_back(fault);
    }

    /// Drops every queued fault, consumed or not.
    pub fn clear_faults(&self) {
        self.shared.world().faults.clear();
    }

    /// Faults not yet consumed.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.world().faults.iter().cloned().collect()
    }

    /// The account's counters (zero for an account never seen).
    pub fn counters(&self, email: &str) -> Counters {
        self.shared.world().counters.get(email).cloned().unwrap_or_default()
    }

    /// How many calls an endpoint (`iam.create`, `token`, ...) received; `vertex@LOCATION` counts
    /// Vertex model calls by the location in their path.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.shared.world().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// A request header of the last Vertex call (never its `Authorization`).
    pub fn last_vertex_header(&self, name: &str) -> Option<String> {
        self.shared.world().vertex.last_headers.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The most calls of an endpoint (`token`) ever answered at the same time.
    pub fn max_in_flight(&self, endpoint: &str) -> u64 {
        self.shared.world().in_flight.get(endpoint).map_or(0, |(_, max)| *max)
    }

    /// Every key of the account, propagated or not.
    pub fn keys(&self, email: &str) -> Vec<KeyInfo> {
        self.shared.world().key_infos(email)
    }

    /// The account an access token belongs to, if it is one we issued and it is unexpired.
    pub fn token_account(&self, access_token: &str) -> Option<String> {
        self.shared.world().bearer(access_token).map(|t| t.email.clone())
    }

    /// The key that signed the assertion an access token was issued for.
    pub fn token_key_id(&self, access_token: &str) -> Option<String> {
        self.shared.world().tokens.get(access_token).map(|t| t.key_id.clone())
    }

    /// Stops the server and waits until it no longer accepts connections.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let sa = "/v1/projects/{project}/serviceAccounts/{email}";
    Router::new()
        .route(&format!("{sa}/keys"), get(iam::list).post(iam::create))
        .route(&format!("{sa}/keys/{{key}}"), get(iam::get).delete(iam::delete).post(iam::action))
        .route("/token", post(oauth::token))
        .route("/v1/token", post(sts::token))
        .route(aws_sts::PATH, post(aws_sts::get_caller_identity))
        .route("/v1/projects/{project}/serviceAccounts/{target}", post(iam_credentials::call))
        .route("/oauth2/v3/certs", get(oauth::certs))
        .merge(vertex::routes())
        .merge(admin::routes())
        // Vertex takes requests with inline data up to about 20 MB (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(shared)
}
