//! The IAM service-account keys API, as `iam.googleapis.com/v1` answers it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::google_error::ApiError;
use crate::state::{project_of, Key, World, MAX_KEYS};
use crate::{crypto, Shared};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
const NEVER: &str = "9999-12-31T23:59:59Z";

fn key_name(email: &str, id: &str) -> String {
    format!("projects/{}/serviceAccounts/{email}/keys/{id}", project_of(email))
}

fn key_json(email: &str, key: &Key) -> Value {
    let mut v = json!({
        "name": key_name(email, &key.id),
        "validAfterTime": key.created.to_rfc3339_opts(SecondsFormat::Secs, true),
        "validBeforeTime": key.valid_before.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or(NEVER.into()),
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED",
    });
    if key.disabled {
        v["disabled"] = json!(true);
    }
    v
}

/// Checks the bearer token: issued by us, unexpired, with a scope that reaches IAM, and held by
/// the target account itself or one of its configured admins.
pub(crate) fn authorize(world: &World, headers: &HeaderMap, target: &str, permission: &str) -> Result<(), ApiError> {
    let token = bearer(headers).and_then(|t| world.bearer(t)).ok_or_else(ApiError::unauthenticated)?;
    if !token.scopes.iter().any(|s| s == CLOUD_PLATFORM || s == IAM_SCOPE) {
        return Err(ApiError::insufficient_scopes());
    }
    let allowed = world.accounts.get(target).is_some_and(|a| token.email == target || a.admins.contains(&token.email));
    if !allowed {
        return Err(ApiError::permission_denied(permission, &format!("projects/-/serviceAccounts/{target}")));
    }
    Ok(())
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "keyTypes")]
    key_types: Option<String>,
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    Path((_project, email)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(err) = shared.fault("iam.list").await {
        return err.into_response();
    }
    let world = shared.world();
    if let Err(e) = authorize(&world, &headers, &email, "iam.serviceAccountKeys.list") {
        return e.into_response();
    }
    // Only user-managed keys exist here; a SYSTEM_MANAGED-only filter finds none.
    if q.key_types.as_deref().is_some_and(|t| !t.contains("USER_MANAGED")) {
        return Json(json!({})).into_response();
    }
    let now = chrono::Utc::now();
    let keys: Vec<Value> =
        world.accounts[&email].keys.iter().filter(|k| k.propagated(now)).map(|k| key_json(&email, k)).collect();
    if keys.is_empty() {
        Json(json!({})).into_response()
    } else {
        Json(json!({ "keys": keys })).into_response()
    }
}

pub async fn create(
    State(shared): State<Arc<Shared>>,
    Path((_project, email)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(err) = shared.fault("iam.create").await {
        return err.into_response();
    }
    {
        let world = shared.world();
        if let Err(e) = authorize(&world, &headers, &email, "iam.serviceAccountKeys.create") {
            return e.into_response();
        }
        let account = &world.accounts[&email];
        if account.key_creation_disabled {
            return ApiError::key_creation_disabled().into_response();
        }
        if account.keys.len() >= MAX_KEYS {
            return ApiError::key_limit().into_response();
        }
    }
    // Key generation is the slow part: do it outside the lock.
    let generated = tokio::task::spawn_blocking(crypto::generate_rsa_2048).await.expect("keygen task");
    let mut world = shared.world();
    if world.accounts[&email].keys.len() >= MAX_KEYS {
        return ApiError::key_limit().into_response();
    }
    let id = world.add_key(&email, &generated, false);
    let file = world.key_file(&email, &id, &generated.private_pem);
    let key = world.accounts[&email].keys.iter().find(|k| k.id == id).expect("just added");
    let mut body = key_json(&email, key);
    body["privateKeyType"] = json!("TYPE_GOOGLE_CREDENTIALS_FILE");
    body["privateKeyData"] = json!(STANDARD.encode(file));
    Json(body).into_response()
}

fn not_found(email: &str, id: &str) -> ApiError {
    ApiError::new(404, "NOT_FOUND", format!("Service account key {} does not exist.", key_name(email, id)))
}

pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path((_project, email, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(err) = shared.fault("iam.get").await {
        return err.into_response();
    }
    let world = shared.world();
    if let Err(e) = authorize(&world, &headers, &email, "iam.serviceAccountKeys.get") {
        return e.into_response();
    }
    let now = chrono::Utc::now();
    match world.accounts[&email].keys.iter().find(|k| k.id == id && k.propagated(now)) {
        Some(k) => Json(key_json(&email, k)).into_response(),
        None => not_found(&email, &id).into_response(),
    }
}

pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((_project, email, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(err) = shared.fault("iam.delete").await {
        return err.into_response();
    }
    let mut world = shared.world();
    if let Err(e) = authorize(&world, &headers, &email, "iam.serviceAccountKeys.delete") {
        return e.into_response();
    }
    let keys = &mut world.account_mut(&email).keys;
    let Some(pos) = keys.iter().position(|k| k.id == id) else {
        return not_found(&email, &id).into_response();
    };
    keys.remove(pos);
    world.counters_mut(&email).keys_deleted += 1;
    Json(json!({})).into_response()
}

/// `POST .../keys/{KEYID}:disable` and `:enable`.
pub async fn action(
    State(shared): State<Arc<Shared>>,
    Path((_project, email, id_and_verb)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some((id, verb)) = id_and_verb.split_once(':') else {
        return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response();
    };
    let disable = match verb {
        "disable" => true,
        "enable" => false,
        _ => return ApiError::new(404, "NOT_FOUND", format!("Method not found: {verb}")).into_response(),
    };
    if let Some(err) = shared.fault(if disable { "iam.disable" } else { "iam.enable" }).await {
        return err.into_response();
    }
    let mut world = shared.world();
    let permission = if disable { "iam.serviceAccountKeys.disable" } else { "iam.serviceAccountKeys.enable" };
    if let Err(e) = authorize(&world, &headers, &email, permission) {
        return e.into_response();
    }
    match world.account_mut(&email).keys.iter_mut().find(|k| k.id == id) {
        Some(k) => {
            k.disabled = disable;
            Json(json!({})).into_response()
        }
        None => not_found(&email, id).into_response(),
    }
}
