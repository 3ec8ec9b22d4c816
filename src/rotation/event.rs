//! The vocabulary of a rotation: what Secrets Manager sends, the four steps, what each did.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The event Secrets Manager sends the rotation function.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    pub step: String,
    /// The secret's ARN.
    pub secret_id: String,
    /// The version being rotated to.
    pub client_request_token: String,
    /// Set when rotation crosses accounts or assumes a role; passed on to PutSecretValue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_token: Option<String>,
}

/// The four steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Mint a key and store it as AWSPENDING.
    CreateSecret,
    /// Check the pending key belongs to the rotated account.
    SetSecret,
    /// Mint a token with the pending key.
    TestSecret,
    /// Make the pending version AWSCURRENT and revoke aged-out keys.
    FinishSecret,
}

impl Step {
    /// The steps in the order Secrets Manager runs them.
    pub const ALL: [Step; 4] = [Step::CreateSecret, Step::SetSecret, Step::TestSecret, Step::FinishSecret];

    /// The step named as in the event (`createSecret`...).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }

    /// The step's name as in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The version was already AWSCURRENT: nothing to do.
    AlreadyCurrent,
    /// createSecret minted `key_id` and stored it as AWSPENDING (after revoking `revoked`).
    Created {
        /// The new key.
        key_id: String,
        /// Keys revoked to make room.
        revoked: Vec<String>,
    },
    /// createSecret found the pending key already stored.
    AlreadyCreated {
        /// The pending key.
        key_id: String,
    },
    /// setSecret checked the pending key belongs to the rotated account.
    Verified {
        /// The pending key.
        key_id: String,
    },
    /// testSecret minted a token with the pending key after `attempts` tries.
    Tested {
        /// The pending key.
        key_id: String,
        /// Tries it took.
        attempts: u32,
        /// Time spent waiting for propagation.
        waited: Duration,
    },
    /// finishSecret made `key_id` AWSCURRENT and revoked aged-out keys.
    Promoted {
        /// The new AWSCURRENT key.
        key_id: String,
        /// Keys revoked.
        revoked: Vec<String>,
        /// Keys whose revocation failed (retried next rotation).
        revoke_failures: Vec<String>,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::AlreadyCurrent => write!(f, "version is already AWSCURRENT; nothing to do"),
            Outcome::Created { key_id, revoked } if revoked.is_empty() => {
                write!(f, "created key {key_id} as AWSPENDING")
            }
            Outcome::Created { key_id, revoked } => {
                write!(f, "revoked {} aged-out key(s), created key {key_id} as AWSPENDING", revoked.len())
            }
            Outcome::AlreadyCreated { key_id } => write!(f, "key {key_id} already stored as AWSPENDING"),
            Outcome::Verified { key_id } => write!(f, "key {key_id} belongs to the rotated account"),
            Outcome::Tested { key_id, attempts, waited } => {
                write!(f, "key {key_id} minted a token after {attempts} attempt(s) in {:.1}s", waited.as_secs_f64())
            }
            Outcome::Promoted { key_id, revoked, revoke_failures } => {
                write!(f, "key {key_id} is AWSCURRENT; revoked {} aged-out key(s)", revoked.len())?;
                if !revoke_failures.is_empty() {
                    write!(f, "; {} revoke(s) failed and will be retried next rotation", revoke_failures.len())?;
                }
                Ok(())
            }
        }
    }
}
