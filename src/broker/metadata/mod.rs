//! The GCE metadata-server protocol as Google's client libraries use it, plus the operator
//! status endpoint. Pure request -> reply logic; `server` moves the bytes.
//!
//! Every request first passes [`guard::check`] (who may ask); [`Route::parse`] then turns the
//! path and query into a route with validated scopes or audience (pure, no I/O: the fuzz target
//! drives it), and [`answer`] serves it.

use chrono::Utc;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode, Uri};
use serde_json::json;

use super::guard;
use super::refusal::Refusal;
use super::Broker;
use crate::config::TokenEndpoints;
use crate::google::scopes::{Audience, ScopeKey};

const V1: &str = "/computeMetadata/v1";
/// `expires_in` of the gateway token: an hour, like Google's; it is valid as long as the broker runs.
const GATEWAY_TOKEN_LIFE: i64 = 3600;

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body: text or JSON.
    pub body: String,
    /// Seconds for `Retry-After`, on refusals that may be retried.
    pub retry_after: Option<u64>,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    fn text(body: impl Into<String>) -> Self {
        Self { status: StatusCode::OK, content_type: TEXT, body: body.into(), retry_after: None }
    }
    fn json(body: String) -> Self {
        Self { status: StatusCode::OK, content_type: JSON, body, retry_after: None }
    }
}

/// A refusal as the metadata server answers it: one line of text, newline-terminated.
impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        let mut body = r.message;
        body.push('\n');
        Self { status: r.status, content_type: TEXT, body, retry_after: r.retry_after }
    }
}

/// Applies the guards, then routes.
pub async fn handle(broker: &Broker, method: &Method, uri: &Uri, headers: &HeaderMap) -> Reply {
    if let Err(refusal) = guard::check(method, uri, headers) {
        return refusal.into();
    }
    match Route::parse(uri.path(), uri.query()) {
        Ok(route) => answer(broker, route).await,
        Err(refusal) => refusal.into(),
    }
}

/// A request the broker answers, its inputs validated.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// A fixed directory listing.
    Listing(&'static str),
    /// `project/project-id`.
    ProjectId,
    /// `universe/universe-domain` (`googleapis.com`).
    UniverseDomain,
    /// `service-accounts/`; with `?recursive=true` every account's details as JSON (Java's
    /// google-auth-library reads the default account's email that way).
    ListAccounts {
        /// Asked with `?recursive=true`.
        recursive: bool,
    },
    /// The broker's own `/status` (JSON, for operators).
    Status,
    /// `.../service-accounts/{name}/{leaf}`; `name` is `default` or an email.
    Account {
        /// The account asked for.
        name: &'a str,
        /// What of it.
        leaf: Leaf,
    },
}

/// What is asked of one account.
#[derive(Debug, PartialEq, Eq)]
pub enum Leaf {
    /// `?recursive=true`: aliases, email and scopes as JSON.
    Recursive,
    /// The account's directory listing.
    Listing,
    /// `email`.
    Email,
    /// `aliases`.
    Aliases,
    /// `scopes`, one per line.
    Scopes,
    /// An access token; `None` means the default scopes.
    Token(Option<ScopeKey>),
    /// An ID token for a validated audience.
    Identity(Audience),
}

impl<'a> Route<'a> {
    /// The route for a request target; `Err` is the answer (404, or 400 for bad input).
    pub fn parse(path: &'a str, query: Option<&str>) -> Result<Self, Refusal> {
        Ok(match path {
            "/" => Route::Listing("computeMetadata/\n"),
            "/computeMetadata/" => Route::Listing("v1/\n"),
            "/computeMetadata/v1" | "/computeMetadata/v1/" => Route::Listing("instance/\nproject/\nuniverse/\n"),
            "/computeMetadata/v1/instance" | "/computeMetadata/v1/instance/" => Route::Listing("service-accounts/\n"),
            "/computeMetadata/v1/project" | "/computeMetadata/v1/project/" => Route::Listing("project-id\n"),
            "/computeMetadata/v1/project/project-id" => Route::ProjectId,
            "/computeMetadata/v1/universe/universe-domain" => Route::UniverseDomain,
            "/computeMetadata/v1/instance/service-accounts" | "/computeMetadata/v1/instance/service-accounts/" => {
                Route::ListAccounts { recursive: Params::parse(query.unwrap_or("")).flag("recursive") }
            }
            "/vertex-broker/v1/status" => Route::Status,
            _ => match path.strip_prefix(V1).and_then(|p| p.strip_prefix("/instance/service-accounts/")) {
                Some(rest) => {
                    let (name, leaf) = rest.split_once('/').unwrap_or((rest, ""));
                    let params = Params::parse(query.unwrap_or(""));
                    let leaf = match leaf {
                        "" if params.flag("recursive") => Leaf::Recursive,
                        "" => Leaf::Listing,
                        "email" => Leaf::Email,
                        "aliases" => Leaf::Aliases,
                        "scopes" => Leaf::Scopes,
                        "token" => match params.get("scopes") {
                            None => Leaf::Token(None),
                            Some(raw) => Leaf::Token(Some(ScopeKey::parse(raw).map_err(Refusal::invalid)?)),
                        },
                        "identity" => Leaf::Identity(
                            Audience::parse(params.get("audience").unwrap_or("")).map_err(Refusal::invalid)?,
                        ),
                        _ => return Err(not_found(path)),
                    };
                    Route::Account { name, leaf }
                }
                None => return Err(not_found(path)),
            },
        })
    }
}

/// The query's parameters, URL-decoded (bytes that are not UTF-8 become U+FFFD).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Self {
        Self(form_urlencoded::parse(query.as_bytes()).into_owned().collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.is_empty() || v == "true" || v == "1")
    }
}

/// Serves a parsed route.
pub async fn answer(broker: &Broker, route: Route<'_>) -> Reply {
    match route {
        Route::Listing(text) => Reply::text(text),
        Route::ProjectId => project_id(broker).await,
        Route::UniverseDomain => Reply::text("googleapis.com"),
        Route::ListAccounts { recursive: false } => list_accounts(broker).await,
        Route::ListAccounts { recursive: true } => all_accounts(broker).await,
        Route::Status => Reply::json(super::status::report(broker)),
        Route::Account { name, leaf } => account_route(broker, name, leaf).await,
    }
}

fn not_found(path: &str) -> Refusal {
    Refusal::not_found(format!("{} is not a metadata path this server answers", crate::text::printable(path)))
}

/// VERTEX_BROKER_PROJECT_ID, else the project of the account served (a key's own project, or
/// the impersonated account's), else the federation pool's project number.
async fn project_id(broker: &Broker) -> Reply {
    if let Some(p) = broker.project_id() {
        return Reply::text(p.to_string());
    }
    let Some(account) = broker.account("default").await else { return not_found("project-id").into() };
    match account.project().await {
        Ok(Some(p)) => Reply::text(p),
        Ok(None) => Refusal::not_found("no project is known; set VERTEX_BROKER_PROJECT_ID").into(),
        Err(e) => Refusal::unavailable("service-account key", e).into(),
    }
}

async fn list_accounts(broker: &Broker) -> Reply {
    let mut body = String::from("default/\n");
    for a in broker.accounts() {
        if let Ok(Some(email)) = a.served_email().await {
            body.push_str(&email);
            body.push_str("/\n");
        }
    }
    Reply::text(body)
}

/// `{"default": {...}, "EMAIL": {...}}`, each as `service-accounts/NAME/?recursive=true` answers.
async fn all_accounts(broker: &Broker) -> Reply {
    let mut all = serde_json::Map::new();
    for (i, a) in broker.accounts().iter().enumerate() {
        let email = match a.served_email().await {
            Ok(email) => email.unwrap_or_else(|| "default".to_string()),
            Err(e) => return Refusal::unavailable("service-account key", e).into(),
        };
        let aliases: &[&str] = if i == 0 { &["default"] } else { &[] };
        let details = json!({"aliases": aliases, "email": email, "scopes": broker.default_scopes()});
        if i == 0 {
            all.insert("default".to_string(), details.clone());
        }
        all.insert(email, details);
    }
    Reply::json(serde_json::Value::Object(all).to_string())
}

async fn account_route(broker: &Broker, name: &str, leaf: Leaf) -> Reply {
    let Some(account) = broker.account(name).await else {
        return Refusal::not_found(format!(
            "no service account {}; this broker serves `default` and the emails under service-accounts/",
            crate::text::printable(name)
        ))
        .into();
    };
    let is_default = broker.accounts().first().is_some_and(|a| std::sync::Arc::ptr_eq(a, &account));
    let aliases: &[&str] = if is_default { &["default"] } else { &[] };
    // Only these answers need the key itself; token and identity go straight to the cache.
    // Federation without impersonation serves a principal with no email: `default` routes
    // Google's libraries back here.
    let email = || async {
        match account.served_email().await {
            Ok(email) => Ok(email.unwrap_or_else(|| "default".to_string())),
            Err(e) => Err(Refusal::unavailable("service-account key", e).into()),
        }
    };
    match leaf {
        Leaf::Recursive => match email().await {
            Ok(email) => {
                Reply::json(json!({"aliases": aliases, "email": email, "scopes": broker.default_scopes()}).to_string())
            }
            Err(reply) => reply,
        },
        Leaf::Listing => Reply::text("aliases\nemail\nidentity\nscopes\ntoken\n"),
        Leaf::Email => email().await.map(Reply::text).unwrap_or_else(|reply| reply),
        Leaf::Aliases => Reply::text(aliases.join("\n")),
        Leaf::Scopes => Reply::text(broker.default_scopes().scopes().collect::<Vec<_>>().join("\n") + "\n"),
        Leaf::Token(_) | Leaf::Identity(_) if broker.token_endpoints() == TokenEndpoints::Off => Refusal::new(
            StatusCode::FORBIDDEN,
            "token endpoints are off here (VERTEX_BROKER_TOKEN_ENDPOINTS=off): function code never \
             holds a Google token; call Vertex through the gateway, http://127.0.0.1:PORT/vertex/v1/...",
        )
        .into(),
        Leaf::Identity(_) if broker.token_endpoints() == TokenEndpoints::Gateway => Refusal::new(
            StatusCode::FORBIDDEN,
            "ID tokens are not handed out here (VERTEX_BROKER_TOKEN_ENDPOINTS=gateway): function code \
             holds no Google credential; set VERTEX_BROKER_TOKEN_ENDPOINTS=on if it must call services with ID tokens",
        )
        .into(),
        // Useless at Google: SDKs that insist on a credential carry it to the gateway, which
        // replaces it with the account's token.
        Leaf::Token(_) if broker.token_endpoints() == TokenEndpoints::Gateway => {
            broker.metrics().token_request();
            Reply::json(token_json(broker.gateway().caller_token().expose(), GATEWAY_TOKEN_LIFE))
        }
        Leaf::Token(scopes) => {
            broker.metrics().token_request();
            let key = scopes.as_ref().unwrap_or(broker.default_scopes());
            match account.access_token(key).await {
                Ok(t) => Reply::json(token_json(t.bearer.expose(), (t.expires_at - Utc::now()).num_seconds().max(1))),
                Err(e) => Refusal::no_token("access token", e).into(),
            }
        }
        Leaf::Identity(audience) => {
            broker.metrics().token_request();
            match account.id_token(&audience).await {
                Ok(t) => Reply::text(t.bearer.expose().to_string()),
                Err(e) => Refusal::no_token("ID token", e).into(),
            }
        }
    }
}

/// `{"access_token":...,"expires_in":N,"token_type":"Bearer"}` built directly: the hot path.
fn token_json(token: &str, expires_in: i64) -> String {
    let token = if token.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
        std::borrow::Cow::Borrowed(token)
    } else {
        std::borrow::Cow::Owned(serde_json::to_string(token).unwrap_or_default().trim_matches('"').to_string())
    };
    let mut body = String::with_capacity(token.len() + 64);
    body.push_str("{\"access_token\":\"");
    body.push_str(&token);
    body.push_str("\",\"expires_in\":");
    body.push_str(&expires_in.to_string());
    body.push_str(",\"token_type\":\"Bearer\"}");
    body
}

#[cfg(test)]
mod tests;
