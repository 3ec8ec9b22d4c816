//! Who may ask: the checks every request passes before any route runs. Anything on 127.0.0.1 may
//! be hostile, and a headless browser visiting an attacker's page is the dangerous one: through
//! DNS rebinding the page is "same-origin" with the broker and can send any header. What gives it
//! away is the `Host` it must send (the attacker's name) and the fetch metadata a browser adds.
//!
//! Order: the request target's form, proxy headers, browser headers, `Host`, target length
//! ([`check_caller`], which the Vertex gateway applies too), then for the metadata endpoints the
//! method and `Metadata-Flavor`. The first failure is the answer, in one line.

use hyper::header::{HeaderMap, HOST};
use hyper::{Method, StatusCode, Uri};

use super::refusal::Refusal;

/// Longest request target accepted (path and query).
pub const MAX_URI: usize = 4096;

/// `Host` names the broker answers to (any port): loopback and the GCE metadata server's names.
pub const ALLOWED_HOSTS: [&str; 5] = ["127.0.0.1", "localhost", "[::1]", "metadata.google.internal", "169.254.169.254"];

/// Runs every check of the metadata endpoints; `Ok` means a route may answer.
pub fn check(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    check_caller(uri, headers)?;
    if method != Method::GET {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} not allowed; use GET", crate::text::printable(method.as_str())),
        ));
    }
    if headers.get("metadata-flavor").map(|v| v.as_bytes()) != Some(b"Google") {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "missing request header 'Metadata-Flavor: Google'"));
    }
    Ok(())
}

/// Who is asking, whatever the route: a local program naming a loopback or metadata host
/// directly, not a proxy relaying someone else nor a web page.
pub fn check_caller(uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "absolute-form request targets (GET http://host/path) are refused: this is not a proxy; \
             send GET /path with a Host header",
        ));
    }
    if let Some(name) = headers.keys().map(|k| k.as_str()).find(|k| is_proxy_header(k)) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("requests relayed through a proxy ({name} header) are refused"),
        ));
    }
    if let Some(name) = headers.keys().map(|k| k.as_str()).find(|k| is_browser_header(k)) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "requests from a web browser ({name} header) are refused: no web page may read \
                 credentials"
            ),
        ));
    }
    check_host(headers)?;
    let target = uri.path().len() + uri.query().map_or(0, str::len);
    if target > MAX_URI {
        return Err(Refusal::new(StatusCode::URI_TOO_LONG, format!("request target longer than {MAX_URI} bytes")));
    }
    Ok(())
}

/// What only a browser sends: `Origin`, and the fetch metadata naming the requesting site, the
/// destination and a user's navigation. `Sec-Fetch-Mode` alone is not one: Node's built-in
/// `fetch` (undici) sends `sec-fetch-mode: cors` on every request, and a browser that sends it
/// always sends `Sec-Fetch-Site` and `Sec-Fetch-Dest` with it.
fn is_browser_header(name: &str) -> bool {
    matches!(name, "origin" | "sec-fetch-site" | "sec-fetch-dest" | "sec-fetch-user")
}

/// `X-Forwarded-*`, `Forwarded` and `Via`: a proxy is relaying someone else's request.
fn is_proxy_header(name: &str) -> bool {
    name == "forwarded" || name == "via" || name.starts_with("x-forwarded-")
}

fn check_host(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a request needs exactly one Host header (127.0.0.1, localhost or metadata.google.internal)",
        ));
    };
    let value = host.to_str().unwrap_or("");
    if allowed_host(value) {
        return Ok(());
    }
    Err(Refusal::new(
        StatusCode::FORBIDDEN,
        format!(
            "Host {} is not a loopback or metadata name (DNS rebinding?); call 127.0.0.1, localhost, \
             [::1], metadata.google.internal or 169.254.169.254",
            crate::text::printable(host.to_str().unwrap_or("(not text)"))
        ),
    ))
}

/// Whether `value` is an allowed name, optionally followed by `:port`.
pub fn allowed_host(value: &str) -> bool {
    let (name, port) = match value.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, port)) => (&value[..inner.len() + 2], port),
            None => return false,
        },
        None => value.find(':').map_or((value, ""), |i| value.split_at(i)),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && ALLOWED_HOSTS.iter().any(|allowed| name.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut builder = hyper::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(()).unwrap();
        check(req.method(), req.uri(), req.headers())
    }

    const OK: [(&str, &str); 2] = [("host", "127.0.0.1:2775"), ("metadata-flavor", "Google")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        OK.iter().copied().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn loopback_and_metadata_names_are_served_with_or_without_a_port() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:2775",
            "localhost",
            "LOCALHOST:80",
            "[::1]",
            "[::1]:2775",
            "metadata.google.internal",
            "Metadata.Google.Internal:80",
            "169.254.169.254",
            "169.254.169.254:80",
        ] {
            assert!(allowed_host(host), "{host}");
            assert_eq!(request("GET", "/", &[("host", host), ("metadata-flavor", "Google")]), Ok(()), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused_naming_the_host() {
        for host in [
            "attacker.example:2775",
            "attacker.example",
            "127.0.0.1.nip.io",
            "localhost.",
            "127.0.0.2",
            "[::1",
            "[::2]:80",
            "localhost:",
            "localhost:http",
            "localhost:123456",
            "localhost:80:80",
            "",
        ] {
            assert!(!allowed_host(host), "{host}");
            let r = request("GET", "/", &[("host", host), ("metadata-flavor", "Google")]).unwrap_err();
            assert_eq!(r.status, 403, "{host}");
            assert!(r.message.contains("not a loopback or metadata name"), "{host}: {}", r.message);
        }
        let r = request("GET", "/", &[("metadata-flavor", "Google")]).unwrap_err();
        assert_eq!((r.status.as_u16(), r.message.contains("Host header")), (400, true), "{r:?}");
        let r = request("GET", "/", &[("host", "localhost"), ("host", "localhost"), ("metadata-flavor", "Google")])
            .unwrap_err();
        assert_eq!(r.status, 400, "two Host headers");
    }

    #[test]
    fn browser_and_proxy_headers_are_refused() {
        for (name, value) in [
            ("origin", "http://attacker.example"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-user", "?1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=10.0.0.1"),
            ("via", "1.1 proxy"),
        ] {
            let r = request("GET", "/", &with(&[(name, value)])).unwrap_err();
            assert_eq!(r.status, 403, "{name}");
            assert!(r.message.contains(name), "{name}: {}", r.message);
        }
    }

    #[test]
    fn nodes_fetch_is_not_a_browser() {
        // What undici adds to every request; a browser adds Sec-Fetch-Site and -Dest with it.
        let node = with(&[("sec-fetch-mode", "cors"), ("accept-language", "*"), ("user-agent", "node")]);
        assert_eq!(request("GET", "/", &node), Ok(()));
        let chromium =
            with(&[("sec-fetch-mode", "cors"), ("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "empty")]);
        assert_eq!(request("GET", "/", &chromium).unwrap_err().status, 403);
    }

    #[test]
    fn absolute_form_method_flavor_and_length() {
        let r = request("GET", "http://evil.example/computeMetadata/v1/", &OK).unwrap_err();
        assert_eq!(r.status, 400);
        assert!(r.message.contains("absolute-form"));
        assert_eq!(request("POST", "/", &OK).unwrap_err().status, 405);
        assert_eq!(request("GET", "/", &[("host", "localhost")]).unwrap_err().status, 403);
        assert_eq!(
            request("GET", "/", &[("host", "localhost"), ("metadata-flavor", "google")]).unwrap_err().status,
            403
        );
        let long = format!("/?scopes={}", "a".repeat(MAX_URI));
        assert_eq!(request("GET", &long, &OK).unwrap_err().status, 414);
    }

    #[test]
    fn every_refusal_is_one_line() {
        let long = "x".repeat(500);
        let r = request("GET", "/", &[("host", long.as_str()), ("metadata-flavor", "Google")]).unwrap_err();
        assert!(!r.message.contains('\n') && r.message.len() < 400, "{}", r.message);
    }
}
