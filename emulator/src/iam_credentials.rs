//! The IAM Service Account Credentials API (`iamcredentials.googleapis.com/v1`):
//! `generateAccessToken`, `generateIdToken` and `signJwt` for an account the caller may
//! impersonate, through an optional chain of delegates. Each link needs
//! `roles/iam.serviceAccountTokenCreator` or `roles/iam.workloadIdentityUser` on the next;
//! access tokens live at most an hour unless the account is listed in the org policy
//! `constraints/iam.allowServiceAccountCredentialLifetimeExtension` (then 12 hours).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::google_error::ApiError;
use crate::iam::bearer;
use crate::state::{IssuedToken, World, TOKEN_CREATOR, TOKEN_LIFETIME, WORKLOAD_IDENTITY_USER};
use crate::{crypto, Shared};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
/// Default and, without the org policy, longest access-token lifetime.
const DEFAULT_LIFETIME: i64 = 3600;
/// Longest lifetime the org policy can allow; also the furthest `exp` signJwt accepts.
const MAX_LIFETIME: i64 = 43200;
const DELEGATE_PREFIX: &str = "projects/-/serviceAccounts/";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRequest {
    /// Clients send `null` for none.
    delegates: Option<Vec<String>>,
    scope: Option<Vec<String>>,
    lifetime: Option<String>,
    audience: Option<String>,
    #[serde(default)]
    include_email: bool,
    payload: Option<String>,
}

/// `POST /v1/projects/-/serviceAccounts/{email}:{method}`.
pub async fn call(
    State(shared): State<Arc<Shared>>,
    Path((_project, target_and_method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<CredentialsRequest>>,
) -> Response {
    let Some((target, method)) = target_and_method.rsplit_once(':') else {
        return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response();
    };
    let permission = match method {
        "generateAccessToken" => "iam.serviceAccounts.getAccessToken",
        "generateIdToken" => "iam.serviceAccounts.getOpenIdToken",
        "signJwt" => "iam.serviceAccounts.signJwt",
        _ => return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response(),
    };
    let _in_flight = shared.enter("iamcredentials");
    if let Some(err) = shared.fault("iamcredentials").await {
        return err.into_response();
    }
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let mut world = shared.world();
    if let Err(e) = authorize(&world, &headers, target, request.delegates.as_deref().unwrap_or_default(), permission) {
        return e.into_response();
    }
    let answer = match method {
        "generateAccessToken" => access_token(&mut world, target, request),
        "generateIdToken" => id_token(&mut world, target, request),
        _ => sign_jwt(&world, request),
    };
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The caller's token must be ours and unexpired, with a scope that reaches IAM; then every link
/// of the chain caller -> delegates... -> target must hold a token-creating role on the next.
fn authorize(
    world: &World,
    headers: &HeaderMap,
    target: &str,
    delegates: &[String],
    permission: &str,
) -> Result<(), ApiError> {
    let token = bearer(headers).and_then(|t| world.bearer(t)).ok_or_else(ApiError::unauthenticated)?;
    if !token.scopes.iter().any(|s| s == CLOUD_PLATFORM || s == IAM_SCOPE) {
        return Err(ApiError::insufficient_scopes());
    }
    let roles = [TOKEN_CREATOR, WORKLOAD_IDENTITY_USER];
    let denied = |email: &str| ApiError::permission_denied(permission, &format!("{DELEGATE_PREFIX}{email}"));
    let mut chain = Vec::with_capacity(delegates.len() + 1);
    for d in delegates {
        let email = d.strip_prefix(DELEGATE_PREFIX).ok_or_else(|| {
            ApiError::new(
                400,
                "INVALID_ARGUMENT",
                format!("Invalid form of delegate: {d}. Expected {DELEGATE_PREFIX}EMAIL."),
            )
        })?;
        chain.push(email);
    }
    chain.push(target);
    if !world.has_role_on(token, chain[0], &roles) {
        return Err(denied(chain[0]));
    }
    for link in chain.windows(2) {
        let holder = IssuedToken {
            email: link[0].to_string(),
            key_id: String::new(),
            groups: Vec::new(),
            scopes: Vec::new(),
            expires: Utc::now(),
        };
        if !world.has_role_on(&holder, link[1], &roles) {
            return Err(denied(link[1]));
        }
    }
    Ok(())
}

/// `"3600s"` (fractions allowed) as whole seconds.
fn parse_lifetime(text: &str) -> Option<i64> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds > 0.0).then_some(seconds.ceil() as i64)
}

fn access_token(world: &mut World, target: &str, request: CredentialsRequest) -> Result<Value, ApiError> {
    let scopes = request.scope.unwrap_or_default();
    if scopes.is_empty() {
        return Err(ApiError::new(400, "INVALID_ARGUMENT", "Scope required."));
    }
    let lifetime = match request.lifetime.as_deref() {
        None => DEFAULT_LIFETIME,
        Some(text) => parse_lifetime(text).ok_or_else(|| {
            ApiError::new(
                400,
                "INVALID_ARGUMENT",
                format!("Invalid value at 'lifetime' ({text}): expected seconds such as \"3600s\"."),
            )
        })?,
    };
    let extended = world.accounts.get(target).is_some_and(|a| a.lifetime_extension);
    if lifetime > MAX_LIFETIME || (lifetime > DEFAULT_LIFETIME && !extended) {
        let max = if extended { MAX_LIFETIME } else { DEFAULT_LIFETIME };
        return Err(ApiError::new(
            400,
            "INVALID_ARGUMENT",
            format!(
                "The lifetime of the requested token ({lifetime}s) exceeds the maximum of {max}s for this service \
                 account. A lifetime up to 43200s requires the service account to be listed in the organization \
                 policy constraints/iam.allowServiceAccountCredentialLifetimeExtension."
            ),
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": [{
                "type": "constraints/iam.allowServiceAccountCredentialLifetimeExtension",
                "subject": format!("{DELEGATE_PREFIX}{target}"),
                "description": "Token lifetime exceeds the allowed maximum."
            }]
        })));
    }
    let expires = Utc::now() + chrono::Duration::seconds(lifetime);
    let access_token = format!("ya29.emu-iam-{}", crypto::random_token(32));
    world.tokens.insert(
        access_token.clone(),
        IssuedToken { email: target.to_string(), key_id: String::new(), groups: Vec::new(), scopes, expires },
    );
    world.counters_mut(target).access_tokens += 1;
    Ok(json!({ "accessToken": access_token, "expireTime": expires.to_rfc3339_opts(SecondsFormat::Secs, true) }))
}

fn id_token(world: &mut World, target: &str, request: CredentialsRequest) -> Result<Value, ApiError> {
    let audience = request.audience.filter(|a| !a.is_empty()).ok_or_else(|| {
        ApiError::new(400, "INVALID_ARGUMENT", "Invalid value for audience: the audience is required.")
    })?;
    let client_id = world.account_mut(target).client_id.clone();
    let now = Utc::now().timestamp();
    let mut claims = json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": client_id,
        "sub": client_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
    });
    if request.include_email {
        claims["email"] = json!(target);
        claims["email_verified"] = json!(true);
    }
    let token = world.signing_key.sign_jwt(&claims);
    world.counters_mut(target).id_tokens += 1;
    Ok(json!({ "token": token }))
}

fn sign_jwt(world: &World, request: CredentialsRequest) -> Result<Value, ApiError> {
    let payload: Value = request
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::new(400, "INVALID_ARGUMENT", "Payload must be a JSON object."))?;
    let exp = payload.get("exp").and_then(Value::as_i64);
    if exp.is_some_and(|exp| exp > Utc::now().timestamp() + MAX_LIFETIME) {
        return Err(ApiError::new(400, "INVALID_ARGUMENT", "The exp claim must be at most 12 hours in the future."));
    }
    let jwk = world.signing_key.jwk();
    Ok(json!({ "keyId": jwk["kid"], "signedJwt": world.signing_key.sign_jwt(&payload) }))
}
