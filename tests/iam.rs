//! The IAM client against the emulator: every call, and Google's answers for the cases the
//! rotation engine depends on.

use test_support as support;

use std::time::Duration;

use google_emulator::{Emulator, Fault};
use vertex_broker::google::iam::{IamClient, IamError, RetryPolicy};
use vertex_broker::google::token::TokenClient;
use vertex_broker::key::ServiceAccountKey;

const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";

async fn client(emu: &Emulator, key: &ServiceAccountKey) -> IamClient {
    let token = TokenClient::new(Duration::from_secs(5)).access_token(key, &[CLOUD.into()]).await.unwrap();
    IamClient::new(reqwest::Client::new(), &emu.url(), token.bearer, Duration::from_secs(2)).with_retry(RetryPolicy {
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 2,
    })
}

async fn mints(key: &ServiceAccountKey) -> bool {
    TokenClient::new(Duration::from_secs(5)).access_token(key, &[CLOUD.into()]).await.is_ok()
}

#[tokio::test]
async fn create_get_disable_enable_delete_a_key() {
    let emu = Emulator::start().await.unwrap();
    let account = support::account("iam");
    let first = ServiceAccountKey::parse(&emu.seed_key(&account)).unwrap();
    let iam = client(&emu, &first).await;

    let (key, info) = iam.create_key(&account).await.unwrap();
    assert_eq!(key.client_email(), account);
    assert_eq!(info.id, key.private_key_id());
    assert!(info.valid_before.is_none(), "Google's year-9999 expiry reads as never");
    assert!(mints(&key).await);

    let got = iam.get_key(&account, key.private_key_id()).await.unwrap();
    assert_eq!(got.id, key.private_key_id());
    assert!(!got.disabled && got.user_managed);
    assert_eq!(iam.list_keys(&account).await.unwrap().len(), 2);

    iam.disable_key(&account, key.private_key_id()).await.unwrap();
    assert!(iam.get_key(&account, key.private_key_id()).await.unwrap().disabled);
    assert!(!mints(&key).await, "a disabled key mints nothing");
    iam.enable_key(&account, key.private_key_id()).await.unwrap();
    assert!(mints(&key).await);

    iam.delete_key(&account, key.private_key_id()).await.unwrap();
    assert!(matches!(iam.get_key(&account, key.private_key_id()).await, Err(IamError::NotFound { .. })));
    assert!(matches!(iam.delete_key(&account, key.private_key_id()).await, Err(IamError::NotFound { .. })));
    assert!(!mints(&key).await, "a deleted key mints nothing");
}

#[tokio::test]
async fn retryable_answers_are_retried_and_others_are_typed() {
    let emu = Emulator::start().await.unwrap();
    let account = support::account("iam-retry");
    let key = ServiceAccountKey::parse(&emu.seed_key(&account)).unwrap();
    let iam = client(&emu, &key).await;

    emu.inject(Fault { endpoint: "iam.list".into(), count: 2, status: Some(503), delay_ms: 0 });
    assert_eq!(iam.list_keys(&account).await.unwrap().len(), 1, "two 503s then success");
    assert_eq!(emu.calls("iam.list"), 3);

    emu.inject(Fault { endpoint: "iam.list".into(), count: 10, status: Some(500), delay_ms: 0 });
    let err = iam.list_keys(&account).await.unwrap_err();
    assert!(matches!(err, IamError::Unavailable { status: 500, attempts: 3, .. }), "{err:?}");
    emu.clear_faults();

    let other = support::account("not-mine");
    emu.seed_key(&other);
    let err = iam.create_key(&other).await.unwrap_err();
    assert!(matches!(err, IamError::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("serviceAccountKeyAdmin"));

    let stranger = IamClient::new(
        reqwest::Client::new(),
        &emu.url(),
        vertex_broker::google::Credential::new("ya29.forged".into()),
        Duration::from_secs(2),
    );
    assert!(matches!(stranger.list_keys(&account).await, Err(IamError::Unauthenticated { .. })));

    // A create that times out is not retried: Google may have made the key.
    emu.inject(Fault { endpoint: "iam.create".into(), count: 1, status: None, delay_ms: 3_000 });
    let before = emu.calls("iam.create");
    let err = iam.create_key(&account).await.unwrap_err();
    assert!(matches!(err, IamError::Timeout { .. }), "{err:?}");
    assert_eq!(emu.calls("iam.create"), before + 1);
}
