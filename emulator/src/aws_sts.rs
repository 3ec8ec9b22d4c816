//! A minimal AWS STS for the emulator's own AWS credentials, so the keyless path runs offline
//! (`vertex-broker dev --keyless`): `GetCallerIdentity` at `/aws-sts/`, SigV4-verified with the
//! secret of a key [`crate::Emulator::issue_aws_credentials`] issued, answered in AWS's XML.
//! Tests use moto instead; this one knows only its own keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::aws::{Header, SubjectToken};
use crate::Shared;

/// Where the route lives: give `{emulator}/aws-sts` as the AWS STS endpoint.
pub const PATH: &str = "/aws-sts/";

/// A key the emulator issued: its secret and whose it is.
#[derive(Debug, Clone)]
pub struct AwsKey {
    pub secret: String,
    pub arn: String,
}

/// Temporary AWS credentials, as STS hands them out.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    /// The access key id, `ASIA...` as STS issues for sessions.
    pub access_key_id: String,
    /// The secret the emulator recomputes SigV4 signatures with.
    pub secret_access_key: String,
    /// The session token, sent as `x-amz-security-token`.
    pub session_token: String,
    /// The assumed-role ARN GetCallerIdentity answers with.
    pub arn: String,
}

pub async fn get_caller_identity(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let request = SubjectToken {
        url: format!("http://{host}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or(PATH)),
        method: method.to_string(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some(Header { key: k.to_string(), value: v.to_str().ok()?.to_string() }))
            .collect(),
    };
    if !uri.query().unwrap_or_default().contains("Action=GetCallerIdentity") {
        return error(StatusCode::BAD_REQUEST, "InvalidAction", "Only GetCallerIdentity is served here.");
    }
    let key = request.access_key_id().and_then(|id| shared.world().aws_keys.get(id).cloned());
    let Some(key) = key else {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    };
    if let Err(refused) = request.verify_signature(&key.secret) {
        let code = if refused.0.contains("SignatureExpired") { "SignatureExpired" } else { "SignatureDoesNotMatch" };
        return error(
            StatusCode::FORBIDDEN,
            code,
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let account = key.arn.split(':').nth(4).unwrap_or_default();
    let body = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
         <Arn>{}</Arn><UserId>AROAEMULATOR:{}</UserId><Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>emulator</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        key.arn,
        key.arn.rsplit('/').next().unwrap_or_default()
    );
    ([("content-type", "text/xml")], body).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>emulator</RequestId></ErrorResponse>"
    );
    (status, [("content-type", "text/xml")], body).into_response()
}
