//! The OAuth 2.0 token endpoint (JWT-bearer grant) and Google's public signing keys.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crypto::{self, Jwt};
use crate::google_error::OAuthError;
use crate::state::{IssuedToken, CLOCK_SKEW, MAX_ASSERTION_LIFETIME, TOKEN_LIFETIME};
use crate::Shared;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const GOOGLE_TOKEN_AUD: &str = "https://oauth2.googleapis.com/token";

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

pub async fn token(State(shared): State<Arc<Shared>>, Form(form): Form<TokenForm>) -> Response {
    let _in_flight = shared.enter("token");
    if let Some(fault) = shared.take_fault("token").await {
        let error = if fault == 429 { "rate_limit_exceeded" } else { "temporarily_unavailable" };
        return OAuthError { http: fault, error, description: "Injected failure.".into() }.into_response();
    }
    let over_quota = shared.world().quotas.take("token");
    if let Err(e) = over_quota {
        return e.into_response();
    }
    if form.grant_type.as_deref() != Some(JWT_BEARER) {
        return OAuthError {
            http: 400,
            error: "unsupported_grant_type",
            description: format!("Invalid grant_type: {}", form.grant_type.unwrap_or_default()),
        }
        .into_response();
    }
    match mint(&shared, form.assertion.as_deref().unwrap_or_default()) {
        Ok(body) => Json(body).into_response(),
        Err((email, err)) => {
            if let Some(email) = email {
                shared.world().counters_mut(&email).token_failures += 1;
            }
            err.into_response()
        }
    }
}

type MintError = (Option<String>, OAuthError);

fn mint(shared: &Shared, assertion: &str) -> Result<Value, MintError> {
    let jwt = Jwt::parse(assertion).ok_or((None, OAuthError::bad_signature()))?;
    let claim = |name: &str| jwt.claims.get(name).and_then(Value::as_str).map(str::to_string);
    let email = claim("iss").ok_or((None, OAuthError::account_not_found()))?;
    let fail = |e: OAuthError| (Some(email.clone()), e);
    let mut world = shared.world();
    let now = Utc::now();
    let account = world.accounts.get(&email).ok_or_else(|| fail(OAuthError::account_not_found()))?;
    let kid = jwt.header.get("kid").and_then(Value::as_str);
    let signer = account
        .keys
        .iter()
        .filter(|k| !k.disabled && k.propagated(now) && kid.is_none_or(|kid| kid == k.id))
        .filter(|k| k.valid_before.is_none_or(|t| t > now))
        .find(|k| jwt.verifies_with(&k.public_der))
        .map(|k| k.id.clone());
    let Some(key_id) = signer else {
        return Err(fail(OAuthError::bad_signature()));
    };
    let aud = claim("aud").unwrap_or_default();
    if aud != world.token_uri() && aud != GOOGLE_TOKEN_AUD {
        return Err(fail(OAuthError::invalid_grant(format!(
            "Invalid JWT: Failed audience check. The right audience is {}.",
            world.token_uri()
        ))));
    }
    let (iat, exp) = (jwt.claims.get("iat").and_then(Value::as_i64), jwt.claims.get("exp").and_then(Value::as_i64));
    let (Some(iat), Some(exp)) = (iat, exp) else {
        return Err(fail(OAuthError::bad_times()));
    };
    let t = now.timestamp();
    if exp <= iat || exp - iat > MAX_ASSERTION_LIFETIME || iat > t + CLOCK_SKEW || exp < t - CLOCK_SKEW {
        return Err(fail(OAuthError::bad_times()));
    }
    let client_id = account.client_id.clone();

    if let Some(audience) = claim("target_audience") {
        let id_token = world.signing_key.sign_jwt(&json!({
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": client_id,
            "sub": client_id,
            "email": email,
            "email_verified": true,
            "iat": t,
            "exp": t + TOKEN_LIFETIME,
        }));
        world.counters_mut(&email).id_tokens += 1;
        return Ok(json!({ "id_token": id_token }));
    }
    let scopes: Vec<String> = claim("scope").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    if scopes.is_empty() {
        return Err(fail(OAuthError {
            http: 400,
            error: "invalid_scope",
            description: "Invalid OAuth scope or ID token audience provided.".into(),
        }));
    }
    let access_token = format!("ya29.emu-{}", crypto::random_token(32));
    world.tokens.insert(
        access_token.clone(),
        IssuedToken {
            email: email.clone(),
            key_id,
            groups: Vec::new(),
            scopes,
            expires: now + chrono::Duration::seconds(TOKEN_LIFETIME),
        },
    );
    world.counters_mut(&email).access_tokens += 1;
    Ok(json!({ "access_token": access_token, "expires_in": TOKEN_LIFETIME - 1, "token_type": "Bearer" }))
}

/// `GET /oauth2/v3/certs`: the JWKS that verifies the ID tokens this emulator issues.
pub async fn certs(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "keys": [shared.world().signing_key.jwk()] }))
}
