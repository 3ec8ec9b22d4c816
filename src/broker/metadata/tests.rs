//! The metadata routes and guards without a network: what each path parses to, and what the
//! broker answers before any token is minted.

use std::sync::Arc;

use super::*;
use crate::broker::BrokerSettings;
use crate::config::TokenEndpoints;
use crate::store::MemoryStore;

fn parse(target: &str) -> Result<Route<'_>, Refusal> {
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    Route::parse(path, query)
}

#[test]
fn routes_name_what_google_libraries_ask_for() {
    assert_eq!(parse("/computeMetadata/v1/project/project-id").unwrap(), Route::ProjectId);
    assert_eq!(
        parse("/computeMetadata/v1/instance/service-accounts/?recursive=true").unwrap(),
        Route::ListAccounts { recursive: true }
    );
    let account = |leaf| Route::Account { name: "default", leaf };
    assert_eq!(
        parse("/computeMetadata/v1/instance/service-accounts/default/token").unwrap(),
        account(Leaf::Token(None))
    );
    assert_eq!(
        parse("/computeMetadata/v1/instance/service-accounts/default/?recursive=1").unwrap(),
        account(Leaf::Recursive)
    );
    assert_eq!(
        parse("/computeMetadata/v1/instance/service-accounts/a@p.iam.gserviceaccount.com/email").unwrap(),
        Route::Account { name: "a@p.iam.gserviceaccount.com", leaf: Leaf::Email }
    );
}

#[test]
fn scope_sets_share_one_key_and_bad_input_is_a_one_line_400() {
    let token = |q: &str| match parse(&format!("/computeMetadata/v1/instance/service-accounts/default/token?{q}")) {
        Ok(Route::Account { leaf: Leaf::Token(key), .. }) => Ok(key),
        Ok(other) => panic!("{other:?}"),
        Err(reply) => Err(reply),
    };
    let a = token("scopes=https://www.googleapis.com/auth/b,https://www.googleapis.com/auth/a").unwrap();
    let b = token("scopes=https://www.googleapis.com/auth/a%20https://www.googleapis.com/auth/b,https://www.googleapis.com/auth/a").unwrap();
    assert_eq!(a, b, "order and duplicates do not make a new cache slot");
    let no_audience = parse("/computeMetadata/v1/instance/service-accounts/default/identity").map(|_| None);
    for bad in [token("scopes=ftp://x"), no_audience] {
        let reply = bad.unwrap_err();
        assert_eq!((reply.status.as_u16(), reply.message.contains('\n')), (400, false), "{reply:?}");
    }
    let missing = parse("/computeMetadata/v1/instance/service-accounts/default/sshKeys").unwrap_err();
    assert_eq!(missing.status, 404);
}

fn broker(token_endpoints: TokenEndpoints) -> Broker {
    let settings = BrokerSettings { token_endpoints, ..BrokerSettings::for_secrets(vec!["s".into()]) };
    Broker::new(&settings, Arc::new(MemoryStore::new())).unwrap()
}

async fn get(broker: &Broker, target: &str, flavor: bool) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert("host", "127.0.0.1:2775".parse().unwrap());
    if flavor {
        headers.insert("metadata-flavor", "Google".parse().unwrap());
    }
    handle(broker, &Method::GET, &target.parse().unwrap(), &headers).await
}

#[tokio::test]
async fn guards_come_before_routes_and_token_free_mode_refuses_tokens_only() {
    let on = broker(TokenEndpoints::On);
    assert_eq!(get(&on, "/computeMetadata/v1/project/project-id", false).await.status, 403, "no Metadata-Flavor");
    let scopes = get(&on, "/computeMetadata/v1/instance/service-accounts/default/scopes", true).await;
    assert_eq!(
        (scopes.status.as_u16(), scopes.body.as_str()),
        (200, "https://www.googleapis.com/auth/cloud-platform\n")
    );
    let off = broker(TokenEndpoints::Off);
    for leaf in ["token", "identity?audience=https://x.example"] {
        let reply = get(&off, &format!("/computeMetadata/v1/instance/service-accounts/default/{leaf}"), true).await;
        assert_eq!(reply.status, 403, "{leaf}");
        assert!(reply.body.contains("VERTEX_BROKER_TOKEN_ENDPOINTS=off"), "{}", reply.body);
    }
    assert_eq!(get(&off, "/computeMetadata/v1/instance/service-accounts/default/scopes", true).await.status, 200);
}

#[tokio::test]
async fn gateway_mode_hands_out_the_gateway_token_and_no_id_token() {
    let gw = broker(TokenEndpoints::Gateway);
    let expected = gw.gateway().caller_token().expose().to_string();
    for scopes in ["", "?scopes=https://www.googleapis.com/auth/cloud-platform", "?scopes=openid,email"] {
        let reply =
            get(&gw, &format!("/computeMetadata/v1/instance/service-accounts/default/token{scopes}"), true).await;
        assert_eq!((reply.status.as_u16(), reply.content_type), (200, "application/json"), "{}", reply.body);
        let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(v["access_token"], expected.as_str(), "no mint: MemoryStore holds no key at all");
        assert_eq!((v["expires_in"].as_i64(), v["token_type"].as_str()), (Some(3600), Some("Bearer")));
    }
    let other = broker(TokenEndpoints::Gateway);
    assert_ne!(other.gateway().caller_token().expose(), expected, "random per broker");
    let id =
        get(&gw, "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x.example", true)
            .await;
    assert_eq!(id.status, 403);
    assert!(id.body.contains("VERTEX_BROKER_TOKEN_ENDPOINTS=gateway"), "{}", id.body);
}
