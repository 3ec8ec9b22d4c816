//! Google's Security Token Service, `sts.googleapis.com/v1/token`: exchanges an AWS subject
//! token for a federated access token, as workload identity federation does. The subject token's
//! signature is verified, the signed GetCallerIdentity is forwarded to AWS STS to learn the
//! caller, and the caller's ARN becomes a principal the way Google maps AWS identities.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::aws::{self, SubjectToken};
use crate::google_error::OAuthError;
use crate::state::{IssuedToken, TOKEN_LIFETIME};
use crate::{crypto, Shared};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const AWS_SUBJECT: &str = "urn:ietf:params:aws:token-type:aws4_request";

#[derive(Deserialize)]
pub struct ExchangeForm {
    grant_type: Option<String>,
    requested_token_type: Option<String>,
    subject_token_type: Option<String>,
    subject_token: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
}

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError { http: 400, error: "invalid_request", description: description.into() }
}

pub async fn token(State(shared): State<Arc<Shared>>, Form(form): Form<ExchangeForm>) -> Response {
    let _in_flight = shared.enter("sts");
    if let Some(fault) = shared.take_fault("sts").await {
        let error = if fault == 429 { "rate_limit_exceeded" } else { "temporarily_unavailable" };
        return OAuthError { http: fault, error, description: "Injected failure.".into() }.into_response();
    }
    let over_quota = shared.world().quotas.take("sts");
    if let Err(e) = over_quota {
        return e.into_response();
    }
    match exchange(&shared, form).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn exchange(shared: &Shared, form: ExchangeForm) -> Result<serde_json::Value, OAuthError> {
    if form.grant_type.as_deref() != Some(TOKEN_EXCHANGE) {
        return Err(OAuthError {
            http: 400,
            error: "unsupported_grant_type",
            description: format!("Invalid grant_type: {}", form.grant_type.unwrap_or_default()),
        });
    }
    if form.requested_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Err(invalid_request("Invalid value for \"requested_token_type\"."));
    }
    if form.subject_token_type.as_deref() != Some(AWS_SUBJECT) {
        return Err(invalid_request("Invalid value for \"subject_token_type\"."));
    }
    let audience = form.audience.unwrap_or_default();
    let (provider, sts_endpoint) = {
        let world = shared.world();
        (world.aws_providers.get(&audience).cloned(), world.aws_sts_endpoint.clone())
    };
    let provider = provider.ok_or_else(|| OAuthError {
        http: 400,
        error: "invalid_target",
        description: "The target service indicated by the \"audience\" parameters is invalid. This might either be \
                      because the pool or provider is disabled or deleted or because it doesn't exist."
            .into(),
    })?;
    let sts_endpoint = sts_endpoint.ok_or_else(|| OAuthError {
        http: 500,
        error: "server_error",
        description: "The emulator has no AWS STS endpoint (google-emulator --aws-sts-endpoint).".into(),
    })?;
    let scopes: Vec<String> = form.scope.unwrap_or_default().split_whitespace().map(str::to_string).collect();
    if scopes.is_empty() {
        return Err(OAuthError {
            http: 400,
            error: "invalid_scope",
            description: "The scope parameter is required.".into(),
        });
    }
    let refused = |e: aws::Refused| OAuthError::invalid_grant(e.0);
    let subject = SubjectToken::parse(form.subject_token.as_deref().unwrap_or_default()).map_err(refused)?;
    subject.check_shape(&audience, &sts_endpoint).map_err(refused)?;
    let key_id = subject
        .access_key_id()
        .ok_or_else(|| OAuthError::invalid_grant("The AWS request is missing a SigV4 Authorization header."))?;
    match aws::secret_of(&shared.http, &sts_endpoint, key_id).await {
        Ok(Some(secret)) if secret.is_empty() => {
            return Err(OAuthError::invalid_grant(
                "Received invalid AWS response of type InvalidClientTokenId with error message: The security token \
                 included in the request is invalid.",
            ))
        }
        Ok(Some(secret)) => subject.verify_signature(&secret).map_err(refused)?,
        Ok(None) => {} // not moto: AWS verifies the signature when the request is replayed
        Err(e) => return Err(OAuthError { http: 503, error: "temporarily_unavailable", description: e }),
    }
    let caller = aws::caller(&shared.http, &sts_endpoint, &subject).await.map_err(refused)?;
    if caller.account != provider.aws_account {
        return Err(OAuthError {
            http: 400,
            error: "unauthorized_client",
            description: "The given credential is rejected by the attribute condition.".into(),
        });
    }
    let pool = audience
        .trim_start_matches("//iam.googleapis.com/")
        .rsplit_once("/providers/")
        .map_or(audience.as_str(), |(pool, _)| pool)
        .to_string();
    let principal = format!("principal://iam.googleapis.com/{pool}/subject/{}", caller.arn);
    let groups = vec![
        format!("principalSet://iam.googleapis.com/{pool}/attribute.aws_role/{}", aws::aws_role(&caller.arn)),
        format!("principalSet://iam.googleapis.com/{pool}/*"),
    ];
    let access_token = format!("ya29.emu-sts-{}", crypto::random_token(32));
    let mut world = shared.world();
    world.counters_mut(&principal).access_tokens += 1;
    world.tokens.insert(
        access_token.clone(),
        IssuedToken {
            email: principal,
            key_id: String::new(),
            groups,
            scopes,
            expires: Utc::now() + chrono::Duration::seconds(TOKEN_LIFETIME),
        },
    );
    Ok(json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME - 1,
    }))
}
