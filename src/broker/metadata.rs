//! The GCE metadata-server protocol as Google's client libraries use it, plus the operator
//! status endpoint. Pure request -> reply logic; `server` moves the bytes.
//!
//! Guards, before anything else: any `X-Forwarded-For` -> 403 (a proxy is relaying someone
//! else's request), a method other than GET -> 405, no `Metadata-Flavor: Google` -> 403 (the
//! SSRF guard Google's own server applies), an over-long URI -> 414.

use std::sync::atomic::Ordering;

use chrono::Utc;
use serde_json::json;

use super::token_cache::Unavailable;
use super::Broker;

/// Longest request target accepted (path and query).
pub const MAX_URI: usize = 4096;
const V1: &str = "/computeMetadata/v1";

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub retry_after: Option<u64>,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    fn text(body: impl Into<String>) -> Self {
        Self { status: 200, content_type: TEXT, body: body.into(), retry_after: None }
    }
    fn json(body: String) -> Self {
        Self { status: 200, content_type: JSON, body, retry_after: None }
    }
    fn error(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Self { status, content_type: TEXT, body, retry_after: None }
    }
    fn unavailable(what: &str, e: Unavailable) -> Self {
        let mut r = Self::error(
            503,
            format!("vertex-broker: no valid {what}: {}. Retrying upstream in {} s.", e.message, e.retry_after),
        );
        r.retry_after = Some(e.retry_after);
        r
    }
}

/// The request facts the guards and routes need.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub metadata_flavor: Option<&'a [u8]>,
    pub forwarded: bool,
}

/// Applies the guards, then routes.
pub async fn handle(broker: &Broker, req: Request<'_>) -> Reply {
    if req.forwarded {
        return Reply::error(403, "vertex-broker: requests relayed through a proxy (X-Forwarded-For) are refused");
    }
    if req.method != "GET" {
        return Reply::error(405, format!("vertex-broker: method {} not allowed; use GET", req.method));
    }
    if req.metadata_flavor != Some(b"Google") {
        return Reply::error(403, "vertex-broker: missing request header 'Metadata-Flavor: Google'");
    }
    if req.path.len() + req.query.map_or(0, str::len) > MAX_URI {
        return Reply::error(414, format!("vertex-broker: request target longer than {MAX_URI} bytes"));
    }
    let params = Params::parse(req.query.unwrap_or(""));
    route(broker, req.path, &params).await
}

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

async fn route(broker: &Broker, path: &str, params: &Params) -> Reply {
    match path {
        "/" => Reply::text("computeMetadata/\n"),
        "/computeMetadata/" => Reply::text("v1/\n"),
        "/computeMetadata/v1" | "/computeMetadata/v1/" => Reply::text("instance/\nproject/\nuniverse/\n"),
        "/computeMetadata/v1/instance" | "/computeMetadata/v1/instance/" => Reply::text("service-accounts/\n"),
        "/computeMetadata/v1/project" | "/computeMetadata/v1/project/" => Reply::text("project-id\n"),
        "/computeMetadata/v1/project/project-id" => project_id(broker).await,
        "/computeMetadata/v1/universe/universe-domain" => Reply::text("googleapis.com"),
        "/computeMetadata/v1/instance/service-accounts" | "/computeMetadata/v1/instance/service-accounts/" => {
            list_accounts(broker).await
        }
        "/vertex-broker/v1/status" => status(broker),
        _ => match path.strip_prefix(V1).and_then(|p| p.strip_prefix("/instance/service-accounts/")) {
            Some(rest) => account_route(broker, rest, params).await,
            None => not_found(path),
        },
    }
}

fn not_found(path: &str) -> Reply {
    Reply::error(404, format!("vertex-broker: {path} is not a metadata path this server answers"))
}

async fn project_id(broker: &Broker) -> Reply {
    let Some(account) = broker.account("default").await else { return not_found("project-id") };
    match account.key(false).await {
        Ok(k) => match k.key.project_id() {
            Some(p) => Reply::text(p.to_string()),
            None => Reply::error(404, "vertex-broker: the key names no project"),
        },
        Err(e) => Reply::unavailable("service-account key", e),
    }
}

async fn list_accounts(broker: &Broker) -> Reply {
    let mut body = String::from("default/\n");
    for a in broker.accounts() {
        if let Ok(k) = a.key(false).await {
            body.push_str(k.key.client_email());
            body.push_str("/\n");
        }
    }
    Reply::text(body)
}

async fn account_route(broker: &Broker, rest: &str, params: &Params) -> Reply {
    let (name, leaf) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(account) = broker.account(name).await else {
        return Reply::error(404, format!("vertex-broker: no service account {name:?}; this broker serves `default` and the emails under service-accounts/"));
    };
    let is_default = broker.accounts().first().is_some_and(|a| std::sync::Arc::ptr_eq(a, &account));
    let aliases: &[&str] = if is_default { &["default"] } else { &[] };
    // Only these answers need the key itself; token and identity go straight to the cache.
    let email = || async {
        match account.key(false).await {
            Ok(k) => Ok(k.key.client_email().to_string()),
            Err(e) => Err(Reply::unavailable("service-account key", e)),
        }
    };
    match leaf {
        "" if params.flag("recursive") => match email().await {
            Ok(email) => {
                Reply::json(json!({"aliases": aliases, "email": email, "scopes": broker.default_scopes()}).to_string())
            }
            Err(reply) => reply,
        },
        "" => Reply::text("aliases\nemail\nidentity\nscopes\ntoken\n"),
        "email" => email().await.map(Reply::text).unwrap_or_else(|reply| reply),
        "aliases" => Reply::text(aliases.join("\n")),
        "scopes" => Reply::text(broker.default_scopes().join("\n") + "\n"),
        "token" => {
            let custom;
            let key = match params.get("scopes") {
                Some(raw) => match super::scope_key(raw) {
                    Some(k) => {
                        custom = k;
                        custom.as_str()
                    }
                    None => {
                        return Reply::error(
                            400,
                            "vertex-broker: scopes= is empty; give one or more scope URLs, comma separated",
                        )
                    }
                },
                None => broker.default_scope_key(),
            };
            match account.access_token(key).await {
                Ok(t) => Reply::json(token_json(t.secret.expose(), (t.expires_at - Utc::now()).num_seconds().max(1))),
                Err(e) => Reply::unavailable("access token", e),
            }
        }
        "identity" => match params.get("audience").filter(|a| !a.is_empty()) {
            None => {
                Reply::error(400, "vertex-broker: identity needs audience=, the URL of the service the token is for")
            }
            Some(audience) => match account.id_token(audience).await {
                Ok(t) => Reply::text(t.secret.expose().to_string()),
                Err(e) => Reply::unavailable("ID token", e),
            },
        },
        _ => not_found(&format!("{V1}/instance/service-accounts/{rest}")),
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

/// `/vertex-broker/v1/status`: what is in use and how it is going; never a token or key.
fn status(broker: &Broker) -> Reply {
    let now = Utc::now();
    let accounts: Vec<_> = broker
        .accounts()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let current = a.current();
            let expiry = |t: Option<chrono::DateTime<Utc>>| {
                t.map(|t| json!({"expires_at": t.to_rfc3339(), "expires_in": (t - now).num_seconds()}))
            };
            json!({
                "alias": if i == 0 { Some("default") } else { None },
                "secret_id": a.secret_id,
                "email": current.as_ref().map(|c| c.key.client_email()),
                "key_id": current.as_ref().map(|c| c.key.private_key_id()),
                "secret_version": current.as_ref().map(|c| c.version_id.as_str()),
                "secret_error": a.key_error(),
                "access_tokens": a.access_snapshot().into_iter().map(|(scopes, exp, err)| json!({
                    "scopes": scopes.split(' ').collect::<Vec<_>>(), "token": expiry(exp), "last_error": err,
                })).collect::<Vec<_>>(),
                "id_tokens": a.id_snapshot().into_iter().map(|(aud, exp, err)| json!({
                    "audience": aud, "token": expiry(exp), "last_error": err,
                })).collect::<Vec<_>>(),
                "counters": {
                    "hits": a.counters.hits.load(Ordering::Relaxed),
                    "mints": a.counters.mints.load(Ordering::Relaxed),
                    "upstream_errors": a.counters.upstream_errors.load(Ordering::Relaxed),
                    "key_reloads": a.counters.key_reloads.load(Ordering::Relaxed),
                },
            })
        })
        .collect();
    Reply::json(
        json!({"version": env!("CARGO_PKG_VERSION"), "uptime_s": broker.uptime().as_secs(), "accounts": accounts})
            .to_string(),
    )
}
