//! Which Vertex AI calls the gateway forwards, and where to. Pure: the path, query and method
//! of a request in, a [`VertexCall`] or a refusal out; [`table`] holds the rows. The location
//! becomes part of a host name, so every segment is checked against Vertex's own alphabet before
//! anything is built from it.

pub mod table;

use std::borrow::Cow;

use hyper::{Method, StatusCode};

use self::table::{BodyModel, Dialect, Scope, ROWS, STREAM_VERBS};
use super::Refusal;
use crate::config::{is_location, AllowedModels, ModelName};

/// The gateway's path prefix on the broker.
pub const PREFIX: &str = "/vertex/";

/// One Vertex API call as the gateway forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexCall {
    /// `v1` or `v1beta1`.
    pub version: &'static str,
    /// The project, for paths under `projects/{p}/locations/{l}/`; `None` for `{v}/publishers/...`.
    pub project: Option<String>,
    /// The location called: the path's, or `VERTEX_BROKER_VERTEX_LOCATION` when it names none.
    pub location: String,
    /// The path after `locations/{l}/` (or after the version), as received (validated).
    pub rest: String,
    /// The account named by the path prefix `/vertex/accounts/{email}/`, if any.
    pub account: Option<String>,
    /// The model the call names (path or body), if any.
    pub model: Option<ModelName>,
    /// The call's name: the verb after `:` (`generateContent`), or the row's (`cachedContents.get`).
    pub method: &'static str,
    /// Whether the answer is a stream (SSE or a streamed JSON array): retried only before its
    /// first byte.
    pub streaming: bool,
    /// Whether the body names the model (and must be read before the call goes up).
    pub body: BodyModel,
    /// How the answer states usage.
    pub dialect: Dialect,
    /// A publisher model's call (a regional 429 may go to `global`).
    model_call: bool,
    /// The query: only parameters the row takes, encoded anew.
    pub query: Option<String>,
}

impl VertexCall {
    /// Parses `/vertex/[accounts/{email}/]{v1|v1beta1}/{path}` against the table; `location` is
    /// where a path without one goes.
    pub fn parse(path: &str, query: Option<&str>, method: &Method, location: &str) -> Result<Self, Refusal> {
        let rest = path.strip_prefix(PREFIX).ok_or_else(|| Refusal::not_found("not a gateway path"))?;
        let (account, rest) = match rest.strip_prefix("accounts/") {
            Some(after) => {
                let (email, rest) = after.split_once('/').unwrap_or((after, ""));
                if !email.contains('@') || !email.bytes().all(is_email_byte) {
                    return Err(Refusal::invalid(
                        "the account in /vertex/accounts/{email}/ must be a service-account email",
                    ));
                }
                (Some(email.to_string()), rest)
            }
            None => (None, rest),
        };
        let (version, resource) = match rest.split_once('/') {
            Some(("v1", r)) => ("v1", r),
            Some(("v1beta1", r)) => ("v1beta1", r),
            _ => {
                return Err(Refusal::not_found(
                    "the gateway forwards /vertex/v1/... and /vertex/v1beta1/... (Vertex API versions)",
                ))
            }
        };
        let segments: Vec<&str> = resource.split('/').collect();
        if let Some(bad) = segments.iter().find(|s| !valid_segment(s)) {
            return Err(Refusal::invalid(format!(
                "path segment {} is not a Vertex resource name (letters, digits, - _ . @ and one :verb)",
                crate::text::printable(bad)
            )));
        }
        let (scope, project, location, under) = match segments.as_slice() {
            ["projects", project, "locations", location, under @ ..] => {
                if !is_location(location) {
                    return Err(Refusal::invalid(format!(
                        "location {} is not a Vertex location such as us-central1, us, eu or global",
                        crate::text::printable(location)
                    )));
                }
                (Scope::Located, Some(project.to_string()), location.to_string(), under)
            }
            ["projects", ..] => {
                return Err(Refusal::not_found(
                    "Vertex paths under a project name its location: projects/{project}/locations/{location}/...",
                ))
            }
            under => (Scope::Unlocated, None, location.to_string(), under),
        };
        let fits = || ROWS.iter().filter(|r| r.scope == scope).filter_map(|r| Some((r, r.fit(under)?)));
        // The rows are walked again, collected, only to say why nothing fitted.
        let Some((row, fit)) = fits().find(|(r, _)| r.method == method.as_str()) else {
            let allowed: Vec<&str> = fits().map(|(r, _)| r.method).collect();
            if allowed.is_empty() {
                return Err(Refusal::not_found(format!(
                    "{} is not a Vertex call the gateway forwards: model calls, OpenAI-compatible chat \
                     completions, Claude, context caches, batch jobs and operations (see the README's table); \
                     nothing that creates, deploys, tunes or deletes models or endpoints",
                    crate::text::printable(resource)
                )));
            }
            return Err(Refusal::method(format!(
                "method {} is not forwarded for this path; it takes {}",
                crate::text::printable(method.as_str()),
                allowed.join(", ")
            )));
        };
        let model = match (fit.publisher, fit.model, fit.endpoint) {
            (Some(p), Some(m), _) => Some(ModelName::of(p, m)),
            (_, _, Some(e)) => Some(ModelName::of("endpoints", e)),
            _ => None,
        };
        let verb = fit.verb.filter(|v| row.verbs.contains(v));
        let query = allowed_query(query.unwrap_or(""), row.query)?;
        Ok(Self {
            version,
            project,
            location,
            rest: under.join("/"),
            account,
            model,
            method: if row.name.is_empty() { verb.unwrap_or("-") } else { row.name },
            streaming: verb.is_some_and(|v| STREAM_VERBS.contains(&v)),
            body: row.body,
            dialect: row.dialect,
            model_call: row.model_call,
            query,
        })
    }

    /// What the body says, for rows whose body names the model: its `model` (required) and, for
    /// OpenAI's chat completions, `"stream": true`.
    pub fn read_body(&mut self, body: &[u8]) -> Result<(), Refusal> {
        #[derive(serde::Deserialize)]
        struct Named {
            model: Option<String>,
            #[serde(default)]
            stream: bool,
        }
        if self.body == BodyModel::No {
            return Ok(());
        }
        // serde reads a struct from an array too; Vertex takes objects only.
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let named: Named = serde_json::from_slice(body)
            .ok()
            .filter(|_| object)
            .ok_or_else(|| Refusal::invalid("the request body is not a JSON object"))?;
        let Some(model) = named.model.filter(|m| !m.is_empty()) else {
            return Err(Refusal::invalid(format!("{} needs the body's \"model\"", self.method)));
        };
        let mut model = ModelName::parse(&model);
        if self.rest.starts_with("publishers/anthropic/") {
            model.publisher = Some("anthropic".to_string());
        }
        self.model = Some(model);
        self.streaming |= self.body == BodyModel::ModelAndStream && named.stream;
        Ok(())
    }

    /// Refuses a model the allowlist does not name (before anything goes upstream).
    pub fn check_model(&self, allowed: &AllowedModels) -> Result<(), Refusal> {
        match &self.model {
            Some(m) if !allowed.allows(m) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "model {} is not allowed here: VERTEX_BROKER_ALLOWED_MODELS does not name it",
                    crate::text::printable(&m.full())
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The model for audit lines and metrics: the id (`gemini-2.5-flash`), `endpoints/{id}`,
    /// or `-` for calls that name none.
    pub fn model_label(&self) -> String {
        match &self.model {
            Some(m) if m.publisher.as_deref() == Some("endpoints") => m.full(),
            Some(m) => m.id.clone(),
            None => "-".to_string(),
        }
    }

    /// The upstream URL: `base` when set (`VERTEX_BROKER_VERTEX_ENDPOINT`), else the location's
    /// own host. With `global_instead`, the call goes to the global endpoint and names the
    /// `global` location (the fall-back on 429).
    pub fn url(&self, base: Option<&str>, global_instead: bool) -> String {
        let location = if global_instead { "global" } else { self.location.as_str() };
        let origin = match base {
            Some(base) => Cow::Borrowed(base.trim_end_matches('/')),
            None => Cow::Owned(host(location)),
        };
        // Pushed piece by piece into one allocation: built on every attempt.
        let project = self.project.as_deref().unwrap_or_default();
        let query = self.query.as_deref().unwrap_or_default();
        let fixed = "/v1beta1/projects//locations//?".len();
        let mut url = String::with_capacity(
            fixed + origin.len() + project.len() + location.len() + self.rest.len() + query.len(),
        );
        url.push_str(&origin);
        url.push('/');
        url.push_str(self.version);
        if self.project.is_some() {
            for piece in ["/projects/", project, "/locations/", location] {
                url.push_str(piece);
            }
        }
        url.push('/');
        url.push_str(&self.rest);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Whether a 429 may fall back to `global`: a publisher model called in a region (deployed
    /// endpoints live in one region only).
    pub fn may_use_global(&self) -> bool {
        self.model_call && self.project.is_some() && self.location != "global"
    }
}

/// Vertex's host for a location, as Google's SDKs build it.
pub fn host(location: &str) -> String {
    match location {
        "global" => "https://aiplatform.googleapis.com".to_string(),
        "us" | "eu" => format!("https://aiplatform.{location}.rep.googleapis.com"),
        region => format!("https://{region}-aiplatform.googleapis.com"),
    }
}

/// The query with only the parameters `allowed` names, encoded anew (so nothing the upstream
/// could read differently goes up); any other parameter is refused, naming it.
fn allowed_query(query: &str, allowed: &[&str]) -> Result<Option<String>, Refusal> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            let why = if name.starts_with('$') {
                "Google's system parameters change what a call does (a read into a delete)".to_string()
            } else if allowed.is_empty() {
                "this call takes no query parameters".to_string()
            } else {
                format!("this call takes {}", allowed.join(", "))
            };
            return Err(Refusal::invalid(format!(
                "query parameter {} is not forwarded: {why}",
                crate::text::printable(&name)
            )));
        }
        out.append_pair(&name, &value);
        any = true;
    }
    Ok(any.then(|| out.finish()))
}

fn is_email_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'-' | b'_')
}

/// A resource-name segment: Vertex ids and model names, at most one `:verb`; never empty, `.`
/// or `..`, and no escapes (nothing the upstream could decode into another path).
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 128
        && s.bytes().filter(|b| *b == b':').count() <= 1
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'))
}

#[cfg(test)]
mod tests;
