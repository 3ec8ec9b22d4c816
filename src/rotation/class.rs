//! `ErrorClass`: what kind of failure a rotation step met, named for the operator who must act
//! on it. The rotation Lambda reports it as its errorType (what Secrets Manager and CloudWatch
//! show) and as the `ErrorType` of its EMF step metric, so an alarm can tell a full key quota from
//! a Google outage without reading a message.

use super::RotationError;
use crate::google::iam::IamError;

/// The class of a rotation failure, reported to Lambda and CloudWatch as its errorType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Secrets Manager's event does not fit the secret (rotation off, unknown version or step).
    PreCheckFailed,
    /// A version does not hold a usable key of the rotated account.
    InvalidSecretValue,
    /// Secrets Manager refused or failed a call.
    SecretsManagerError,
    /// The account holds Google's maximum of 10 keys.
    KeyLimitReached,
    /// The organization policy `iam.disableServiceAccountKeyCreation` applies.
    KeyCreationForbidden,
    /// The new key did not mint a token within the propagation timeout.
    PropagationTimeout,
    /// The token endpoint refused the new key for good.
    PendingKeyRefused,
    /// Google did not answer, or answered 429/5xx: retry later.
    GoogleUnavailable,
    /// The calling account lacks an IAM permission.
    GooglePermissionDenied,
    /// The key that authenticates the IAM calls was refused.
    GoogleAuthFailed,
    /// Any other answer from Google (not found, unexpected).
    GoogleError,
    /// An operator's revoke was refused (the AWSCURRENT key, or nothing to revoke).
    RevokeRefused,
}

impl ErrorClass {
    /// The name Lambda and CloudWatch show.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::PreCheckFailed => "PreCheckFailed",
            ErrorClass::InvalidSecretValue => "InvalidSecretValue",
            ErrorClass::SecretsManagerError => "SecretsManagerError",
            ErrorClass::KeyLimitReached => "KeyLimitReached",
            ErrorClass::KeyCreationForbidden => "KeyCreationForbidden",
            ErrorClass::PropagationTimeout => "PropagationTimeout",
            ErrorClass::PendingKeyRefused => "PendingKeyRefused",
            ErrorClass::GoogleUnavailable => "GoogleUnavailable",
            ErrorClass::GooglePermissionDenied => "GooglePermissionDenied",
            ErrorClass::GoogleAuthFailed => "GoogleAuthFailed",
            ErrorClass::GoogleError => "GoogleError",
            ErrorClass::RevokeRefused => "RevokeRefused",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RotationError {
    /// The class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            RotationError::NotEnabled { .. }
            | RotationError::NoStage { .. }
            | RotationError::NotPending { .. }
            | RotationError::InvalidStep { .. } => ErrorClass::PreCheckFailed,
            RotationError::BadSecret { .. } | RotationError::AccountMismatch { .. } => ErrorClass::InvalidSecretValue,
            RotationError::Store(_) => ErrorClass::SecretsManagerError,
            RotationError::Iam(e) => match e {
                IamError::KeyLimit { .. } => ErrorClass::KeyLimitReached,
                IamError::KeyCreationForbidden { .. } => ErrorClass::KeyCreationForbidden,
                IamError::PermissionDenied { .. } => ErrorClass::GooglePermissionDenied,
                IamError::Unauthenticated { .. } => ErrorClass::GoogleAuthFailed,
                IamError::Unavailable { .. } | IamError::Timeout { .. } | IamError::Connect { .. } => {
                    ErrorClass::GoogleUnavailable
                }
                IamError::NotFound { .. } | IamError::Unexpected { .. } => ErrorClass::GoogleError,
            },
            RotationError::Auth { source, .. } if source.is_transient() => ErrorClass::GoogleUnavailable,
            RotationError::Auth { .. } => ErrorClass::GoogleAuthFailed,
            RotationError::KeyLimit { .. } => ErrorClass::KeyLimitReached,
            RotationError::PropagationTimeout { .. } => ErrorClass::PropagationTimeout,
            RotationError::PendingRefused { .. } => ErrorClass::PendingKeyRefused,
            RotationError::RefuseCurrent { .. } | RotationError::NothingToRevoke(_) => ErrorClass::RevokeRefused,
        }
    }
}
