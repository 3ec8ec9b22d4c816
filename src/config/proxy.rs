//! The proxy the gateway reaches Vertex through: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` (either case), read as curl and Google's libraries read them. Only plain-HTTP
//! proxies, which the gateway asks for a CONNECT tunnel; a value it cannot use is refused at start
//! rather than ignored, since calls that silently skip a required proxy fail far from the cause.

use hyper::Uri;

use super::vars::Vars;
use super::ConfigError;

/// The proxies named for each kind of destination, validated; `no` as written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// For `https://` destinations (Vertex): `HTTPS_PROXY`, else `ALL_PROXY`.
    pub https: Option<String>,
    /// For `http://` destinations (a `VERTEX_BROKER_VERTEX_ENDPOINT` in plain HTTP): `HTTP_PROXY`,
    /// else `ALL_PROXY`.
    pub http: Option<String>,
    /// `NO_PROXY`: hosts, domains and networks reached directly.
    pub no: Option<String>,
}

impl std::fmt::Debug for Proxies {
    /// The proxies without any user and password they carry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies")
            .field("https", &self.https.as_deref().map(without_userinfo))
            .field("http", &self.http.as_deref().map(without_userinfo))
            .field("no", &self.no)
            .finish()
    }
}

impl Proxies {
    pub(super) fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let all = first(vars, ["ALL_PROXY", "all_proxy"])?;
        Ok(Self {
            https: first(vars, ["HTTPS_PROXY", "https_proxy"])?.or_else(|| all.clone()),
            http: first(vars, ["HTTP_PROXY", "http_proxy"])?.or(all),
            no: vars.get("NO_PROXY").or_else(|| vars.get("no_proxy")),
        })
    }
}

/// The first of `names` that is set, checked to be a proxy the gateway can use.
fn first<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    names: [&'static str; 2],
) -> Result<Option<String>, ConfigError> {
    for name in names {
        if let Some(value) = vars.get(name) {
            return check(name, value).map(Some);
        }
    }
    Ok(None)
}

fn check(variable: &'static str, value: String) -> Result<String, ConfigError> {
    let usable = value
        .parse::<Uri>()
        .ok()
        .filter(|uri| uri.scheme_str().is_none_or(|s| s.eq_ignore_ascii_case("http")) && uri.authority().is_some());
    match usable {
        Some(_) => Ok(value),
        None => Err(ConfigError {
            variable,
            value: without_userinfo(&value),
            expected: "a plain-HTTP proxy such as http://proxy.internal:3128, which the Vertex gateway asks for \
                       CONNECT tunnels (https:// and socks proxies are not supported); unset it to connect directly"
                .into(),
        }),
    }
}

/// `value` with any `user:password@` taken out: a proxy's credentials appear in no error or log.
fn without_userinfo(value: &str) -> String {
    let (scheme, rest) = value.split_once("://").map_or(("", value), |(s, r)| (s, r));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_string(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Proxies, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Proxies::read(&Vars(move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())))
    }

    #[test]
    fn curls_variables_in_either_case_with_all_proxy_behind() {
        assert_eq!(read(&[]).unwrap(), Proxies::default());
        let p = read(&[("https_proxy", "http://a:3128"), ("ALL_PROXY", "b:8080"), ("no_proxy", "localhost")]).unwrap();
        assert_eq!(p.https.as_deref(), Some("http://a:3128"));
        assert_eq!(p.http.as_deref(), Some("b:8080"), "ALL_PROXY for what has no proxy of its own");
        assert_eq!(p.no.as_deref(), Some("localhost"));
        let p = read(&[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:1")]).unwrap();
        assert_eq!(p.https.as_deref(), Some("http://upper:1"));
    }

    #[test]
    fn unusable_proxies_are_refused_without_their_password() {
        for (name, value) in [
            ("HTTPS_PROXY", "https://user:s3cret@proxy:443"),
            ("ALL_PROXY", "socks5://user:s3cret@proxy:1080"),
            ("HTTP_PROXY", "http://"),
        ] {
            let e = read(&[(name, value)]).unwrap_err();
            assert_eq!(e.variable, name);
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(e.to_string().contains("CONNECT"), "{e}");
        }
        let p = read(&[("HTTPS_PROXY", "http://user:s3cret@proxy:3128")]).unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(format!("{p:?}").contains("***@proxy:3128"));
    }
}
