//! Reading one environment variable into a type: the shared shapes (durations, counts, on/off,
//! one of a few words), each refusal naming the variable and what it should hold.

use std::time::Duration;

use super::ConfigError;

/// The environment as `Config` reads it: trimmed values, blanks as unset.
pub(super) struct Vars<F: Fn(&str) -> Option<String>>(pub(super) F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The trimmed value, `None` when unset or blank.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// A non-zero duration written like `90s`, `5m`, `1h`.
    pub(super) fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match humantime::parse_duration(&v) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(ConfigError { variable: name, value: v, expected: "a duration such as 90s, 5m or 1h".into() }),
            },
        }
    }

    /// A count from 1 to 1,000,000 (a limit).
    pub(super) fn count(&self, name: &'static str, default: usize) -> Result<usize, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or(ConfigError {
                variable: name,
                value: v,
                expected: "a whole number from 1 to 1000000".into(),
            }),
        }
    }

    /// A small number from 0 to `max`.
    pub(super) fn small(&self, name: &'static str, default: u32, max: u32) -> Result<u32, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u32>().ok().filter(|n| *n <= max).ok_or(ConfigError {
                variable: name,
                value: v,
                expected: format!("a whole number from 0 to {max}"),
            }),
        }
    }

    /// `on`/`true`/`1` or `off`/`false`/`0`, any case.
    pub(super) fn switch(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.choice(
            name,
            default,
            &[("on", true), ("true", true), ("1", true), ("off", false), ("false", false), ("0", false)],
            "`on` or `off`",
        )
    }

    /// One of a few words (any case), each standing for a value.
    pub(super) fn choice<T: Copy>(
        &self,
        name: &'static str,
        default: T,
        words: &[(&str, T)],
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(name) else { return Ok(default) };
        let lower = v.to_ascii_lowercase();
        match words.iter().find(|(w, _)| *w == lower) {
            Some((_, value)) => Ok(*value),
            None => Err(ConfigError { variable: name, value: v, expected: expected.to_string() }),
        }
    }

    /// An http(s) URL with a host, without a trailing `/`.
    pub(super) fn url(&self, name: &'static str, example: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        if !matches!(reqwest::Url::parse(&v), Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
            return Err(ConfigError {
                variable: name,
                value: v,
                expected: format!("an http(s) URL such as {example}"),
            });
        }
        Ok(Some(v.trim_end_matches('/').to_string()))
    }
}
