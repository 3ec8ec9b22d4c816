//! What a token request may name. Every distinct scope set or audience costs a cache slot and a
//! mint at Google, so only well-formed values get that far: scopes are `https://` URLs or Google's
//! short names, audiences are text without control characters, and both are bounded in length.

use crate::text::printable;

/// Google's short scope names (everything else is an `https://` URL).
pub const SHORT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// Longest single scope accepted.
pub const MAX_SCOPE_LEN: usize = 256;
/// Most scopes in one request.
pub const MAX_SCOPES: usize = 20;
/// Longest audience accepted.
pub const MAX_AUDIENCE_LEN: usize = 1024;

/// Why a scope list or an audience was refused (the one-line reason of a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `scopes=` holds nothing.
    #[error("scopes= is empty; give one or more scope URLs, comma separated")]
    NoScopes,
    /// A scope that is not Google's.
    #[error(
        "scope {0} is not a Google scope: use https:// URLs such as {CLOUD_PLATFORM}, \
         or openid, email, profile"
    )]
    BadScope(String),
    /// More scopes than the broker serves in one set.
    #[error("scopes= names more than {MAX_SCOPES} scopes")]
    TooManyScopes,
    /// An ID token asked for without an audience.
    #[error("identity needs audience=, the URL of the service the token is for")]
    NoAudience,
    /// An audience longer than the broker accepts.
    #[error("audience is longer than {MAX_AUDIENCE_LEN} bytes")]
    LongAudience,
    /// An audience that is not printable text.
    #[error("audience {0} holds control characters or bytes that are not UTF-8 text")]
    BadAudience(String),
}

/// The cloud-platform scope: Vertex's, the default set, and what a caller token for
/// impersonation or a federated token carries.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A scope set as a token slot's key: validated, sorted and deduplicated scopes joined by
/// single spaces, so that equal sets share one cache slot and one mint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey(String);

impl ScopeKey {
    /// The key of a scope list as clients send it (comma and/or space separated, already
    /// URL-decoded).
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        Ok(Self(normalize_scopes(raw)?.join(" ")))
    }

    /// The cloud-platform scope alone.
    pub fn cloud_platform() -> Self {
        Self(CLOUD_PLATFORM.to_string())
    }

    /// The scopes, space separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scopes one by one, sorted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ')
    }

    /// The scopes as Google's token calls take them.
    pub fn to_vec(&self) -> Vec<String> {
        self.scopes().map(str::to_string).collect()
    }
}

/// As a JSON list of scopes, as the metadata server lists them.
impl serde::Serialize for ScopeKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.scopes())
    }
}

/// From a JSON list of scopes, validated and normalized as any other.
impl<'de> serde::Deserialize<'de> for ScopeKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scopes = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&scopes.join(",")).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scopes of `raw`, validated, sorted and deduplicated.
pub fn normalize_scopes(raw: &str) -> Result<Vec<&str>, InputError> {
    let mut scopes = Vec::new();
    for scope in raw.split([',', ' ']).filter(|s| !s.is_empty()) {
        if !valid_scope(scope) {
            return Err(InputError::BadScope(printable(scope)));
        }
        scopes.push(scope);
    }
    scopes.sort_unstable();
    scopes.dedup();
    match scopes.len() {
        0 => Err(InputError::NoScopes),
        n if n > MAX_SCOPES => Err(InputError::TooManyScopes),
        _ => Ok(scopes),
    }
}

/// An `https://` URL of URL characters with a host, or one of Google's short names.
pub fn valid_scope(scope: &str) -> bool {
    if SHORT_SCOPES.contains(&scope) {
        return true;
    }
    let Some(rest) = scope.strip_prefix("https://") else { return false };
    scope.len() <= MAX_SCOPE_LEN
        && rest.split('/').next().is_some_and(|host| !host.is_empty())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+;=%".contains(&b))
}

/// An ID token's audience as a token slot's key: present, bounded, text without control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(String);

impl Audience {
    /// The audience `raw` (already URL-decoded), checked.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        check_audience(raw).map(|a| Self(a.to_string()))
    }

    /// The audience as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Checks an ID-token audience: present, bounded, text without control characters. (Lossy
/// URL-decoding turns bytes that are not UTF-8, such as `%ff`, into U+FFFD: refused too.)
fn check_audience(audience: &str) -> Result<&str, InputError> {
    if audience.is_empty() {
        return Err(InputError::NoAudience);
    }
    if audience.len() > MAX_AUDIENCE_LEN {
        return Err(InputError::LongAudience);
    }
    if audience.chars().any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER) {
        return Err(InputError::BadAudience(printable(audience)));
    }
    Ok(audience)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUD: &str = CLOUD_PLATFORM;

    fn scope_key(raw: &str) -> Result<String, InputError> {
        ScopeKey::parse(raw).map(|k| k.0)
    }

    #[test]
    fn equal_sets_share_a_key() {
        let two = "https://www.googleapis.com/auth/userinfo.email";
        let key = scope_key(&format!("{CLOUD},{two}")).unwrap();
        for raw in [format!("{two} {CLOUD}"), format!("{two},{CLOUD},{two}"), format!(" {CLOUD} ,{two},")] {
            assert_eq!(scope_key(&raw).unwrap(), key, "{raw}");
        }
        assert_eq!(scope_key("openid email").unwrap(), "email openid");
    }

    #[test]
    fn malformed_scopes_are_refused_naming_the_scope() {
        for raw in [
            "https://x/a\rb",
            "https://x/\0",
            "https://x/\u{fffd}",
            "cloud-platform",
            "http://www.googleapis.com/auth/cloud-platform",
            "https:///path",
            "https://x/\"quote",
            "javascript:alert(1)",
            "https://x/a\tb",
        ] {
            match scope_key(raw) {
                Err(InputError::BadScope(shown)) => assert!(!shown.contains(['\r', '\0', '\t']), "{shown}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        assert_eq!(scope_key(" , "), Err(InputError::NoScopes));
        let long = format!("https://x/{}", "a".repeat(MAX_SCOPE_LEN));
        assert!(matches!(scope_key(&long), Err(InputError::BadScope(_))));
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("https://x/{i}")).collect();
        assert_eq!(scope_key(&many.join(",")), Err(InputError::TooManyScopes));
    }

    #[test]
    fn audiences_are_text_and_bounded() {
        assert_eq!(check_audience("https://example.run.app"), Ok("https://example.run.app"));
        assert_eq!(
            check_audience("32555940559.apps.googleusercontent.com"),
            Ok("32555940559.apps.googleusercontent.com")
        );
        assert_eq!(check_audience(""), Err(InputError::NoAudience));
        assert_eq!(check_audience(&"a".repeat(MAX_AUDIENCE_LEN + 1)), Err(InputError::LongAudience));
        for bad in ["a\rb", "a\0", "\u{fffd}", "a\u{85}"] {
            assert!(matches!(check_audience(bad), Err(InputError::BadAudience(_))), "{bad:?}");
        }
    }
}
