//! What the platform puts in the environment beside the broker's own variables: Lambda's
//! credentials, region and function name, the AWS SDK's endpoint overrides, and where Google's
//! clients are pointed. Read here, like every other variable.

/// A variable's value, `None` when unset or empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The keys, session token and region Lambda puts in every function's (and extension's)
/// environment for its execution role.
#[derive(Clone)]
pub struct LambdaCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: String,
}

impl LambdaCredentials {
    /// The role's credentials; `None` when a variable is missing.
    pub fn from_env() -> Option<Self> {
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"))?,
        })
    }
}

/// Never the secret key or session token.
impl std::fmt::Debug for LambdaCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// An AWS endpoint override as the SDK reads it: the service's own variable (such as
/// `AWS_ENDPOINT_URL_STS`), else `AWS_ENDPOINT_URL`.
pub fn aws_endpoint(service_variable: &str) -> Option<String> {
    var(service_variable).or_else(|| var("AWS_ENDPOINT_URL"))
}

/// Where Google's clients in this environment look for the metadata server, for `doctor`.
#[derive(Debug, Clone, Default)]
pub struct MetadataPointers {
    /// `GCE_METADATA_HOST`.
    pub host: Option<String>,
    /// `GCE_METADATA_IP`.
    pub ip: Option<String>,
}

impl MetadataPointers {
    /// As set in this process's environment.
    pub fn from_env() -> Self {
        Self { host: var("GCE_METADATA_HOST"), ip: var("GCE_METADATA_IP") }
    }
}
