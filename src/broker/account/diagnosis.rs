//! A failed mint as a client or `doctor` reads it: what Google said, and what to change. Never
//! a key id or an endpoint (the log line has those).

use std::time::Duration;

use crate::google::token::{TokenError, DEFAULT_LIFETIME};

/// Which call of a federation or impersonation mint failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoogleCall {
    /// Google STS: the AWS identity for a federated token.
    Exchange,
    /// IAM Credentials: a service account's token for the caller's.
    Impersonate,
}

/// A federation or impersonation failure as a client or `doctor` reads it: what Google said,
/// and what to change.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// What Google said, in a sentence.
    pub reason: String,
    /// What to change, when we know.
    pub fix: Option<String>,
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{}; {fix}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Explains a failed `call`; `lifetime` is the impersonated token lifetime asked for, if any.
pub fn diagnose(call: GoogleCall, e: &TokenError, lifetime: Option<Duration>) -> Diagnosis {
    let (what, fix) = match call {
        GoogleCall::Exchange => (
            "Google STS refused to exchange the AWS identity",
            "check the pool provider named in VERTEX_BROKER_CREDENTIAL_CONFIG, its AWS account and attribute \
             condition, and that this role's principal is allowed (`vertex-broker doctor` shows each step)",
        ),
        GoogleCall::Impersonate => (
            "IAM Credentials refused to impersonate the service account",
            "grant the caller roles/iam.serviceAccountTokenCreator (a key's account) or \
             roles/iam.workloadIdentityUser (a federated principal) on it, and each delegate on the next",
        ),
    };
    match e {
        TokenError::Refused { error, description, .. } => {
            let reason = format!("{what} ({error}: {description})");
            let long = lifetime.is_some_and(|l| l > DEFAULT_LIFETIME);
            let fix = if long && (error == "INVALID_ARGUMENT" || description.contains("lifetime")) {
                "VERTEX_BROKER_TOKEN_LIFETIME above 3600s needs the account listed in the org policy \
                 constraints/iam.allowServiceAccountCredentialLifetimeExtension, or a lifetime of at most 3600s"
            } else {
                fix
            };
            Diagnosis { reason, fix: Some(fix.into()) }
        }
        TokenError::Unreachable { message, .. } => Diagnosis {
            reason: format!("{what}: the call did not complete ({message})"),
            fix: Some("check AWS credentials and the network path to Google".into()),
        },
        TokenError::BadResponse { message, .. } => {
            Diagnosis { reason: format!("{what}: unexpected answer ({message})"), fix: None }
        }
    }
}

/// A token endpoint failure as a client may read it: what failed and what to do.
pub(super) fn explain(e: &TokenError) -> String {
    match e {
        TokenError::Refused { error, description, .. } if e.is_invalid_grant() => format!(
            "Google refused the service account's key ({error}: {description}); the broker re-read the secret. If \
             this persists, the AWSCURRENT key was revoked or disabled: run `vertex-broker status SECRET`, then \
             `vertex-broker rotate SECRET`"
        ),
        TokenError::Refused { error, description, .. } => {
            format!("Google's token endpoint refused the request ({error}: {description})")
        }
        TokenError::Unreachable { message, .. } => format!(
            "Google's token endpoint did not answer ({message}); check the network path to it (VPC egress, NAT)"
        ),
        TokenError::BadResponse { message, .. } => {
            format!("Google's token endpoint answered unexpectedly ({message})")
        }
    }
}
