//! The emulator's world: service accounts, their keys, issued tokens, faults and counters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, GeneratedKey, SigningKey};

/// Google's limit on user-managed keys per service account.
pub const MAX_KEYS: usize = 10;
/// Longest assertion lifetime Google accepts.
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;
/// Clock skew tolerated on `iat` / `exp`.
pub const CLOCK_SKEW: i64 = 300;
/// Lifetime of issued access and ID tokens.
pub const TOKEN_LIFETIME: i64 = 3600;

pub struct Key {
    pub id: String,
    pub public_der: Vec<u8>,
    pub created: DateTime<Utc>,
    /// Before this instant the key is invisible to list/get and cannot mint tokens.
    pub propagated_at: DateTime<Utc>,
    pub disabled: bool,
    /// Set when the org policy `iam.serviceAccountKeyExpiryHours` applied at creation.
    pub valid_before: Option<DateTime<Utc>>,
}

impl Key {
    pub fn propagated(&self, now: DateTime<Utc>) -> bool {
        now >= self.propagated_at
    }
}

#[derive(Default)]
pub struct Account {
    pub keys: Vec<Key>,
    /// Accounts (other than itself) allowed to manage this account's keys.
    pub admins: HashSet<String>,
    /// The org policy `iam.disableServiceAccountKeyCreation` applies.
    pub key_creation_disabled: bool,
    /// The account lacks `aiplatform.endpoints.predict`.
    pub vertex_denied: bool,
    /// `iam.serviceAccountKeyExpiryHours`: new keys expire this long after creation.
    pub key_expiry: Option<chrono::Duration>,
    pub client_id: String,
    /// IAM bindings on the account as a resource: (role, member). A member is another
    /// account's email or a federated `principal://` / `principalSet://` identifier.
    pub bindings: HashSet<(String, String)>,
    /// Listed in the org policy `constraints/iam.allowServiceAccountCredentialLifetimeExtension`:
    /// access tokens may live up to 12 hours.
    pub lifetime_extension: bool,
}

/// Roles that carry `iam.serviceAccounts.getAccessToken`, `getOpenIdToken` and `signJwt`.
pub const TOKEN_CREATOR: &str = "roles/iam.serviceAccountTokenCreator";
/// The role a workload identity pool's principals are bound with to impersonate an account.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

/// A workload identity pool's AWS provider.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    /// The only AWS account whose callers it accepts.
    pub aws_account: String,
}

pub struct IssuedToken {
    /// The account it acts as, or the federated `principal://` it was exchanged for.
    pub email: String,
    /// The key whose signature earned this token (empty for exchanged and impersonated tokens).
    pub key_id: String,
    /// For a federated token: the `principalSet://` identifiers its principal belongs to.
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    pub expires: DateTime<Utc>,
}

/// A failure (or slowness) injected into the next `count` calls of one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fault {
    /// `iam.create`, `iam.list`, `iam.get`, `iam.delete`, `iam.disable`, `iam.enable`, `token`, `sts`,
    /// `iamcredentials`, `vertex`.
    pub endpoint: String,
    /// How many consecutive calls it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// HTTP status to answer with (Google's body for it); none means the call proceeds after the delay.
    #[serde(default)]
    pub status: Option<u16>,
    /// Delay before the call is processed (a client with a shorter timeout sees a timeout).
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

/// Per-account counters that tests read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// Access tokens issued to it: for its key assertions, by impersonation, or by federation.
    pub access_tokens: u64,
    /// ID tokens issued.
    pub id_tokens: u64,
    /// Keys created, seeded or through the IAM API.
    pub keys_created: u64,
    /// Keys deleted through the IAM API.
    pub keys_deleted: u64,
    /// Its assertions the token endpoint refused.
    pub token_failures: u64,
}

/// The public view of a key, for tests and the admin API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyInfo {
    /// The key's id, as in its resource name.
    pub id: String,
    /// Disabled through the IAM API.
    pub disabled: bool,
    /// Past its propagation delay: listed and usable.
    pub propagated: bool,
    /// When it was created.
    pub created: DateTime<Utc>,
}

pub struct World {
    pub base_url: String,
    pub accounts: BTreeMap<String, Account>,
    pub tokens: HashMap<String, IssuedToken>,
    pub faults: VecDeque<Fault>,
    pub counters: HashMap<String, Counters>,
    pub calls: HashMap<String, u64>,
    /// Per endpoint: calls being answered now, and the most ever at once.
    pub in_flight: HashMap<String, (u64, u64)>,
    pub propagation_delay: Duration,
    pub signing_key: SigningKey,
    /// Workload identity pool providers by full resource name (`//iam.googleapis.com/projects/...`).
    pub aws_providers: HashMap<String, AwsProvider>,
    /// Where GetCallerIdentity requests from subject tokens are sent (AWS STS, or moto).
    pub aws_sts_endpoint: Option<String>,
    /// Federated members (`principal://...`, `principalSet://...`) granted Vertex AI use.
    pub vertex_members: HashSet<String>,
    /// AWS keys the emulator's own STS (`/aws-sts/`) issued, by access key id.
    pub aws_keys: HashMap<String, crate::aws_sts::AwsKey>,
    /// Vertex: wait before the first byte, and between streamed events.
    pub vertex_latency: (Duration, Duration),
    /// Vertex's caches, batch jobs and the last call's headers.
    pub vertex: crate::vertex::VertexState,
    /// Per-second quotas of the token endpoints.
    pub quotas: crate::quota::Quotas,
}

impl World {
    pub fn new(base_url: String) -> Self {
        Self {
            base_url,
            accounts: BTreeMap::new(),
            tokens: HashMap::new(),
            faults: VecDeque::new(),
            counters: HashMap::new(),
            calls: HashMap::new(),
            in_flight: HashMap::new(),
            propagation_delay: Duration::ZERO,
            signing_key: SigningKey::generate(),
            aws_providers: HashMap::new(),
            aws_sts_endpoint: None,
            vertex_members: HashSet::new(),
            aws_keys: HashMap::new(),
            vertex_latency: (Duration::ZERO, Duration::ZERO),
            vertex: Default::default(),
            quotas: Default::default(),
        }
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url)
    }

    pub fn account_mut(&mut self, email: &str) -> &mut Account {
        self.accounts
            .entry(email.to_string())
            .or_insert_with(|| Account { client_id: numeric_id(email), ..Account::default() })
    }

    pub fn counters_mut(&mut self, email: &str) -> &mut Counters {
        self.counters.entry(email.to_string()).or_default()
    }

    /// Counts the call and takes the first pending fault for `endpoint`, if any.
    pub fn take_fault(&mut self, endpoint: &str) -> Option<Fault> {
        *self.calls.entry(endpoint.to_string()).or_default() += 1;
        let pos = self.faults.iter().position(|f| f.endpoint == endpoint)?;
        let fault = self.faults[pos].clone();
        if self.faults[pos].count <= 1 {
            self.faults.remove(pos);
        } else {
            self.faults[pos].count -= 1;
        }
        Some(fault)
    }

    /// Adds a key generated outside the lock; `propagate_now` skips the propagation delay.
    pub fn add_key(&mut self, email: &str, generated: &GeneratedKey, propagate_now: bool) -> String {
        let now = Utc::now();
        let delay = if propagate_now {
            chrono::Duration::zero()
        } else {
            chrono::Duration::from_std(self.propagation_delay).unwrap_or_else(|_| chrono::Duration::zero())
        };
        let id = crypto::random_hex(20);
        let account = self.account_mut(email);
        let valid_before = account.key_expiry.map(|e| now + e);
        account.keys.push(Key {
            id: id.clone(),
            public_der: generated.public_der.clone(),
            created: now,
            propagated_at: now + delay,
            disabled: false,
            valid_before,
        });
        self.counters_mut(email).keys_created += 1;
        id
    }

    /// The JSON key file Google hands out for a new key (fields in Google's order).
    pub fn key_file(&self, email: &str, key_id: &str, private_pem: &str) -> String {
        let account = &self.accounts[email];
        let file = KeyFile {
            r#type: "service_account",
            project_id: project_of(email),
            private_key_id: key_id,
            private_key: private_pem,
            client_email: email,
            client_id: &account.client_id,
            auth_uri: "https://accounts.google.com/o/oauth2/auth",
            token_uri: self.token_uri(),
            auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
            client_x509_cert_url: format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                email.replace('@', "%40")
            ),
            universe_domain: "googleapis.com",
        };
        let mut text = serde_json::to_string_pretty(&file).expect("key file serializes");
        text.push('\n');
        text
    }

    pub fn key_infos(&self, email: &str) -> Vec<KeyInfo> {
        let now = Utc::now();
        self.accounts
            .get(email)
            .map(|a| {
                a.keys
                    .iter()
                    .map(|k| KeyInfo {
                        id: k.id.clone(),
                        disabled: k.disabled,
                        propagated: k.propagated(now),
                        created: k.created,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The account behind a bearer token, when the token is one we issued and still valid.
    pub fn bearer(&self, token: &str) -> Option<&IssuedToken> {
        self.tokens.get(token).filter(|t| t.expires > Utc::now())
    }

    /// Whether the holder of `token` holds one of `roles` on the account `target`.
    pub fn has_role_on(&self, token: &IssuedToken, target: &str, roles: &[&str]) -> bool {
        let Some(account) = self.accounts.get(target) else { return false };
        std::iter::once(&token.email)
            .chain(&token.groups)
            .any(|member| roles.iter().any(|role| account.bindings.contains(&(role.to_string(), member.clone()))))
    }

    /// Whether the token's identity may call Vertex AI: a service account not denied it, or a
    /// federated principal granted it (directly or through a principal set).
    pub fn may_use_vertex(&self, token: &IssuedToken) -> bool {
        match self.accounts.get(&token.email) {
            Some(account) => !account.vertex_denied,
            None => std::iter::once(&token.email).chain(&token.groups).any(|m| self.vertex_members.contains(m)),
        }
    }
}

#[derive(Serialize)]
struct KeyFile<'a> {
    r#type: &'a str,
    project_id: &'a str,
    private_key_id: &'a str,
    private_key: &'a str,
    client_email: &'a str,
    client_id: &'a str,
    auth_uri: &'a str,
    token_uri: String,
    auth_provider_x509_cert_url: &'a str,
    client_x509_cert_url: String,
    universe_domain: &'a str,
}

/// `sa@PROJECT.iam.gserviceaccount.com` -> `PROJECT`.
pub fn project_of(email: &str) -> &str {
    email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .unwrap_or("emulator-project")
}

/// A stable 21-digit id, as Google gives each account.
fn numeric_id(email: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in email.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("1{:020}", h)
}
