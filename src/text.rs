//! Two small text rules used across the crate: how a comma-separated list is read, and how an
//! untrusted value is quoted into a one-line message.

/// Splits a comma-separated list (secret ids, emails, log directives), dropping blanks.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// An untrusted value for a one-line message: quoted, escaped, at most 100 characters.
pub fn printable(value: &str) -> String {
    let short: String = value.chars().take(100).collect();
    let mut out = format!("{short:?}");
    if short.len() < value.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_drop_blanks_and_spaces() {
        assert_eq!(split_list(" a, ,b ,,"), ["a", "b"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn printable_quotes_escapes_and_cuts() {
        assert_eq!(printable("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(150);
        assert!(printable(&long).ends_with('…') && printable(&long).len() < 110);
    }
}
