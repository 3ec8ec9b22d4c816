//! Exit codes and the failure that carries one.

use crate::google::iam::IamError;
use crate::rotation::RotationError;
use crate::store::StoreError;

/// What kind of failure ended a command, as its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The command ran and something failed (a rotation step, a doctor check, no confirmation).
    Failed = 1,
    /// Usage or bad input: fix the command line, a file or the environment.
    Usage = 2,
    /// The secret or key does not exist.
    NotFound = 3,
    /// AWS refused or could not be reached.
    Aws = 4,
    /// Google refused or could not be reached.
    Google = 5,
}

impl ExitCode {
    /// For `--help`.
    pub const HELP: &'static str = "Exit codes: 0 ok, 1 failed (e.g. a rotation step), 2 usage or bad input, \
        3 secret or key not found, 4 AWS error, 5 Google error.";
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A command's failure: the message for stderr (what is wrong and what to do) and its code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: ExitCode,
    /// What is wrong and what to do, for stderr.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    /// Bad input (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Usage, message)
    }
    /// The command ran and failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ExitCode::Failed, message)
    }
}

fn store_code(e: &StoreError) -> ExitCode {
    if e.is_not_found() {
        ExitCode::NotFound
    } else {
        ExitCode::Aws
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::new(store_code(&e), e.to_string())
    }
}

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        let code = match &e {
            RotationError::Store(s) => store_code(s),
            RotationError::Iam(IamError::NotFound { .. }) => ExitCode::NotFound,
            RotationError::Iam(_) | RotationError::Auth { .. } | RotationError::KeyLimit { .. } => ExitCode::Google,
            RotationError::RefuseCurrent { .. } => ExitCode::Usage,
            _ => ExitCode::Failed,
        };
        Self::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_split_not_found_from_other_aws_errors() {
        let missing = StoreError::NotFound { operation: "DescribeSecret", what: "s".into(), message: "m".into() };
        let refused = StoreError::Refused { operation: "RotateSecret", code: "X".into(), message: "m".into() };
        assert_eq!(Failure::from(missing).code, ExitCode::NotFound);
        assert_eq!(Failure::from(refused).code, ExitCode::Aws);
        assert_eq!(
            Failure::from(RotationError::RefuseCurrent { key_id: "k".into(), arn: "a".into() }).code,
            ExitCode::Usage
        );
    }
}
