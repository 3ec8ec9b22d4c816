//! The table row by row: what each shape forwards, where, under which name, and what it refuses.

use super::*;
use hyper::Method;

const GEN: &str =
    "/vertex/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";

fn parse(path: &str, method: Method) -> Result<VertexCall, Refusal> {
    VertexCall::parse(path, None, &method, "global")
}

#[test]
fn a_model_call_goes_to_its_region_or_global() {
    let call = parse(GEN, Method::POST).unwrap();
    assert_eq!(
        (call.model_label().as_str(), call.method, call.streaming),
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
    let global = parse(&GEN.replace("us-central1", "global"), Method::POST).unwrap();
    assert!(global.url(None, false).starts_with("https://aiplatform.googleapis.com/v1/projects/p1/locations/global/"));
    assert!(!global.may_use_global());
}

#[test]
fn hosts_per_location_as_googles_sdks_build_them() {
    for (location, host) in [
        ("global", "https://aiplatform.googleapis.com"),
        ("us", "https://aiplatform.us.rep.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("asia-northeast1", "https://asia-northeast1-aiplatform.googleapis.com"),
    ] {
        let call = parse(&GEN.replace("us-central1", location), Method::POST).unwrap();
        assert_eq!(
            call.url(None, false),
            format!(
                "{host}/v1/projects/p1/locations/{location}/publishers/google/models/gemini-2.5-flash:generateContent"
            )
        );
        assert_eq!(
            call.url(Some("http://127.0.0.1:9"), false).split("/v1/").next(),
            Some("http://127.0.0.1:9"),
            "the endpoint overrides all"
        );
    }
}

#[test]
fn streams_accounts_endpoints_and_reads() {
    let path = "/vertex/accounts/sa@p.iam.gserviceaccount.com/v1beta1/projects/p/locations/europe-west4/publishers/google/models/m:streamGenerateContent";
    let call = VertexCall::parse(path, Some("alt=sse"), &Method::POST, "global").unwrap();
    assert_eq!(call.account.as_deref(), Some("sa@p.iam.gserviceaccount.com"));
    assert!(call.streaming && call.url(None, false).ends_with("m:streamGenerateContent?alt=sse"));
    assert!(call.url(None, false).starts_with("https://europe-west4-aiplatform.googleapis.com/v1beta1/"));
    let predict = parse("/vertex/v1/projects/p/locations/us-east1/endpoints/123:predict", Method::POST).unwrap();
    assert_eq!(predict.model_label(), "endpoints/123");
    assert!(!predict.may_use_global());
    let read = parse("/vertex/v1beta1/projects/p/locations/us-east1/publishers/google/models/m", Method::GET).unwrap();
    assert_eq!((read.method, read.model_label().as_str()), ("get", "m"));
}

#[test]
fn every_row_of_the_table() {
    let base = "/vertex/v1beta1/projects/p/locations/us-central1";
    for (method, path, name, model, streaming) in [
        (Method::POST, "publishers/google/models/veo-3:predictLongRunning", "predictLongRunning", "veo-3", false),
        (Method::POST, "publishers/google/models/veo-3:fetchPredictOperation", "fetchPredictOperation", "veo-3", false),
        (Method::GET, "publishers/google/models/veo-3/operations/op-1", "operations.get", "veo-3", false),
        (Method::GET, "endpoints/7/operations/op-1", "operations.get", "endpoints/7", false),
        (
            Method::POST,
            "publishers/google/models/gemini-embedding-001:embedContent",
            "embedContent",
            "gemini-embedding-001",
            false,
        ),
        (Method::POST, "publishers/google/models/m:countTokens", "countTokens", "m", false),
        (Method::POST, "endpoints/openapi/chat/completions", "chat.completions", "-", false),
        (
            Method::POST,
            "publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
            "rawPredict",
            "claude-sonnet-4@20250514",
            false,
        ),
        (
            Method::POST,
            "publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict",
            "streamRawPredict",
            "claude-sonnet-4@20250514",
            true,
        ),
        (Method::POST, "publishers/anthropic/models/count-tokens:rawPredict", "countTokens", "-", false),
        (Method::POST, "cachedContents", "cachedContents.create", "-", false),
        (Method::GET, "cachedContents", "cachedContents.list", "-", false),
        (Method::GET, "cachedContents/c1", "cachedContents.get", "-", false),
        (Method::PATCH, "cachedContents/c1", "cachedContents.patch", "-", false),
        (Method::DELETE, "cachedContents/c1", "cachedContents.delete", "-", false),
        (Method::POST, "batchPredictionJobs", "batchPredictionJobs.create", "-", false),
        (Method::GET, "batchPredictionJobs", "batchPredictionJobs.list", "-", false),
        (Method::GET, "batchPredictionJobs/42", "batchPredictionJobs.get", "-", false),
        (Method::POST, "batchPredictionJobs/42:cancel", "batchPredictionJobs.cancel", "-", false),
    ] {
        let call =
            parse(&format!("{base}/{path}"), method.clone()).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
        assert_eq!((call.method, call.model_label().as_str(), call.streaming), (name, model, streaming), "{path}");
        assert!(
            call.url(None, false).ends_with(&format!("/v1beta1/projects/p/locations/us-central1/{path}")),
            "{path}"
        );
    }
    let anthropic =
        parse(&format!("{base}/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"), Method::POST)
            .unwrap();
    assert_eq!(
        (anthropic.dialect, anthropic.model.clone().unwrap().full().as_str()),
        (Dialect::Anthropic, "anthropic/claude-sonnet-4@20250514")
    );
}

#[test]
fn a_path_without_a_location_goes_to_the_configured_one() {
    let path = "/vertex/v1beta1/publishers/google/models/gemini-2.5-flash";
    let call = VertexCall::parse(path, None, &Method::GET, "eu").unwrap();
    assert_eq!((call.method, call.model_label().as_str()), ("get", "gemini-2.5-flash"));
    assert_eq!(
        call.url(None, false),
        "https://aiplatform.eu.rep.googleapis.com/v1beta1/publishers/google/models/gemini-2.5-flash"
    );
    assert!(!call.may_use_global());
    assert_eq!(VertexCall::parse(path, None, &Method::POST, "eu").unwrap_err().status, 405, "reads only");
    assert_eq!(parse("/vertex/v1/publishers/google/models/m:generateContent", Method::POST).unwrap_err().status, 404);
}

#[test]
fn bodies_name_models_and_streams() {
    let base = "/vertex/v1/projects/p/locations/global";
    let mut chat = parse(&format!("{base}/endpoints/openapi/chat/completions"), Method::POST).unwrap();
    assert_eq!(chat.body, BodyModel::ModelAndStream);
    chat.read_body(br#"{"model":"google/gemini-2.5-flash","stream":true,"messages":[]}"#).unwrap();
    assert_eq!((chat.model_label().as_str(), chat.streaming), ("gemini-2.5-flash", true));
    let mut count =
        parse(&format!("{base}/publishers/anthropic/models/count-tokens:rawPredict"), Method::POST).unwrap();
    count.read_body(br#"{"model":"claude-haiku-4-5@20251001","messages":[]}"#).unwrap();
    assert_eq!(count.model.clone().unwrap().full(), "anthropic/claude-haiku-4-5@20251001");
    let mut cache = parse(&format!("{base}/cachedContents"), Method::POST).unwrap();
    cache.read_body(br#"{"model":"projects/p/locations/global/publishers/google/models/gemini-2.5-pro"}"#).unwrap();
    assert_eq!(cache.model_label(), "gemini-2.5-pro");
    for bad in [&b"not json"[..], br#"{"messages":[]}"#, br#"{"model":""}"#, br#"["model"]"#] {
        let mut c = parse(&format!("{base}/batchPredictionJobs"), Method::POST).unwrap();
        assert_eq!(c.read_body(bad).unwrap_err().status, 400, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn the_allowlist_applies_to_path_and_body_models() {
    let allowed = AllowedModels::parse("gemini-2.5-flash,anthropic/claude-haiku-*").unwrap();
    let base = "/vertex/v1/projects/p/locations/global";
    assert!(parse(GEN, Method::POST).unwrap().check_model(&allowed).is_ok());
    let other = parse(&GEN.replace("gemini-2.5-flash", "gemini-2.5-pro"), Method::POST).unwrap();
    let e = other.check_model(&allowed).unwrap_err();
    assert_eq!(e.status, 403);
    assert!(e.message.contains("google/gemini-2.5-pro") && e.message.contains("VERTEX_BROKER_ALLOWED_MODELS"), "{e:?}");
    let mut chat = parse(&format!("{base}/endpoints/openapi/chat/completions"), Method::POST).unwrap();
    chat.read_body(br#"{"model":"google/gemini-2.0-flash"}"#).unwrap();
    assert_eq!(chat.check_model(&allowed).unwrap_err().status, 403);
    let mut count =
        parse(&format!("{base}/publishers/anthropic/models/count-tokens:rawPredict"), Method::POST).unwrap();
    count.read_body(br#"{"model":"claude-opus-4@20250514"}"#).unwrap();
    assert_eq!(count.check_model(&allowed).unwrap_err().status, 403);
    let list = parse(&format!("{base}/cachedContents"), Method::GET).unwrap();
    assert!(list.check_model(&allowed).is_ok(), "a call that names no model");
}

#[test]
fn only_the_rows_query_parameters_go_up() {
    let base = "/vertex/v1/projects/p/locations/us-central1";
    let with = |path: &str, query: &str, method: Method| {
        VertexCall::parse(&format!("{base}/{path}"), Some(query), &method, "global")
    };
    let stream = with("publishers/google/models/m:streamGenerateContent", "alt=sse", Method::POST).unwrap();
    assert!(stream.url(None, false).ends_with(":streamGenerateContent?alt=sse"));
    let list = with("cachedContents", "pageSize=10&pageToken=a%2Bb", Method::GET).unwrap();
    assert_eq!(list.query.as_deref(), Some("pageSize=10&pageToken=a%2Bb"), "encoded anew, same meaning");
    assert!(with("cachedContents/c", "updateMask=ttl", Method::PATCH).is_ok());
    for (path, query, method) in [
        ("endpoints/1", "$httpMethod=DELETE", Method::GET),
        ("endpoints/1", "%24httpMethod=DELETE", Method::GET),
        ("cachedContents/c", "$httpMethod=PATCH&updateMask=ttl", Method::GET),
        ("publishers/google/models/m:generateContent", "access_token=x", Method::POST),
        ("publishers/google/models/m:generateContent", "key=AIza", Method::POST),
        ("publishers/google/models/m:generateContent", "alt=sse&callback=f", Method::POST),
        ("publishers/google/models/m:generateContent", "upload_protocol=raw", Method::POST),
        ("publishers/google/models/m:generateContent", "fields=candidates", Method::POST),
        ("cachedContents", "$fields=x", Method::GET),
    ] {
        let e = with(path, query, method).unwrap_err();
        assert_eq!(e.status, 400, "{path}?{query}");
        let name = form_urlencoded::parse(query.as_bytes())
            .find(|(n, _)| !["alt", "updateMask"].contains(&n.as_ref()))
            .unwrap()
            .0;
        assert!(e.message.contains(&format!("{name:?}")), "{path}?{query}: names the parameter: {}", e.message);
    }
    assert!(with("endpoints/1", "%24httpMethod=DELETE", Method::GET)
        .unwrap_err()
        .message
        .contains("system parameters"));
}

#[test]
fn refuses_what_is_not_a_row() {
    for (path, method, status) in [
        ("/vertex/v2/projects/p/locations/l/publishers/google/models/m:generateContent", Method::POST, 404),
        ("/vertex/v1/projects/p/publishers/google/models/m:generateContent", Method::POST, 404),
        ("/vertex/v1/projects/p/locations/l/endpoints/1:undeployModel", Method::POST, 404),
        ("/vertex/v1/projects/p/locations/l/endpoints/1", Method::DELETE, 405),
        ("/vertex/v1/projects/p/locations/l/endpoints", Method::POST, 404),
        ("/vertex/v1/projects/p/locations/l/models/m:deploy", Method::POST, 404),
        ("/vertex/v1/projects/p/locations/l/tuningJobs", Method::POST, 404),
        ("/vertex/v1/projects/p/locations/l/batchPredictionJobs/1", Method::DELETE, 405),
        ("/vertex/v1/projects/p/locations/l/publishers/google/models/m", Method::DELETE, 405),
        ("/vertex/v1/projects/p/locations/l/datasets", Method::GET, 404),
        ("/vertex/v1/projects/p/locations/l/publishers/google/models/m:generateContent", Method::GET, 405),
        ("/vertex/v1/projects/p/locations/evil.example#/publishers/google/models/m:generateContent", Method::POST, 400),
        ("/vertex/v1/projects/p/locations/attacker.example%2F/models/m:predict", Method::POST, 400),
        ("/vertex/v1/projects/p/locations/US/publishers/google/models/m:generateContent", Method::POST, 400),
        ("/vertex/v1/projects/p/locations/l/publishers/google/models/../x:generateContent", Method::POST, 400),
        ("/vertex/v1/projects/p/locations/l/publishers/google/models//m:generateContent", Method::POST, 400),
        ("/vertex/v1/projects/p/locations/l/cachedContents:x/y", Method::GET, 404),
        ("/vertex/accounts/nobody/v1/projects/p/locations/l/endpoints/1:predict", Method::POST, 400),
    ] {
        let e = parse(path, method.clone()).unwrap_err();
        assert_eq!(e.status, status, "{method} {path}: {e:?}");
        assert!(!e.message.contains('\n'), "{path}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Path segments from the table's words and hostile bytes alike.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "projects",
                "p",
                "locations",
                "us-central1",
                "global",
                "us",
                "eu",
                "publishers",
                "google",
                "anthropic",
                "models",
                "m:generateContent",
                "count-tokens:rawPredict",
                "endpoints",
                "openapi",
                "chat",
                "completions",
                "cachedContents",
                "batchPredictionJobs",
                "1:cancel",
                "operations",
                "..",
                ".",
                "",
            ])
            .prop_map(str::to_string),
            "[a-zA-Z0-9:@%#?.\\-_ ]{0,12}",
        ]
    }

    /// Paths of every row, as a start for edits.
    const VALID: [&str; 6] = [
        "projects/p/locations/us-central1/publishers/google/models/m:generateContent",
        "projects/p/locations/eu/publishers/anthropic/models/count-tokens:rawPredict",
        "projects/p/locations/global/endpoints/openapi/chat/completions",
        "projects/p/locations/us/cachedContents/c1",
        "projects/p/locations/europe-west4/batchPredictionJobs/1:cancel",
        "publishers/google/models/m",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Whatever the path (a row's, with up to two segments replaced by anything), parsing
        /// never panics, and a forwarded call's URL is the location's own host with exactly the
        /// path received: nothing a caller writes moves the host or the path.
        #[test]
        fn a_forwarded_url_keeps_its_host_and_path(
            version in prop::sample::select(vec!["v1", "v1beta1"]),
            base in prop::sample::select(VALID.to_vec()),
            edits in prop::collection::vec((0usize..10, segment()), 0..3),
            method in prop::sample::select(vec![Method::GET, Method::POST, Method::PATCH, Method::DELETE]),
        ) {
            let mut segments: Vec<String> = base.split('/').map(str::to_string).collect();
            for (at, replacement) in edits {
                let at = at % segments.len();
                segments[at] = replacement;
            }
            let rest = segments.join("/");
            let Ok(call) = VertexCall::parse(&format!("/vertex/{version}/{rest}"), None, &method, "global") else {
                return Ok(());
            };
            let url = reqwest::Url::parse(&call.url(None, false)).unwrap();
            prop_assert_eq!(format!("{}://{}", url.scheme(), url.host_str().unwrap()), host(&call.location));
            prop_assert_eq!(url.path(), format!("/{version}/{rest}"));
            prop_assert!(url.query().is_none() && url.fragment().is_none());
        }
    }

    #[test]
    fn the_property_starts_from_paths_that_are_forwarded() {
        for (path, method) in
            VALID.iter().zip([Method::POST, Method::POST, Method::POST, Method::GET, Method::POST, Method::GET])
        {
            assert!(VertexCall::parse(&format!("/vertex/v1/{path}"), None, &method, "global").is_ok(), "{path}");
        }
    }
}
