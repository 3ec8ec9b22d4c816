//! `vertex-broker doctor`: walks a configuration's token path one Google or AWS call at a time
//! and says, per step, what it saw and what to fix: the source, the AWS identity, the exchange,
//! each impersonation, the lifetime Google allows, a token minted the way the broker mints it,
//! and the variables each runtime's Google library needs to find the broker.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::broker::account::{diagnose, Account, Diagnosis, GoogleCall, Origin};
use crate::broker::token_cache::CachePolicy;
use crate::broker::{Broker, BrokerSettings};
use crate::config::NoSource;
use crate::google::iam_credentials::{IamCredentials, Impersonation};
use crate::google::token::{Token, TokenClient, DEFAULT_LIFETIME};
use crate::store::SecretStore;

mod clients;
use clients::clients;

/// The audience of the ID token `doctor` mints to prove ID tokens work.
pub const PROBE_AUDIENCE: &str = "https://vertex-broker.invalid/doctor";
use crate::google::scopes::{Audience, CLOUD_PLATFORM};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works, but something is likely to bite (a client variable missing, a knob ignored).
    Warn,
    /// Broken: the report says why and what to change.
    Fail,
    /// Not tried: an earlier step failed.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was seen, never a token or key material.
    pub detail: String,
    /// What to change, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(check: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self { check: check.into(), status, detail: detail.into(), fix }
    }
    fn ok(check: &str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Ok, detail, None)
    }
    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, detail, Some(fix.into()))
    }
    fn refused(check: &str, r: Diagnosis) -> Self {
        Self::new(check, Status::Fail, r.reason, r.fix)
    }
    fn skip(check: &str, why: &str) -> Self {
        Self::new(check, Status::Skip, format!("not tried: {why}"), None)
    }
}

/// What `doctor` reads besides the broker's settings: where it runs.
#[derive(Debug, Clone, Default)]
pub struct Surroundings {
    /// `GCE_METADATA_HOST` and `GCE_METADATA_IP` as the function's runtime will see them.
    pub gce_metadata_host: Option<String>,
    /// See `gce_metadata_host`.
    pub gce_metadata_ip: Option<String>,
    /// The broker's port (`VERTEX_BROKER_PORT`).
    pub port: u16,
    /// An AWS STS GetCallerIdentity URL, to show the AWS identity of a rotated-key setup.
    pub sts_url: Option<String>,
}

/// Runs every check; a failed step skips the ones that need it.
pub async fn run(settings: &BrokerSettings, store: Arc<dyn SecretStore>, around: &Surroundings) -> Vec<Check> {
    let mut checks = vec![source(settings)];
    let broker = match Broker::new(settings, store) {
        Ok(b) => b,
        Err(e) => {
            checks.push(Check::fail("aws identity", e.to_string(), "give the broker AWS credentials and a region"));
            checks.push(clients(around).await);
            return checks;
        }
    };
    let several = broker.accounts().len() > 1;
    for account in broker.accounts() {
        let mut chain = Chain { checks: Vec::new(), settings, around };
        chain.walk(&broker, account).await;
        if several {
            for c in &mut chain.checks {
                c.check = format!("{} [{}]", c.check, account.label());
            }
        }
        checks.extend(chain.checks);
    }
    checks.push(clients(around).await);
    checks
}

/// Which source the default account uses, and what it impersonates.
fn source(settings: &BrokerSettings) -> Check {
    let impersonating = settings.impersonate.as_ref().map(|t| {
        let via = match settings.delegates.as_slice() {
            [] => String::new(),
            d => format!(" via {}", d.join(" -> ")),
        };
        format!("; serving {t}'s tokens (VERTEX_BROKER_IMPERSONATE{via})")
    });
    let impersonating = impersonating.unwrap_or_default();
    if let Some(id) = &settings.token_secret_id {
        return Check::ok(
            "source",
            format!("central minting: tokens the minter wrote to {id}; nothing is minted here"),
        );
    }
    match (&settings.credential_config, settings.secret_ids.as_slice()) {
        (Some(c), others) => {
            let config_target = c
                .impersonated_account()
                .map(|t| format!(", impersonating {t} (the configuration's service_account_impersonation_url)"))
                .unwrap_or_else(|| {
                    ", no impersonation in the configuration (tokens are the federated principal's)".into()
                });
            let more = if others.is_empty() { String::new() } else { format!("; also keys in {}", others.join(", ")) };
            Check::ok(
                "source",
                format!(
                    "workload identity federation from AWS: provider {}{config_target}{impersonating}{more}",
                    c.audience
                ),
            )
        }
        (None, []) => Check::fail("source", NoSource::WHAT, NoSource::FIX),
        (None, ids) => {
            Check::ok("source", format!("rotated key in Secrets Manager: {}{impersonating}", ids.join(", ")))
        }
    }
}

/// One account's path to a token, step by step.
struct Chain<'a> {
    checks: Vec<Check>,
    settings: &'a BrokerSettings,
    around: &'a Surroundings,
}

impl Chain<'_> {
    async fn walk(&mut self, broker: &Broker, account: &Arc<Account>) {
        let timeout = self.settings.http_timeout;
        let caller = match account.origin() {
            Origin::RotatedKey { .. } => self.key(account, timeout).await,
            Origin::Stored { secret_id } => return self.stored(broker, account, secret_id).await,
            Origin::Federation { federation, impersonation } => {
                match federation.caller_arn().await {
                    Ok(arn) => {
                        self.checks.push(Check::ok("aws identity", format!("{arn} (as Google STS will see it)")))
                    }
                    Err(e) => {
                        self.checks.push(Check::fail(
                            "aws identity",
                            format!("signing GetCallerIdentity for {}: {e}", federation.verification_url()),
                            "give the broker AWS credentials and AWS_REGION (Lambda sets them; in `serve`, a \
                             profile, container or instance role)",
                        ));
                    }
                }
                let exchanged = match federation.exchange(&[CLOUD_PLATFORM.to_string()]).await {
                    Ok(t) => {
                        self.checks.push(Check::ok(
                            "exchange",
                            format!("Google STS issued a federated token ({})", lives(&t)),
                        ));
                        Some(t)
                    }
                    Err(e) => {
                        self.checks.push(Check::refused("exchange", diagnose(GoogleCall::Exchange, &e, None)));
                        None
                    }
                };
                match impersonation {
                    Some(to) => self.impersonate("impersonation (configuration)", exchanged, to).await,
                    None => exchanged,
                }
            }
        };
        let served = match account.impersonation() {
            Some(to) => self.impersonate("impersonation", caller, to).await,
            None => caller,
        };
        if self.checks.iter().any(|c| c.status == Status::Fail) {
            for name in ["lifetime", "access token", "id token"] {
                self.checks.push(Check::skip(name, "fix the failed step above first"));
            }
            return;
        }
        self.lifetime(account, served.as_ref());
        self.minted(broker, account).await;
    }

    /// Central minting: the token secret readable, its tokens valid, how long ago the minter
    /// wrote them, and a token served from it as clients get one. Nothing is minted here.
    async fn stored(&mut self, broker: &Broker, account: &Arc<Account>, secret_id: &str) {
        account.prepare().await;
        let (held, error) = account.stored_status().unwrap_or_default();
        let now = chrono::Utc::now();
        self.checks.push(match held {
            None => Check::fail(
                "token secret",
                format!("{secret_id}: {}", error.unwrap_or_else(|| "it holds no value yet".into())),
                "run the minter once (`vertex-broker mint`) or check its schedule; this role needs \
                 secretsmanager:GetSecretValue on the token secret",
            ),
            Some(h) => {
                let left = h.least_life_left(now).unwrap_or(0);
                let what = format!(
                    "{secret_id}: written {} s ago by the minter; {} access and {} ID token(s), the shortest with {left} s left",
                    h.age(now),
                    h.access_tokens.len(),
                    h.id_tokens.len()
                );
                if left > 0 {
                    Check::ok("token secret", what)
                } else {
                    Check::fail("token secret", what, "the minter has stopped renewing: check its schedule and its last run's errors")
                }
            }
        });
        self.checks.push(match account.access_token(broker.default_scopes()).await {
            Ok(t) => Check::ok("access token", format!("served from the token secret ({})", lives(&t))),
            Err(e) => Check::fail(
                "access token",
                e.to_string(),
                "the minter's VERTEX_BROKER_SCOPES must include this broker's scopes",
            ),
        });
    }

    /// The key in the secret, and a token of the key's own account.
    async fn key(&mut self, account: &Arc<Account>, timeout: Duration) -> Option<Token> {
        if let (Some(aws), Some(url)) = (&self.settings.aws, &self.around.sts_url) {
            let http = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
            self.checks.push(match aws.caller_arn(&http, url).await {
                Ok(arn) => Check::ok("aws identity", format!("{arn} (reads the secret)")),
                Err(e) => Check::new("aws identity", Status::Warn, e, None),
            });
        }
        let current = match account.key().await {
            Some(Ok(c)) => c,
            None => return None,
            Some(Err(e)) => {
                self.checks.push(Check::fail(
                    "secret",
                    e.message,
                    "check the secret id, that it holds a JSON key at AWSCURRENT (`vertex-broker status SECRET`), and \
                     that this role may call secretsmanager:GetSecretValue and DescribeSecret on it",
                ));
                return None;
            }
        };
        self.checks
            .push(Check::ok("secret", format!("AWSCURRENT version {} holds {}", current.version_id, current.key)));
        let tokens = TokenClient::new(timeout);
        match tokens.access_token(&current.key, &[CLOUD_PLATFORM.to_string()]).await {
            Ok(t) => {
                self.checks.push(Check::ok("key token", format!("Google accepted the key ({})", lives(&t))));
                Some(t)
            }
            Err(e) => {
                self.checks.push(Check::fail(
                    "key token",
                    format!("Google refused the key: {e}"),
                    "the key may be revoked or disabled: `vertex-broker status SECRET`, then `vertex-broker rotate SECRET`",
                ));
                None
            }
        }
    }

    /// Impersonates `to` with `caller`'s token.
    async fn impersonate(&mut self, name: &str, caller: Option<Token>, to: &Impersonation) -> Option<Token> {
        let Some(caller) = caller else {
            self.checks.push(Check::skip(name, "no caller token"));
            return None;
        };
        let iam = IamCredentials::new(self.settings.http_timeout);
        match iam.access_token(&caller.bearer, to, &[CLOUD_PLATFORM.to_string()]).await {
            Ok(t) => {
                self.checks
                    .push(Check::ok(name, format!("IAM Credentials issued {}'s token ({})", to.target, lives(&t))));
                Some(t)
            }
            Err(e) => {
                self.checks.push(Check::refused(name, diagnose(GoogleCall::Impersonate, &e, Some(to.lifetime))));
                None
            }
        }
    }

    /// The lifetime asked for and what Google granted; how early the broker renews.
    fn lifetime(&mut self, account: &Account, served: Option<&Token>) {
        let asked = match account.lifetime() {
            Some(lifetime) => lifetime,
            None => {
                let note = if self.settings.token_lifetime != DEFAULT_LIFETIME {
                    Check::new(
                        "lifetime",
                        Status::Warn,
                        "tokens live as Google issues them (one hour): VERTEX_BROKER_TOKEN_LIFETIME applies only when \
                         impersonating",
                        Some(
                            "set VERTEX_BROKER_IMPERSONATE for shorter tokens, or unset VERTEX_BROKER_TOKEN_LIFETIME"
                                .into(),
                        ),
                    )
                } else {
                    Check::ok("lifetime", "tokens live as Google issues them (one hour); renewed with 600 s left")
                };
                self.checks.push(note);
                return;
            }
        };
        let policy = CachePolicy::default().for_lifetime(asked);
        self.checks.push(match served {
            Some(t) => Check::ok(
                "lifetime",
                format!(
                    "asked {} s, Google granted {} s; renewed with {} s left",
                    asked.as_secs(),
                    (t.expires_at - chrono::Utc::now()).num_seconds().max(0),
                    policy.refresh_ahead.as_secs()
                ),
            ),
            None => Check::skip("lifetime", "no token was issued"),
        });
    }

    /// An access token and an ID token through the broker's own mint path, as clients get them.
    async fn minted(&mut self, broker: &Broker, account: &Arc<Account>) {
        let email = account.served_email().await.ok().flatten();
        let who = email.as_deref().unwrap_or("the federated principal");
        self.checks.push(match account.access_token(broker.default_scopes()).await {
            Ok(t) => Check::ok("access token", format!("{who}, scopes {} ({})", broker.default_scopes(), lives(&t))),
            Err(e) => Check::fail(
                "access token",
                e.to_string(),
                "fix the first failed step above; the broker answers clients 503 with this reason",
            ),
        });
        self.checks.push(match account.id_token(&Audience::parse(PROBE_AUDIENCE).expect("a valid audience")).await {
            Ok(t) => Check::ok("id token", format!("{who}, audience {PROBE_AUDIENCE} ({})", lives(&t))),
            Err(e) if email.is_none() => Check::new("id token", Status::Warn, e.to_string(), None),
            Err(e) => Check::fail("id token", e.to_string(), "fix the first failed step above"),
        });
    }
}

/// "expires in N s", from a token, never the token.
fn lives(t: &Token) -> String {
    format!("expires in {} s", (t.expires_at - chrono::Utc::now()).num_seconds().max(0))
}

/// A configuration error as the one failed check of a report.
pub fn configuration_failure(message: String) -> Vec<Check> {
    vec![Check::fail("configuration", message, "fix the variable named, then run `vertex-broker doctor` again")]
}

/// True when nothing failed.
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}
