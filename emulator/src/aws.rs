//! AWS subject tokens as Google's STS checks them: a serialized GetCallerIdentity request signed
//! with SigV4. The signature is recomputed here with the secret of the access key that signed it
//! (read from moto's state API: moto itself does not verify the query-string form that subject
//! tokens use), then the request is replayed to the configured AWS STS endpoint, which says who
//! signed it.

use aws_lc_rs::{constant_time, digest, hmac};
use chrono::{NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// How far `x-amz-date` may be from now (AWS's own window).
const MAX_SKEW_MINUTES: i64 = 15;

/// A decoded subject token: the request Google would send to AWS.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectToken {
    pub url: String,
    pub method: String,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub key: String,
    pub value: String,
}

/// The AWS identity that signed a subject token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub arn: String,
    pub account: String,
}

/// Why a subject token was refused, in the words Google's STS uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl SubjectToken {
    /// Parses the `subject_token` form value: URL-encoded JSON (Python encodes spaces as `%20`,
    /// Go as `+`).
    pub fn parse(form_value: &str) -> Result<Self, Refused> {
        let json = percent_decode(form_value).ok_or_else(|| Refused("The subject token is not URL-encoded.".into()))?;
        serde_json::from_str(&json).map_err(|_| {
            Refused(
                "Unable to parse the AWS subject token: it must be a serialized, signed GetCallerIdentity request."
                    .into(),
            )
        })
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.key.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// (host, path, query) of the signed URL.
    fn url_parts(&self) -> Option<(&str, &str, &str)> {
        let rest = self.url.strip_prefix("https://").or_else(|| self.url.strip_prefix("http://"))?;
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        Some((authority, path, query))
    }

    /// The access key id named in the `Authorization` header.
    pub fn access_key_id(&self) -> Option<&str> {
        let credential = self.authorization()?.credential;
        credential.split('/').next()
    }

    fn authorization(&self) -> Option<Authorization<'_>> {
        Authorization::parse(self.header("authorization")?)
    }

    /// Checks the shape Google requires: POST of `Action=GetCallerIdentity` to an STS host (or
    /// to `sts_endpoint`, the AWS STS this emulator forwards to), with the target resource.
    pub fn check_shape(&self, audience: &str, sts_endpoint: &str) -> Result<(), Refused> {
        let (host, _, query) = self.url_parts().ok_or_else(|| Refused("The AWS request URL is invalid.".into()))?;
        let host_name = host.split(':').next().unwrap_or(host);
        let sts_host = host_name == "sts.amazonaws.com"
            || (host_name.starts_with("sts.") && host_name.ends_with(".amazonaws.com"))
            || sts_endpoint.split("://").nth(1).and_then(|rest| rest.split(['/', '?']).next()) == Some(host);
        if !self.method.eq_ignore_ascii_case("POST") || !sts_host || !query.contains("Action=GetCallerIdentity") {
            return Err(Refused(
                "The AWS request must be a POST GetCallerIdentity request to an AWS STS endpoint.".into(),
            ));
        }
        let target = self
            .header("x-goog-cloud-target-resource")
            .ok_or_else(|| Refused("The AWS request is missing the x-goog-cloud-target-resource header.".into()))?;
        let bare = |s: &str| s.trim_start_matches("https:").trim_start_matches("//").to_string();
        if bare(target) != bare(audience) {
            return Err(Refused(format!(
                "The x-goog-cloud-target-resource header value ({target}) does not match the audience ({audience})."
            )));
        }
        Ok(())
    }

    /// Recomputes the SigV4 signature with `secret` and compares it in constant time.
    pub fn verify_signature(&self, secret: &str) -> Result<(), Refused> {
        let mismatch = || {
            Refused(
                "Received invalid AWS response of type SignatureDoesNotMatch with error message: The request \
                 signature we calculated does not match the signature you provided. Check your AWS Secret Access \
                 Key and signing method."
                    .into(),
            )
        };
        let auth = self.authorization().ok_or_else(mismatch)?;
        let amz_date = self.header("x-amz-date").ok_or_else(mismatch)?;
        let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|_| mismatch())?;
        if (Utc::now().naive_utc() - signed_at).num_minutes().abs() > MAX_SKEW_MINUTES {
            return Err(Refused(
                "Received invalid AWS response of type SignatureExpired with error message: Signature expired.".into(),
            ));
        }
        let (host, path, query) = self.url_parts().ok_or_else(mismatch)?;
        let mut headers = String::new();
        for name in auth.signed_headers.split(';') {
            let value = match name {
                "host" => self.header("host").unwrap_or(host),
                _ => self.header(name).ok_or_else(mismatch)?,
            };
            headers.push_str(&format!("{name}:{}\n", value.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
        let canonical = format!(
            "{}\n{}\n{}\n{headers}\n{}\n{}",
            self.method.to_ascii_uppercase(),
            if path.is_empty() { "/" } else { path },
            canonical_query(query),
            auth.signed_headers,
            hex(digest::digest(&digest::SHA256, b"").as_ref()),
        );
        let mut scope = auth.credential.splitn(2, '/');
        let (_, scope) = (scope.next(), scope.next().ok_or_else(mismatch)?);
        let parts: Vec<&str> = scope.split('/').collect();
        let [date, region, service, "aws4_request"] = parts[..] else { return Err(mismatch()) };
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for part in [date, region, service, "aws4_request"] {
            key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes()).as_ref().to_vec();
        }
        let expected = hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes()).as_ref());
        constant_time::verify_slices_are_equal(expected.as_bytes(), auth.signature.as_bytes()).map_err(|_| mismatch())
    }
}

/// The parts of `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let fields = value.strip_prefix("AWS4-HMAC-SHA256")?;
        let field = |name: &str| {
            fields.split(',').map(str::trim).find_map(|f| f.strip_prefix(name).and_then(|f| f.strip_prefix('=')))
        };
        Some(Self {
            credential: field("Credential")?,
            signed_headers: field("SignedHeaders")?,
            signature: field("Signature")?,
        })
    }
}

/// The secret of an access key moto issued (an assumed role's or an IAM user's), from moto's
/// state API. `Ok(None)`: the endpoint is not moto (real AWS verifies the signature itself).
pub async fn secret_of(
    http: &reqwest::Client,
    sts_endpoint: &str,
    access_key_id: &str,
) -> Result<Option<String>, String> {
    let url = format!("{}/moto-api/data.json", sts_endpoint.trim_end_matches('/'));
    let resp = http.get(&url).send().await.map_err(|e| format!("AWS STS is unreachable: {e}"))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let state: Value = resp.json().await.map_err(|e| format!("moto's state is not JSON: {e}"))?;
    fn find<'v>(v: &'v Value, id: &str) -> Option<&'v str> {
        match v {
            Value::Object(m) if m.get("access_key_id").and_then(Value::as_str) == Some(id) => {
                m.get("secret_access_key").and_then(Value::as_str)
            }
            Value::Object(m) => m.values().find_map(|v| find(v, id)),
            Value::Array(a) => a.iter().find_map(|v| find(v, id)),
            _ => None,
        }
    }
    Ok(Some(find(&state, access_key_id).map(str::to_string).unwrap_or_default()))
}

/// Sends the signed request to AWS STS and reads the caller from its answer, as Google does.
pub async fn caller(http: &reqwest::Client, sts_endpoint: &str, token: &SubjectToken) -> Result<Caller, Refused> {
    let query = token.url_parts().map(|(_, _, q)| q).unwrap_or_default();
    let mut request = http.post(format!("{}/?{query}", sts_endpoint.trim_end_matches('/')));
    for h in token.headers.iter().filter(|h| !h.key.eq_ignore_ascii_case("host")) {
        request = request.header(h.key.as_str(), h.value.as_str());
    }
    let resp = request.send().await.map_err(|e| Refused(format!("Unable to reach AWS STS: {e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))?;
        Some(body[start..start + end].trim().to_string())
    };
    if !status.is_success() {
        return Err(Refused(format!(
            "Received invalid AWS response of type {} with error message: {}",
            element("Code").unwrap_or_else(|| status.as_u16().to_string()),
            element("Message").unwrap_or_default()
        )));
    }
    match (element("Arn"), element("Account")) {
        (Some(arn), Some(account)) => Ok(Caller { arn, account }),
        _ => Err(Refused("Received an invalid AWS GetCallerIdentity response.".into())),
    }
}

/// Google's default attribute for an AWS caller: an assumed role's ARN without its session
/// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE`), else the ARN itself.
pub fn aws_role(arn: &str) -> String {
    match arn.split_once(":assumed-role/") {
        Some((account, rest)) => {
            format!("{account}:assumed-role/{}", rest.split('/').next().unwrap_or(rest))
        }
        None => arn.to_string(),
    }
}

/// AWS's canonical query string: each name and value URI-encoded, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| uri_encode(&percent_decode(s).unwrap_or_else(|| s.to_string()));
            (enc(k), enc(v))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (a space in form encoding); `None` when not valid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_roles_map_to_their_role_without_the_session() {
        assert_eq!(
            aws_role("arn:aws:sts::123456789012:assumed-role/fn-role/my-fn"),
            "arn:aws:sts::123456789012:assumed-role/fn-role"
        );
        assert_eq!(aws_role("arn:aws:iam::123456789012:user/alice"), "arn:aws:iam::123456789012:user/alice");
    }

    #[test]
    fn the_query_is_canonicalized_and_escapes_are_decoded() {
        assert_eq!(
            canonical_query("Version=2011-06-15&Action=GetCallerIdentity"),
            "Action=GetCallerIdentity&Version=2011-06-15"
        );
        assert_eq!(percent_decode("a%20b+c%2B").as_deref(), Some("a b c+"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), Some("%4".into()));
    }
}
