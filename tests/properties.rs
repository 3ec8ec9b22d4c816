//! Property-based tests, bounded so the test command stays quick, of what the fuzz targets
//! (`make fuzz`) explore without bound: the metadata request handling (guards, then routes) and
//! the key-file parser.

use proptest::prelude::*;
use vertex_broker::broker::guard::{self, ALLOWED_HOSTS};
use vertex_broker::broker::metadata::{Leaf, Route};
use vertex_broker::google::scopes::{valid_scope, Audience, ScopeKey};
use vertex_broker::key::ServiceAccountKey;

const T: &str = "/computeMetadata/v1/instance/service-accounts/default";

fn method() -> impl Strategy<Value = String> {
    prop_oneof![Just("GET".to_string()), Just("POST".to_string()), Just("HEAD".to_string()), "[A-Z]{1,8}"]
}

/// Request targets near the routes, with hostile bytes percent-encoded in the query.
fn target() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        Just("/".to_string()),
        Just(format!("{T}/token")),
        Just(format!("{T}/identity")),
        Just(format!("{T}/")),
        Just("/computeMetadata/v1/project/project-id".to_string()),
        Just("/vertex-broker/v1/status".to_string()),
        "/[a-zA-Z0-9/._@-]{0,40}",
    ];
    let value = prop::collection::vec(
        prop_oneof![
            Just("https://www.googleapis.com/auth/cloud-platform".to_string()),
            Just("openid".to_string()),
            Just("https://example.run.app".to_string()),
            "[a-z:/.]{0,20}",
            "%[0-9A-F]{2}",
        ],
        0..4,
    )
    .prop_map(|parts| parts.join(","));
    let key = prop_oneof![Just("scopes"), Just("audience"), Just("recursive"), Just("x")];
    (path, prop::option::of((key, value))).prop_map(|(path, query)| match query {
        Some((k, v)) => format!("{path}?{k}={v}"),
        None => path,
    })
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("host"),
        Just("metadata-flavor"),
        Just("origin"),
        Just("sec-fetch-site"),
        Just("forwarded"),
        Just("via"),
        Just("x-forwarded-for"),
        Just("x-forwarded-host"),
        Just("user-agent"),
    ];
    let value = prop_oneof![
        Just("Google".to_string()),
        Just("127.0.0.1:2775".to_string()),
        Just("localhost".to_string()),
        Just("attacker.example:2775".to_string()),
        Just("[::1]:2775".to_string()),
        "[ -~]{0,30}",
    ];
    prop::collection::vec((name.prop_map(str::to_string), value), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_request_that_passes_the_guards_is_a_local_metadata_get(
        method in method(),
        target in target(),
        headers in headers(),
    ) {
        let mut builder = hyper::Request::builder().method(method.as_str()).uri(target.as_str());
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let Ok(req) = builder.body(()) else { return Ok(()) };
        match guard::check(req.method(), req.uri(), req.headers()) {
            Err(refusal) => {
                prop_assert!(!refusal.message.contains(['\n', '\r']) && refusal.message.len() < 600);
            }
            Ok(()) => {
                let h = req.headers();
                prop_assert_eq!(req.method(), hyper::Method::GET);
                prop_assert_eq!(h.get_all("host").iter().count(), 1);
                let host = h["host"].to_str().unwrap();
                let name = host.rsplit_once(':').filter(|(n, p)| !n.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(':')).map_or(host, |(n, _)| n);
                prop_assert!(ALLOWED_HOSTS.iter().any(|a| a.eq_ignore_ascii_case(name)), "{}", host);
                prop_assert_eq!(h["metadata-flavor"].as_bytes(), b"Google");
                for forbidden in ["origin", "sec-fetch-site", "forwarded", "via", "x-forwarded-for", "x-forwarded-host"] {
                    prop_assert!(!h.contains_key(forbidden), "{}", forbidden);
                }
                match Route::parse(req.uri().path(), req.uri().query()) {
                    Err(reply) => {
                        prop_assert!(reply.status == 400 || reply.status == 404);
                        prop_assert!(!reply.message.contains('\n'));
                    }
                    Ok(Route::Account { leaf: Leaf::Token(Some(key)), .. }) => {
                        let scopes: Vec<&str> = key.scopes().collect();
                        prop_assert!(scopes.iter().all(|s| valid_scope(s)));
                        prop_assert!(scopes.windows(2).all(|w| w[0] < w[1]));
                    }
                    Ok(Route::Account { leaf: Leaf::Identity(audience), .. }) => {
                        prop_assert!(Audience::parse(audience.as_str()).is_ok());
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    #[test]
    fn equal_scope_sets_share_one_key_whatever_the_order_and_separators(
        scopes in prop::collection::vec("https://[a-z]{1,8}\\.example/[a-z.]{0,12}", 1..6),
        shuffle in any::<prop::sample::Index>(),
        comma in any::<bool>(),
    ) {
        let key = ScopeKey::parse(&scopes.join(",")).unwrap();
        let mut other = scopes.clone();
        other.rotate_left(shuffle.index(scopes.len()));
        other.push(scopes[0].clone());
        let sep = if comma { "," } else { " " };
        prop_assert_eq!(ScopeKey::parse(&other.join(sep)).unwrap(), key.clone());
        prop_assert_eq!(ScopeKey::parse(key.as_str()).unwrap(), key);
    }
}

/// A real key file (a fresh RSA key from the emulator), generated once for the key properties.
fn key_file() -> &'static (String, String) {
    static FILE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let pem = google_emulator::generate_rsa_2048().private_pem;
        let file = serde_json::json!({
            "type": "service_account", "project_id": "proj",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": pem,
            "client_email": "app@proj.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        (file.to_string(), pem)
    })
}

/// One mutation of a key file: a field removed or replaced, or the text cut or spliced.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Replace(usize, serde_json::Value),
    /// The private key pasted into another field (found by the fuzz target).
    Misplace(usize),
    Truncate(prop::sample::Index),
    Splice(prop::sample::Index, String),
}

const FIELDS: [&str; 6] = ["type", "project_id", "private_key_id", "private_key", "client_email", "token_uri"];

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        "[ -~]{0,40}".prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!(["a", 1])),
    ];
    prop_oneof![
        (0..FIELDS.len()).prop_map(Mutation::Remove),
        ((0..FIELDS.len()), value).prop_map(|(i, v)| Mutation::Replace(i, v)),
        (0..FIELDS.len()).prop_map(Mutation::Misplace),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), "[ -~]{1,8}").prop_map(|(i, s)| Mutation::Splice(i, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_key_parser_never_panics_and_never_shows_the_key(mutations in prop::collection::vec(mutation(), 0..3)) {
        let (file, pem) = key_file();
        let mut text = file.clone();
        for m in &mutations {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            text = match (m, v.as_object_mut()) {
                (Mutation::Remove(i), Some(o)) => { o.remove(FIELDS[*i]); v.to_string() }
                (Mutation::Replace(i, value), Some(o)) => { o.insert(FIELDS[*i].into(), value.clone()); v.to_string() }
                (Mutation::Misplace(i), Some(o)) => { o.insert(FIELDS[*i].into(), format!("x{pem}").into()); v.to_string() }
                (Mutation::Truncate(at), _) => text.chars().take(at.index(text.chars().count() + 1)).collect(),
                (Mutation::Splice(at, s), _) => {
                    let mut chars: Vec<char> = text.chars().collect();
                    let at = at.index(chars.len() + 1);
                    chars.splice(at..at, s.chars());
                    chars.into_iter().collect()
                }
                (_, None) => text,
            };
        }
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let shown = match ServiceAccountKey::parse(&text) {
            Ok(key) => {
                prop_assert_eq!(key.raw(), text.as_str());
                format!("{key:?} {key}")
            }
            Err(e) => format!("{e} {e:?}"),
        };
        prop_assert!(body.iter().all(|l| !shown.contains(l)), "the key shows in: {}", shown);
    }
}

#[test]
fn the_unmutated_key_file_parses() {
    assert!(ServiceAccountKey::parse(&key_file().0).is_ok());
}
