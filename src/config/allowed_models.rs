//! `VERTEX_BROKER_ALLOWED_MODELS`: which models the gateway may call, as glob patterns. Least
//! privilege below the account: `roles/aiplatform.user` allows every model, this lets a team say
//! "this function calls gemini-2.5-flash only".

use super::ConfigError;

/// Most patterns in the list.
const MAX_PATTERNS: usize = 64;

/// A model a call names: its publisher (`google`, `anthropic`; `endpoints` for a deployed
/// endpoint) when known, and its id (`gemini-2.5-flash`, `claude-sonnet-4@20250514`, `123`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName {
    /// `google`, `anthropic`, `endpoints`, or none when the caller named only the id.
    pub publisher: Option<String>,
    /// The model id.
    pub id: String,
}

impl ModelName {
    /// A model as an OpenAI-compatible body or a resource name writes it:
    /// `google/gemini-2.5-flash`, `projects/p/locations/l/publishers/google/models/m`,
    /// `publishers/google/models/m`, or a bare id.
    pub fn parse(written: &str) -> Self {
        let segments: Vec<&str> = written.split('/').collect();
        match segments.as_slice() {
            [.., "publishers", publisher, "models", id] => Self::of(publisher, id),
            [.., "endpoints", id] => Self::of("endpoints", id),
            [publisher, id] => Self::of(publisher, id),
            _ => Self { publisher: None, id: written.to_string() },
        }
    }

    /// `publisher/id`.
    pub fn of(publisher: &str, id: &str) -> Self {
        Self { publisher: Some(publisher.to_string()), id: id.to_string() }
    }

    /// `publisher/id`, or the id alone.
    pub fn full(&self) -> String {
        match &self.publisher {
            Some(p) => format!("{p}/{}", self.id),
            None => self.id.clone(),
        }
    }
}

/// The allowlist: `None` allows any model (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedModels(Option<Vec<String>>);

impl AllowedModels {
    /// Parses the comma-separated patterns; `*` matches any run of characters, `?` one. A pattern
    /// with a `/` matches `publisher/model` (`anthropic/claude-*`, `endpoints/123`), one without
    /// matches the model id of any publisher (`gemini-2.5-*`).
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let patterns = crate::text::split_list(value);
        let refuse = |expected: String| ConfigError {
            variable: "VERTEX_BROKER_ALLOWED_MODELS",
            value: value.to_string(),
            expected,
        };
        if patterns.len() > MAX_PATTERNS {
            return Err(refuse(format!("at most {MAX_PATTERNS} patterns")));
        }
        if let Some(bad) = patterns.iter().find(|p| {
            p.len() > 256
                || p.matches('/').count() > 1
                || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@/*?".contains(&b))
        }) {
            return Err(refuse(format!(
                "model patterns such as gemini-2.5-flash, gemini-*, anthropic/claude-*, comma separated \
                 ({} has a character a model name cannot)",
                crate::text::printable(bad)
            )));
        }
        Ok(Self((!patterns.is_empty()).then_some(patterns)))
    }

    /// Whether `model` may be called.
    pub fn allows(&self, model: &ModelName) -> bool {
        let Some(patterns) = &self.0 else { return true };
        patterns.iter().any(|p| match p.contains('/') {
            true => glob(p.as_bytes(), model.full().as_bytes()),
            false => glob(p.as_bytes(), model.id.as_bytes()),
        })
    }

    /// Whether a list is set (else every model is allowed).
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

/// `*` and `?` globbing, iterative with one backtrack point: at worst pattern × text steps,
/// never exponential, whatever the pattern.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_ids_or_publisher_and_id() {
        let list = AllowedModels::parse("gemini-2.5-*, anthropic/claude-sonnet-4@*,endpoints/42").unwrap();
        let allowed = |written: &str| list.allows(&ModelName::parse(written));
        assert!(allowed("google/gemini-2.5-flash"));
        assert!(allowed("projects/p/locations/l/publishers/google/models/gemini-2.5-pro"));
        assert!(allowed("gemini-2.5-flash-lite"));
        assert!(!allowed("gemini-2.0-flash"));
        assert!(allowed("anthropic/claude-sonnet-4@20250514"));
        assert!(!allowed("anthropic/claude-opus-4@20250514"));
        assert!(!allowed("claude-sonnet-4@20250514"), "a publisher pattern needs the publisher");
        assert!(allowed("projects/p/locations/l/endpoints/42") && !allowed("endpoints/43"));
        assert!(AllowedModels::default().allows(&ModelName::parse("anything")));
        assert!(AllowedModels::parse(" , ").unwrap() == AllowedModels::default(), "blank is unset");
    }

    #[test]
    fn globs_do_not_backtrack_exponentially_and_bad_patterns_are_refused() {
        assert!(glob(b"a*b*c", b"aXXbYYc") && !glob(b"a*b*c", b"aXXbYY") && glob(b"*", b""));
        assert!(glob(b"g?mini", b"gemini") && !glob(b"gemini", b"gemini-2"));
        let long = vec![b'a'; 10_000];
        assert!(!glob(b"*a*a*a*a*a*a*a*b", &long), "finishes at once");
        for bad in ["gemini 2", "a/b/c", "models/$x", "x%2Fy"] {
            let e = AllowedModels::parse(bad).unwrap_err();
            assert_eq!(e.variable, "VERTEX_BROKER_ALLOWED_MODELS", "{bad}");
        }
    }
}
