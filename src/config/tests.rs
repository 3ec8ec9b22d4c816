//! Every variable's default, parse and refusal, read through a map instead of the environment.

use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.port, 2775);
    assert_eq!(c.scopes.as_str(), crate::google::scopes::CLOUD_PLATFORM);
    assert_eq!(c.secret_ttl, Duration::from_secs(300));
    assert_eq!(c.propagation_timeout, Duration::from_secs(120));
    assert_eq!(c.iam_endpoint, DEFAULT_IAM_ENDPOINT);
    assert_eq!(c.revoke, RevokeMode::Delete);
    assert!(c.secret_ids.is_empty() && c.admin_secret_id.is_none());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.vertex, VertexGateway::default());
    assert!(c.token_endpoints == TokenEndpoints::On && c.audit);
    assert_eq!(c.metrics_namespace.as_deref(), Some("VertexBroker"));
}

#[test]
fn gateway_settings() {
    let c = config(&[
        ("VERTEX_BROKER_VERTEX_ENDPOINT", "http://127.0.0.1:9/"),
        ("VERTEX_BROKER_VERTEX_RETRIES", "0"),
        ("VERTEX_BROKER_VERTEX_FALLBACK", "global"),
        ("VERTEX_BROKER_VERTEX_MAX_BODY_MB", "6"),
        ("VERTEX_BROKER_VERTEX_DEADLINE", "10s"),
        ("VERTEX_BROKER_TOKEN_ENDPOINTS", "off"),
        ("VERTEX_BROKER_METRICS", "off"),
        ("VERTEX_BROKER_AUDIT", "OFF"),
        ("https_proxy", "proxy.internal:3128"),
    ])
    .unwrap();
    assert_eq!(
        c.vertex,
        VertexGateway {
            endpoint: Some("http://127.0.0.1:9".into()),
            deadline: Duration::from_secs(10),
            retries: 0,
            fallback_global: true,
            max_body: 6 * 1024 * 1024,
            location: "global".into(),
            allowed_models: AllowedModels::default(),
            proxies: Proxies { https: Some("proxy.internal:3128".into()), http: None, no: None },
        }
    );
    assert!(c.token_endpoints == TokenEndpoints::Off && !c.audit && c.metrics_namespace.is_none());
    let c = config(&[
        ("VERTEX_BROKER_TOKEN_ENDPOINTS", "Gateway"),
        ("VERTEX_BROKER_VERTEX_LOCATION", "eu"),
        ("VERTEX_BROKER_ALLOWED_MODELS", "gemini-2.5-*"),
    ])
    .unwrap();
    assert_eq!((c.token_endpoints, c.vertex.location.as_str()), (TokenEndpoints::Gateway, "eu"));
    assert!(c.vertex.allowed_models.is_set());
    for (variable, value) in [
        ("VERTEX_BROKER_TOKEN_ENDPOINTS", "maybe"),
        ("VERTEX_BROKER_VERTEX_LOCATION", "evil.example"),
        ("VERTEX_BROKER_ALLOWED_MODELS", "gemini 2"),
    ] {
        assert_eq!(config(&[(variable, value)]).unwrap_err().variable, variable);
    }
}

#[test]
fn parses_lists_and_durations() {
    let c = config(&[
        ("VERTEX_BROKER_SECRET_ID", " a, arn:aws:secretsmanager:x:1:secret:b ,"),
        ("VERTEX_BROKER_SCOPES", "https://x/s2,https://x/s1 openid"),
        ("VERTEX_BROKER_MAX_SLOTS", "8"),
        ("VERTEX_BROKER_INVOKE_BUDGET", "250ms"),
        ("VERTEX_BROKER_SECRET_TTL", "90s"),
        ("VERTEX_BROKER_PROPAGATION_TIMEOUT", "5m"),
        ("VERTEX_BROKER_REVOKE", "disable"),
        ("VERTEX_BROKER_IAM_ENDPOINT", "http://127.0.0.1:9/"),
    ])
    .unwrap();
    assert_eq!(c.secret_ids, vec!["a", "arn:aws:secretsmanager:x:1:secret:b"]);
    assert_eq!(c.scopes.to_vec(), vec!["https://x/s1", "https://x/s2", "openid"]);
    assert_eq!(c.limits.max_slots, 8);
    assert_eq!(c.limits.invoke_budget, Duration::from_millis(250));
    assert_eq!(c.secret_ttl, Duration::from_secs(90));
    assert_eq!(c.propagation_timeout, Duration::from_secs(300));
    assert_eq!(c.revoke, RevokeMode::Disable);
    assert_eq!(c.iam_endpoint, "http://127.0.0.1:9");
}

#[test]
fn errors_name_the_variable() {
    for (var, value) in [
        ("VERTEX_BROKER_PORT", "0"),
        ("VERTEX_BROKER_PORT", "http"),
        ("VERTEX_BROKER_SECRET_TTL", "soon"),
        ("VERTEX_BROKER_PROPAGATION_TIMEOUT", "0s"),
        ("VERTEX_BROKER_REVOKE", "shred"),
        ("VERTEX_BROKER_IAM_ENDPOINT", "iam.googleapis.com"),
        ("VERTEX_BROKER_SCOPES", "cloud-platform"),
        ("VERTEX_BROKER_SCOPES", "https://x/a\rb"),
        ("VERTEX_BROKER_MAX_CONNECTIONS", "0"),
        ("VERTEX_BROKER_MAX_SLOTS", "many"),
        ("VERTEX_BROKER_MINT_RATE", "-1"),
        ("VERTEX_BROKER_HEADER_TIMEOUT", "0s"),
        ("VERTEX_BROKER_TOKEN_ENDPOINTS", "no"),
        ("VERTEX_BROKER_VERTEX_ENDPOINT", "aiplatform.googleapis.com"),
        ("VERTEX_BROKER_VERTEX_RETRIES", "11"),
        ("VERTEX_BROKER_VERTEX_FALLBACK", "us-east1"),
        ("VERTEX_BROKER_VERTEX_MAX_BODY_MB", "1e3"),
        ("VERTEX_BROKER_METRICS_NAMESPACE", "a:b"),
        ("VERTEX_BROKER_AUDIT", "maybe"),
    ] {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.variable, var);
        assert!(err.to_string().starts_with(var), "{err}");
    }
}
