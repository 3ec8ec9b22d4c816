//! Why a rotation step (or an operator's action on the engine) failed.

use std::time::Duration;

use crate::google::iam::IamError;
use crate::google::token::TokenError;
use crate::key::KeyError;
use crate::store::StoreError;

/// Why a step failed. Messages of the pre-checks are those of AWS's own rotation templates.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("Secret {arn} is not enabled for rotation")]
    NotEnabled { arn: String },
    #[error("Secret version {token} has no stage for rotation of secret {arn}")]
    NoStage { token: String, arn: String },
    #[error("Secret version {token} not set as AWSPENDING for rotation of secret {arn}")]
    NotPending { token: String, arn: String },
    #[error("Invalid step parameter {step} for secret {arn}")]
    InvalidStep { step: String, arn: String },
    #[error("the {stage} version {version} of secret {arn} is not a usable Google service-account key: {source}")]
    BadSecret {
        arn: String,
        stage: &'static str,
        version: String,
        #[source]
        source: KeyError,
    },
    #[error(
        "the pending key belongs to {pending}, but secret {arn} holds a key of {current}; a secret \
         rotates one service account"
    )]
    AccountMismatch { arn: String, current: String, pending: String },
    #[error("Secrets Manager: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Iam(#[from] IamError),
    #[error(
        "could not get an access token for the IAM calls with {key}: {source}. Check that this key \
         is valid (for VERTEX_BROKER_ADMIN_SECRET_ID, the admin secret's AWSCURRENT key)"
    )]
    Auth {
        key: String,
        #[source]
        source: TokenError,
    },
    #[error(
        "{account} is at Google's limit of 10 keys: {protected} are AWSCURRENT/AWSPREVIOUS of this \
         secret and {foreign} were not minted by it. Delete keys this secret did not mint \
         (`vertex-broker status` lists them) and rotate again"
    )]
    KeyLimit { account: String, protected: usize, foreign: usize },
    #[error(
        "the new key {key_id} could not mint a token within {waited:?} (last answer: {last}). Google \
         can take minutes to propagate a new key: raise VERTEX_BROKER_PROPAGATION_TIMEOUT and the \
         function timeout, then let Secrets Manager retry"
    )]
    PropagationTimeout { key_id: String, waited: Duration, last: String },
    #[error(
        "refusing to revoke key {key_id}: it is the AWSCURRENT key of secret {arn}, in use by every \
         broker. Rotate first (`vertex-broker rotate`), then revoke it as --previous"
    )]
    RefuseCurrent { key_id: String, arn: String },
    #[error("nothing to revoke: {0}")]
    NothingToRevoke(String),
    #[error("the new key {key_id} was refused by the token endpoint: {source}")]
    PendingRefused {
        key_id: String,
        #[source]
        source: TokenError,
    },
}
