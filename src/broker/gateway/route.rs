//! Which Vertex AI calls the gateway forwards, and where to. Pure: the path, query and method
//! of a request in, a [`VertexCall`] or a refusal out. The location becomes part of a host name,
//! so every segment is checked against Vertex's own alphabet before anything is built from it.

use super::GatewayError;

/// The gateway's path prefix on the broker.
pub const PREFIX: &str = "/vertex/";

/// Inference verbs that are forwarded with POST. Anything else (tuning, deleting, deploying) is
/// refused: the gateway serves a function's calls to models, not administration.
const POST_VERBS: [&str; 10] = [
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "computeTokens",
    "predict",
    "rawPredict",
    "streamRawPredict",
    "serverStreamingPredict",
    "embedContent",
    "explain",
];

/// Collections a GET may read (model and endpoint metadata; the GenAI SDK's `models.get`).
const GET_COLLECTIONS: [&str; 3] = ["models", "endpoints", "publishers"];

/// One Vertex API call as the gateway forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexCall {
    /// `v1` or `v1beta1`.
    pub version: &'static str,
    /// `projects/{p}/locations/{l}/...` and the `:verb`, as received (validated).
    pub resource: String,
    pub location: String,
    /// The account named by the path prefix `/vertex/accounts/{email}/`, if any.
    pub account: Option<String>,
    /// The model (`gemini-2.5-flash`) or endpoint (`endpoints/123`) called, for metrics.
    pub model: String,
    /// The verb after `:` (`generateContent`), or `get` for a GET.
    pub method: String,
    /// Whether the answer is a stream (SSE or a streamed JSON array): retried only before its
    /// first byte.
    pub streaming: bool,
    pub query: Option<String>,
}

impl VertexCall {
    /// Parses `/vertex/[accounts/{email}/]{v1|v1beta1}/projects/{p}/locations/{l}/{rest}`.
    pub fn parse(path: &str, query: Option<&str>, method: &hyper::Method) -> Result<Self, GatewayError> {
        let rest = path.strip_prefix(PREFIX).ok_or_else(|| GatewayError::not_found("not a gateway path"))?;
        let (account, rest) = match rest.strip_prefix("accounts/") {
            Some(after) => {
                let (email, rest) = after.split_once('/').unwrap_or((after, ""));
                if !email.contains('@') || !email.bytes().all(is_email_byte) {
                    return Err(GatewayError::invalid(
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
                return Err(GatewayError::not_found(
                    "the gateway forwards /vertex/v1/... and /vertex/v1beta1/... (Vertex API versions)",
                ))
            }
        };
        let segments: Vec<&str> = resource.split('/').collect();
        if segments.len() < 5 || segments[0] != "projects" || segments[2] != "locations" {
            return Err(GatewayError::not_found(
                "Vertex paths start projects/{project}/locations/{location}/ (publishers/google/models/{model}:generateContent, \
                 endpoints/{id}:predict)",
            ));
        }
        if let Some(bad) = segments.iter().find(|s| !valid_segment(s)) {
            return Err(GatewayError::invalid(format!(
                "path segment {} is not a Vertex resource name (letters, digits, - _ . @ and one :verb)",
                crate::text::printable(bad)
            )));
        }
        let location = segments[3];
        if location.len() > 63 || !location.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(GatewayError::invalid(format!(
                "location {} is not a Vertex location such as us-central1 or global",
                crate::text::printable(location)
            )));
        }
        let last = segments[segments.len() - 1];
        let (collection_path, verb) = match last.split_once(':') {
            Some((_, verb)) => (&segments[4..], Some(verb)),
            None => (&segments[4..], None),
        };
        let method_name = match (method, verb) {
            (&hyper::Method::POST, Some(verb)) if POST_VERBS.contains(&verb) => verb.to_string(),
            (&hyper::Method::GET, None) if GET_COLLECTIONS.contains(&collection_path[0]) => "get".to_string(),
            (&hyper::Method::POST, _) | (&hyper::Method::GET, _) => {
                return Err(GatewayError::not_found(format!(
                    "the gateway forwards model calls only: POST :{} and GET of models and endpoints",
                    POST_VERBS.join(", :")
                )))
            }
            _ => {
                return Err(GatewayError::method(format!(
                    "method {} is not forwarded; Vertex calls are POST (or GET to read a model)",
                    crate::text::printable(method.as_str())
                )))
            }
        };
        let name = |s: &str| s.split(':').next().unwrap_or(s).to_string();
        let model = match collection_path {
            [.., "models", m] => name(m),
            [.., "endpoints", e] => format!("endpoints/{}", name(e)),
            _ => "-".to_string(),
        };
        let streaming =
            matches!(method_name.as_str(), "streamGenerateContent" | "streamRawPredict" | "serverStreamingPredict");
        Ok(Self {
            version,
            resource: resource.to_string(),
            location: location.to_string(),
            account,
            model,
            method: method_name,
            streaming,
            query: query.filter(|q| !q.is_empty()).map(str::to_string),
        })
    }

    /// The upstream URL: `base` when set (`VERTEX_BROKER_VERTEX_ENDPOINT`), else the location's
    /// own host, or `aiplatform.googleapis.com` for `global`. With `global_instead`, the call goes
    /// to the global endpoint and names the `global` location (the fall-back on 429).
    pub fn url(&self, base: Option<&str>, global_instead: bool) -> String {
        let (location, resource) = if global_instead {
            let prefix_len =
                "projects/".len() + self.resource.split('/').nth(1).map_or(0, str::len) + "/locations/".len();
            let after = &self.resource[prefix_len + self.location.len()..];
            ("global", format!("{}global{after}", &self.resource[..prefix_len]))
        } else {
            (self.location.as_str(), self.resource.clone())
        };
        let host = match base {
            Some(base) => base.trim_end_matches('/').to_string(),
            None if location == "global" => "https://aiplatform.googleapis.com".to_string(),
            None => format!("https://{location}-aiplatform.googleapis.com"),
        };
        let mut url = format!("{host}/{}/{resource}", self.version);
        if let Some(q) = &self.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// Whether a 429 may fall back to `global`: a publisher model called in a region (deployed
    /// endpoints live in one region only).
    pub fn may_use_global(&self) -> bool {
        self.location != "global" && self.resource.contains("/publishers/")
    }
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
mod tests {
    use super::*;
    use hyper::Method;

    const GEN: &str =
        "/vertex/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";

    #[test]
    fn a_model_call_goes_to_its_region_or_global() {
        let call = VertexCall::parse(GEN, None, &Method::POST).unwrap();
        assert_eq!(
            (call.model.as_str(), call.method.as_str(), call.streaming),
            ("gemini-2.5-flash", "generateContent", false)
        );
        assert_eq!(
            call.url(None, false),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert!(call.may_use_global());
        assert_eq!(
            call.url(None, true),
            "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            call.url(Some("http://127.0.0.1:9/"), true),
            "http://127.0.0.1:9/v1/projects/p1/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let global = VertexCall::parse(&GEN.replace("us-central1", "global"), None, &Method::POST).unwrap();
        assert!(global
            .url(None, false)
            .starts_with("https://aiplatform.googleapis.com/v1/projects/p1/locations/global/"));
        assert!(!global.may_use_global());
    }

    #[test]
    fn streams_accounts_endpoints_and_reads() {
        let path = "/vertex/accounts/sa@p.iam.gserviceaccount.com/v1beta1/projects/p/locations/europe-west4/publishers/google/models/m:streamGenerateContent";
        let call = VertexCall::parse(path, Some("alt=sse"), &Method::POST).unwrap();
        assert_eq!(call.account.as_deref(), Some("sa@p.iam.gserviceaccount.com"));
        assert!(call.streaming && call.url(None, false).ends_with("m:streamGenerateContent?alt=sse"));
        assert!(call.url(None, false).starts_with("https://europe-west4-aiplatform.googleapis.com/v1beta1/"));
        let predict =
            VertexCall::parse("/vertex/v1/projects/p/locations/us-east1/endpoints/123:predict", None, &Method::POST)
                .unwrap();
        assert_eq!(predict.model, "endpoints/123");
        assert!(!predict.may_use_global());
        let read = VertexCall::parse(
            "/vertex/v1beta1/projects/p/locations/us-east1/publishers/google/models/m",
            None,
            &Method::GET,
        )
        .unwrap();
        assert_eq!((read.method.as_str(), read.model.as_str()), ("get", "m"));
    }

    #[test]
    fn refuses_what_is_not_a_model_call() {
        for (path, method, status) in [
            ("/vertex/v2/projects/p/locations/l/publishers/google/models/m:generateContent", Method::POST, 404),
            ("/vertex/v1/projects/p/publishers/google/models/m:generateContent", Method::POST, 404),
            ("/vertex/v1/projects/p/locations/l/endpoints/1:undeployModel", Method::POST, 404),
            ("/vertex/v1/projects/p/locations/l/endpoints/1", Method::DELETE, 405),
            ("/vertex/v1/projects/p/locations/l/datasets", Method::GET, 404),
            (
                "/vertex/v1/projects/p/locations/evil.example#/publishers/google/models/m:generateContent",
                Method::POST,
                400,
            ),
            ("/vertex/v1/projects/p/locations/attacker.example%2F/models/m:predict", Method::POST, 400),
            ("/vertex/v1/projects/p/locations/US/publishers/google/models/m:generateContent", Method::POST, 400),
            ("/vertex/v1/projects/p/locations/l/publishers/google/models/../x:generateContent", Method::POST, 400),
            ("/vertex/v1/projects/p/locations/l/publishers/google/models//m:generateContent", Method::POST, 400),
            ("/vertex/accounts/nobody/v1/projects/p/locations/l/endpoints/1:predict", Method::POST, 400),
        ] {
            let e = VertexCall::parse(path, None, &method).unwrap_err();
            assert_eq!(e.status, status, "{path}: {e:?}");
            assert!(!e.message.contains('\n'), "{path}");
        }
    }
}
