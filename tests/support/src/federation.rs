//! Workload identity federation fixtures: AWS credentials of an assumed role, issued by this
//! test binary's moto, and an emulator that knows the pool provider and asks moto who signed.

use google_emulator::Emulator;

use super::moto_endpoint;

/// The AWS account moto issues credentials in.
pub const AWS_ACCOUNT: &str = "123456789012";

/// Temporary credentials of an assumed role, as Lambda hands a function.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    /// The access key id (`ASIA...`).
    pub access_key_id: String,
    /// The secret that signs requests.
    pub secret_access_key: String,
    /// The session token, sent as `x-amz-security-token`.
    pub session_token: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`
    pub arn: String,
    /// When the session ends (ISO 8601, as STS writes it).
    pub expiration: String,
}

impl AwsCredentials {
    /// The environment a Lambda function (or google-auth) reads them from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", self.session_token.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE`: what Google's `attribute.aws_role` holds.
    pub fn role_arn(&self) -> String {
        self.arn.rsplit_once('/').map(|(role, _)| role.to_string()).unwrap()
    }
}

/// Assumes `role` in moto (session `session`, like a Lambda function's name).
pub async fn assume_role(role: &str, session: &str) -> AwsCredentials {
    let url = format!(
        "{}/?Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::{AWS_ACCOUNT}:role/{role}&RoleSessionName={session}",
        moto_endpoint()
    );
    let xml = reqwest::Client::new()
        .post(url)
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let element = |name: &str| {
        let start = xml.find(&format!("<{name}>")).unwrap_or_else(|| panic!("no {name} in {xml}")) + name.len() + 2;
        xml[start..start + xml[start..].find(&format!("</{name}>")).unwrap()].to_string()
    };
    AwsCredentials {
        access_key_id: element("AccessKeyId"),
        secret_access_key: element("SecretAccessKey"),
        session_token: element("SessionToken"),
        arn: element("Arn"),
        expiration: element("Expiration"),
    }
}

/// A pool provider's full resource name, unique to one test.
pub fn provider_audience(pool: &str) -> String {
    format!("//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/{pool}/providers/aws")
}

/// The principal set Google maps every session of `creds`' role to.
pub fn role_member(audience: &str, creds: &AwsCredentials) -> String {
    let pool = audience.trim_start_matches("//iam.googleapis.com/").rsplit_once("/providers/").unwrap().0;
    format!("principalSet://iam.googleapis.com/{pool}/attribute.aws_role/{}", creds.role_arn())
}

/// Makes `emu` a federation target: the provider `audience` trusts moto's account, and subject
/// tokens are checked with moto.
pub fn trust_moto(emu: &Emulator, audience: &str) {
    emu.add_aws_provider(audience, AWS_ACCOUNT);
    emu.set_aws_sts_endpoint(&moto_endpoint());
}

/// An `external_account` configuration as `gcloud iam workload-identity-pools create-cred-config
/// --aws` writes it, pointed at the emulator; `impersonate` adds the impersonation URL.
pub fn credential_config(emu: &Emulator, audience: &str, impersonate: Option<&str>) -> serde_json::Value {
    let mut config = serde_json::json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": format!("{}/v1/token", emu.url()),
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token"
        }
    });
    if let Some(target) = impersonate {
        config["service_account_impersonation_url"] =
            format!("{}/v1/projects/-/serviceAccounts/{target}:generateAccessToken", emu.url()).into();
    }
    config
}

/// `config` with subject tokens signed for moto's STS (the broker sends its GetCallerIdentity
/// there for `doctor`; Google's own clients keep gcloud's `sts.{region}.amazonaws.com`).
pub fn signed_for_moto(mut config: serde_json::Value) -> serde_json::Value {
    config["credential_source"]["regional_cred_verification_url"] =
        format!("{}/?Action=GetCallerIdentity&Version=2011-06-15", moto_endpoint()).into();
    config
}

/// Serves `creds` the way ECS (and Lambda SnapStart, EKS Pod Identity) hand container
/// credentials to the AWS SDK: `GET` at `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the
/// `Authorization` value of `AWS_CONTAINER_AUTHORIZATION_TOKEN`. Returns the URI and a count of
/// the requests that presented `authorization`; others get 401. Stops with the test's runtime.
pub async fn serve_container_credentials(
    creds: &AwsCredentials,
    authorization: &str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/v2/credentials/task", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let body = serde_json::json!({
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token,
        "Expiration": creds.expiration,
        "RoleArn": creds.role_arn(),
    })
    .to_string();
    let (expected, count) = (format!("authorization: {}", authorization.to_ascii_lowercase()), served.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.ends_with(b"\r\n\r\n") && request.len() < 65536 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let response = if head.starts_with("get /v2/credentials/task ") && head.contains(&expected) {
                count.fetch_add(1, Ordering::Relaxed);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
            };
            let _ = conn.write_all(response.as_bytes()).await;
        }
    });
    (uri, served)
}
