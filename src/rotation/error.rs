//! Why a rotation step (or an operator's action on the engine) failed.

use std::time::Duration;

use crate::google::iam::IamError;
use crate::google::token::TokenError;
use crate::key::KeyError;
use crate::store::StoreError;

/// Why a step failed. Messages of the pre-checks are those of AWS's own rotation templates.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The secret has rotation turned off.
    #[error("Secret {arn} is not enabled for rotation")]
    NotEnabled {
        /// The secret.
        arn: String,
    },
    /// The event's version is not a version of the secret.
    #[error("Secret version {request_token} has no stage for rotation of secret {arn}")]
    NoStage {
        /// The event's ClientRequestToken.
        request_token: String,
        /// The secret.
        arn: String,
    },
    /// The event's version is not AWSPENDING (and not already AWSCURRENT).
    #[error("Secret version {request_token} not set as AWSPENDING for rotation of secret {arn}")]
    NotPending {
        /// The event's ClientRequestToken.
        request_token: String,
        /// The secret.
        arn: String,
    },
    /// The event names no step the engine knows.
    #[error("Invalid step parameter {step} for secret {arn}")]
    InvalidStep {
        /// The step named.
        step: String,
        /// The secret.
        arn: String,
    },
    /// A version does not hold a usable key.
    #[error("the {stage} version {version} of secret {arn} is not a usable Google service-account key: {source}")]
    BadSecret {
        /// The secret.
        arn: String,
        /// The version's stage.
        stage: &'static str,
        /// The version.
        version: String,
        /// Why the key does not parse.
        #[source]
        source: KeyError,
    },
    /// The pending key is another account's than the current one.
    #[error(
        "the pending key belongs to {pending}, but secret {arn} holds a key of {current}; a secret \
         rotates one service account"
    )]
    AccountMismatch {
        /// The secret.
        arn: String,
        /// The AWSCURRENT key's account.
        current: String,
        /// The pending key's account.
        pending: String,
    },
    /// Secrets Manager failed a call.
    #[error("Secrets Manager: {0}")]
    Store(#[from] StoreError),
    /// Google's IAM API failed a call.
    #[error("{0}")]
    Iam(#[from] IamError),
    /// The key that authenticates the IAM calls could not get a request_token.
    #[error(
        "could not get an access token for the IAM calls with {key}: {source}. Check that this key \
         is valid (for VERTEX_BROKER_ADMIN_SECRET_ID, the admin secret's AWSCURRENT key)"
    )]
    Auth {
        /// That key, as its id and account.
        key: String,
        /// The token endpoint's answer.
        #[source]
        source: TokenError,
    },
    /// The account is at Google's key limit and no key may be revoked to make room.
    #[error(
        "{account} is at Google's limit of 10 keys: {protected} are AWSCURRENT/AWSPREVIOUS of this \
         secret and {foreign} were not minted by it. Delete keys this secret did not mint \
         (`vertex-broker status` lists them) and rotate again"
    )]
    KeyLimit {
        /// The account.
        account: String,
        /// Keys held as AWSCURRENT or AWSPREVIOUS.
        protected: usize,
        /// Keys this secret did not mint.
        foreign: usize,
    },
    /// The new key did not mint a token within the propagation timeout.
    #[error(
        "the new key {key_id} could not mint a token within {waited:?} (last answer: {last}). Google \
         can take minutes to propagate a new key: raise VERTEX_BROKER_PROPAGATION_TIMEOUT and the \
         function timeout, then let Secrets Manager retry"
    )]
    PropagationTimeout {
        /// The new key.
        key_id: String,
        /// How long testSecret tried.
        waited: Duration,
        /// Google's last answer.
        last: String,
    },
    /// A revoke named the AWSCURRENT key.
    #[error(
        "refusing to revoke key {key_id}: it is the AWSCURRENT key of secret {arn}, in use by every \
         broker. Rotate first (`vertex-broker rotate`), then revoke it as --previous"
    )]
    RefuseCurrent {
        /// The key.
        key_id: String,
        /// The secret.
        arn: String,
    },
    /// A revoke found no key to revoke (why, in words).
    #[error("nothing to revoke: {0}")]
    NothingToRevoke(String),
    /// The token endpoint refused the new key for good (not a propagation delay).
    #[error("the new key {key_id} was refused by the token endpoint: {source}")]
    PendingRefused {
        /// The new key.
        key_id: String,
        /// The token endpoint's answer.
        #[source]
        source: TokenError,
    },
}
