//! The rotation engine end to end: real moto_server for Secrets Manager, the Google emulator
//! over HTTP, steps invoked as Secrets Manager invokes them.

use test_support as support;

use std::sync::Arc;
use std::time::Duration;

use google_emulator::Fault;
use support::failing_store::{FailingStore, Op};
use support::Fixture;
use vertex_broker::rotation::{ErrorClass, Outcome, RotationError, Step};
use vertex_broker::store::SecretStore;

#[tokio::test]
async fn a_full_rotation_promotes_the_new_key_and_keeps_the_old_one_as_previous() {
    let f = Fixture::new("full").await;
    let old = f.key_at("AWSCURRENT").await.unwrap();
    let token = f.rotate().await;

    let stages = f.stages().await;
    assert_eq!(stages[&token], vec!["AWSCURRENT"]);
    assert!(stages.values().all(|s| !s.iter().any(|x| x == "AWSPENDING")), "AWSPENDING is gone: {stages:?}");
    let current = f.key_at("AWSCURRENT").await.unwrap();
    let previous = f.key_at("AWSPREVIOUS").await.unwrap();
    assert_ne!(current.private_key_id(), old.private_key_id());
    assert_eq!(previous.private_key_id(), old.private_key_id());
    assert_eq!(current.client_email(), f.account);
    assert!(f.mints(&current).await && f.mints(&previous).await);
}

#[tokio::test]
async fn after_three_rotations_the_account_holds_exactly_current_and_previous() {
    let f = Fixture::new("three").await;
    for _ in 0..3 {
        f.rotate().await;
    }
    let mut held = f.google_keys();
    let mut expected = vec![
        f.key_at("AWSCURRENT").await.unwrap().private_key_id().to_string(),
        f.key_at("AWSPREVIOUS").await.unwrap().private_key_id().to_string(),
    ];
    held.sort();
    expected.sort();
    assert_eq!(held, expected);
}

#[tokio::test]
async fn every_step_run_twice_gives_the_same_end_state_and_no_extra_key() {
    let f = Fixture::new("twice").await;
    let rotation = f.rotation();
    let token = f.begin_rotation().await;
    let created = f.step(&rotation, Step::CreateSecret, &token).await.unwrap();
    let Outcome::Created { key_id, .. } = created else { panic!("{created:?}") };
    assert_eq!(
        f.step(&rotation, Step::CreateSecret, &token).await.unwrap(),
        Outcome::AlreadyCreated { key_id: key_id.clone() }
    );
    assert_eq!(f.google_keys().len(), 2);
    for step in [Step::SetSecret, Step::TestSecret] {
        f.step(&rotation, step, &token).await.unwrap();
        f.step(&rotation, step, &token).await.unwrap();
    }
    f.step(&rotation, Step::FinishSecret, &token).await.unwrap();
    let stages_after_first = f.stages().await;
    assert_eq!(f.step(&rotation, Step::FinishSecret, &token).await.unwrap(), Outcome::AlreadyCurrent);
    assert_eq!(f.stages().await, stages_after_first);
    assert_eq!(f.key_at("AWSCURRENT").await.unwrap().private_key_id(), key_id);
    assert_eq!(f.google_keys().len(), 2);
}

#[tokio::test]
async fn test_secret_waits_out_a_three_second_propagation_delay() {
    let f = Fixture::new("propagate").await;
    f.emu.set_propagation_delay(Duration::from_secs(3));
    let rotation = f.rotation();
    let token = f.begin_rotation().await;
    f.step(&rotation, Step::CreateSecret, &token).await.unwrap();
    f.step(&rotation, Step::SetSecret, &token).await.unwrap();
    let tested = f.step(&rotation, Step::TestSecret, &token).await.unwrap();
    let Outcome::Tested { attempts, waited, .. } = tested else { panic!("{tested:?}") };
    assert!(attempts > 1, "the first attempt must have been refused during propagation");
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
    assert!(f.emu.counters(&f.account).token_failures >= 1);
    f.step(&rotation, Step::FinishSecret, &token).await.unwrap();
    f.assert_safe("after a delayed propagation").await;
}

#[tokio::test]
async fn an_account_at_ten_keys_with_eight_foreign_fails_clearly_and_touches_nothing() {
    let f = Fixture::new("limit").await;
    f.rotate().await; // current + previous are ours
    for _ in 0..8 {
        f.emu.seed_key(&f.account);
    }
    let before = f.google_keys();
    assert_eq!(before.len(), 10);
    let token = f.begin_rotation().await;
    let err = f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap_err();
    assert!(matches!(err, RotationError::KeyLimit { foreign: 8, protected: 2, .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::KeyLimitReached);
    let text = err.to_string();
    assert!(
        text.contains("limit of 10 keys") && text.contains("did not mint") && text.contains("vertex-broker status"),
        "{text}"
    );
    assert_eq!(f.google_keys(), before, "no key was created or revoked");
    assert_eq!(f.emu.calls("iam.delete"), 0);
}

#[tokio::test]
async fn google_reporting_the_key_limit_is_a_clear_error() {
    // List can miss keys created seconds ago; then Google's own 429 must read as clearly.
    let f = Fixture::new("limit429").await;
    f.emu.set_propagation_delay(Duration::from_secs(600));
    let current = f.key_at("AWSCURRENT").await.unwrap();
    let token = vertex_broker::google::token::TokenClient::new(Duration::from_secs(5))
        .access_token(&current, &["https://www.googleapis.com/auth/cloud-platform".into()])
        .await
        .unwrap();
    let iam = vertex_broker::google::iam::IamClient::new(
        reqwest::Client::new(),
        &f.emu.url(),
        token.bearer,
        Duration::from_secs(5),
    );
    for _ in 0..9 {
        iam.create_key(&f.account).await.unwrap();
    }
    assert_eq!(iam.list_keys(&f.account).await.unwrap().len(), 1, "the new keys are not listed yet");
    let token = f.begin_rotation().await;
    let err = f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap_err();
    assert!(matches!(err, RotationError::Iam(vertex_broker::google::iam::IamError::KeyLimit { .. })), "{err:?}");
    assert!(err.to_string().contains("maximum of 10 keys"), "{err}");
    assert_eq!(err.class(), ErrorClass::KeyLimitReached);
    assert_eq!(f.google_keys().len(), 10);
}

#[tokio::test]
async fn the_org_policy_against_key_creation_is_named() {
    let f = Fixture::new("orgpolicy").await;
    f.emu.set_key_creation_disabled(&f.account, true);
    let token = f.begin_rotation().await;
    let err = f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("iam.disableServiceAccountKeyCreation"), "{text}");
    assert_eq!(err.class(), ErrorClass::KeyCreationForbidden);
    assert_eq!(f.google_keys().len(), 1);
}

#[tokio::test]
async fn pre_checks_fail_with_aws_template_messages() {
    // Rotation not enabled.
    let f = Fixture::new("prechecks").await;
    let current = f.version_with("AWSCURRENT").await.unwrap();
    let err = f.step(&f.rotation(), Step::CreateSecret, "00000000-0000-0000-0000-000000000000").await.unwrap_err();
    assert_eq!(err.to_string(), format!("Secret {} is not enabled for rotation", f.secret));
    assert_eq!(err.class(), ErrorClass::PreCheckFailed);

    let token = f.begin_rotation().await;
    let rotation = f.rotation();
    // Unknown token.
    let unknown = uuid::Uuid::new_v4().to_string();
    let err = f.step(&rotation, Step::CreateSecret, &unknown).await.unwrap_err();
    assert_eq!(err.to_string(), format!("Secret version {unknown} has no stage for rotation of secret {}", f.secret));
    // A version that is neither AWSCURRENT nor AWSPENDING.
    let other = uuid::Uuid::new_v4().to_string();
    f.sm.put_secret_value()
        .secret_id(&f.secret)
        .client_request_token(&other)
        .secret_string("{}")
        .version_stages("OTHER")
        .send()
        .await
        .unwrap();
    let err = f.step(&rotation, Step::CreateSecret, &other).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Secret version {other} not set as AWSPENDING for rotation of secret {}", f.secret)
    );
    // Unknown step.
    let mut event = f.event(Step::CreateSecret, &token);
    event.step = "dropSecret".into();
    let err = rotation.run(&event, None).await.unwrap_err();
    assert_eq!(err.to_string(), format!("Invalid step parameter dropSecret for secret {}", f.secret));
    assert_eq!(err.class(), ErrorClass::PreCheckFailed);
    // A version already AWSCURRENT: success, nothing done.
    for step in Step::ALL {
        assert_eq!(f.step(&rotation, step, &current).await.unwrap(), Outcome::AlreadyCurrent);
    }
    assert_eq!(f.google_keys().len(), 1);
    assert_eq!(f.emu.calls("iam.create"), 0);
}

#[tokio::test]
async fn bad_secrets_get_a_clear_error_and_nothing_is_created() {
    let emu = google_emulator::Emulator::start().await.unwrap();
    let account = support::account("bad");
    let good = emu.seed_key(&account);
    let mut no_key: serde_json::Value = serde_json::from_str(&good).unwrap();
    no_key.as_object_mut().unwrap().remove("private_key");
    let mut user_cred: serde_json::Value = serde_json::from_str(&good).unwrap();
    user_cred["type"] = "authorized_user".into();
    let cases = [
        ("not json", "hello there".to_string(), "not JSON"),
        ("not a service account", user_cred.to_string(), "`type`"),
        ("no private key", no_key.to_string(), "`private_key`"),
    ];
    let f = Fixture::with_key(emu, "bad", &account, &cases[0].1).await;
    let mut fixtures = vec![f];
    for (_, value, _) in &cases[1..] {
        let emu = google_emulator::Emulator::start().await.unwrap();
        fixtures.push(Fixture::with_key(emu, "bad", &account, value).await);
    }
    for (f, (name, _, needle)) in fixtures.iter().zip(cases.iter()) {
        let token = f.begin_rotation().await;
        let err = f.step(&f.rotation(), Step::CreateSecret, &token).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RotationError::BadSecret { .. }), "{name}: {err:?}");
        assert_eq!(err.class(), ErrorClass::InvalidSecretValue, "{name}");
        assert!(text.contains(needle) && text.contains("AWSCURRENT"), "{name}: {text}");
        assert_eq!(f.emu.calls("iam.create"), 0, "{name}");
        assert_eq!(f.version_with("AWSPENDING").await.as_deref(), Some(token.as_str()));
        assert!(f.store.get(&f.secret, Some(&token), Some("AWSPENDING")).await.is_err(), "{name}: nothing stored");
    }
}

#[tokio::test]
async fn a_key_whose_admin_may_not_manage_the_account_is_refused_before_anything_is_created() {
    let f = Fixture::new("noadmin").await;
    let admin = support::account("admin");
    let admin_key = f.emu.seed_key(&admin); // not granted key-admin on f.account
    let admin_secret =
        f.sm.create_secret().name(support::unique("admin")).secret_string(admin_key).send().await.unwrap();
    let mut settings = f.settings.clone();
    settings.admin_secret_id = Some(admin_secret.arn().unwrap().to_string());
    let rotation = vertex_broker::rotation::Rotation::new(f.store.clone(), settings);
    let token = f.begin_rotation().await;
    let err = f.step(&rotation, Step::CreateSecret, &token).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("permission denied") && text.contains("serviceAccountKeyAdmin"), "{text}");
    assert_eq!(err.class(), ErrorClass::GooglePermissionDenied);
    assert_eq!(f.google_keys().len(), 1);
    assert_eq!(f.emu.calls("iam.create"), 0);
}

#[tokio::test]
async fn admin_mode_rotates_with_a_separate_admin_account() {
    let f = Fixture::new("adminmode").await;
    let admin = support::account("admin");
    let admin_key = f.emu.seed_key(&admin);
    f.emu.grant_key_admin(&f.account, &admin);
    let admin_secret =
        f.sm.create_secret().name(support::unique("admin")).secret_string(admin_key).send().await.unwrap();
    let mut settings = f.settings.clone();
    settings.admin_secret_id = Some(admin_secret.arn().unwrap().to_string());
    let rotation = vertex_broker::rotation::Rotation::new(f.store.clone(), settings);
    let minted_by_account_before = f.emu.counters(&f.account).access_tokens;
    for _ in 0..2 {
        let token = f.begin_rotation().await;
        f.run_steps(&rotation, &token).await.unwrap();
    }
    f.assert_safe("admin mode").await;
    assert_eq!(f.google_keys().len(), 2);
    assert!(f.emu.counters(&admin).access_tokens >= 4, "the admin key authenticated the IAM calls");
    // The rotated account itself only minted the testSecret tokens (one per rotation) plus ours.
    let by_account = f.emu.counters(&f.account).access_tokens - minted_by_account_before;
    assert!(by_account <= 4, "rotated account minted {by_account} tokens");
    assert_eq!(f.emu.counters(&admin).keys_created, 1, "the admin's own keys are untouched");
}

#[tokio::test]
async fn revoke_mode_disable_disables_aged_out_keys_instead_of_deleting() {
    let mut f = Fixture::new("disable").await;
    f.settings.revoke = vertex_broker::config::RevokeMode::Disable;
    let first = f.key_at("AWSCURRENT").await.unwrap();
    f.rotate().await;
    f.rotate().await;
    let keys = f.emu.keys(&f.account);
    let first_now = keys.iter().find(|k| k.id == first.private_key_id()).expect("kept, disabled");
    assert!(first_now.disabled);
    f.assert_safe("disable mode").await;
}

/// One external call failing at one point of a rotation.
struct Case {
    name: &'static str,
    google: Option<Fault>,
    store: Option<(Op, usize)>,
    propagation_delay: Option<Duration>,
    /// The class of the first run's failure (the rotation Lambda's errorType); None: it succeeds.
    class: Option<ErrorClass>,
}

fn google(
    name: &'static str,
    endpoint: &str,
    count: u32,
    status: Option<u16>,
    delay_ms: u64,
    class: Option<ErrorClass>,
) -> Case {
    Case {
        name,
        google: Some(Fault { endpoint: endpoint.into(), count, status, delay_ms }),
        store: None,
        propagation_delay: None,
        class,
    }
}

#[tokio::test]
async fn fault_matrix_every_failure_is_safe_and_a_rerun_converges() {
    let cases = vec![
        google("iam list 500", "iam.list", 10, Some(500), 0, Some(ErrorClass::GoogleUnavailable)),
        google("iam create 429", "iam.create", 10, Some(429), 0, Some(ErrorClass::GoogleUnavailable)),
        google("iam create 500", "iam.create", 10, Some(500), 0, Some(ErrorClass::GoogleUnavailable)),
        google("iam create 503 once (retried)", "iam.create", 1, Some(503), 0, None),
        google("iam create timeout", "iam.create", 1, None, 3_000, Some(ErrorClass::GoogleUnavailable)),
        google("token endpoint 503", "token", 10, Some(503), 0, Some(ErrorClass::GoogleUnavailable)),
        google("iam create 403", "iam.create", 10, Some(403), 0, Some(ErrorClass::GooglePermissionDenied)),
        Case {
            name: "PutSecretValue failure",
            google: None,
            store: Some((Op::Put, 1)),
            propagation_delay: None,
            class: Some(ErrorClass::SecretsManagerError),
        },
        Case {
            name: "propagation longer than the timeout",
            google: None,
            store: None,
            propagation_delay: Some(Duration::from_secs(4)),
            class: Some(ErrorClass::PropagationTimeout),
        },
        Case {
            name: "UpdateSecretVersionStage (promote) failure",
            google: None,
            store: Some((Op::UpdateStage, 1)),
            propagation_delay: None,
            class: Some(ErrorClass::SecretsManagerError),
        },
        Case {
            // AWSPENDING left on the new AWSCURRENT version is a valid end state: the step succeeds.
            name: "UpdateSecretVersionStage (drop AWSPENDING) failure",
            google: None,
            store: Some((Op::UpdateStage, 2)),
            propagation_delay: None,
            class: None,
        },
        // A failed revoke is logged and retried next rotation: the rotation itself succeeds.
        google("iam delete 500", "iam.delete", 10, Some(500), 0, None),
    ];
    let runs = cases.into_iter().map(|case| tokio::spawn(run_case(case)));
    for run in runs {
        run.await.unwrap();
    }
}

async fn run_case(case: Case) {
    let name = case.name;
    let mut f = Fixture::new("faults").await;
    f.settings.http_timeout = Duration::from_secs(1);
    f.rotate().await; // so there is an AWSPREVIOUS and an aged-out key to revoke
    f.assert_safe(&format!("{name}: before")).await;
    let token = f.begin_rotation().await;

    let mut faulty = f.settings.clone();
    if let Some(delay) = case.propagation_delay {
        f.emu.set_propagation_delay(delay);
        faulty.propagation_timeout = Duration::from_secs(1);
    }
    if let Some(fault) = case.google.clone() {
        f.emu.inject(fault);
    }
    let failing = case.store.map(|(op, nth)| Arc::new(FailingStore::new(f.store.clone(), op, nth)));
    let store: Arc<dyn SecretStore> = match &failing {
        Some(failing) => failing.clone(),
        None => f.store.clone(),
    };
    let first = f.run_steps(&vertex_broker::rotation::Rotation::new(store, faulty), &token).await;
    // The fault really happened where it was meant to.
    if let Some(fault) = &case.google {
        let left = f.emu.pending_faults().iter().filter(|p| p.endpoint == fault.endpoint).map(|p| p.count).sum::<u32>();
        assert!(left < fault.count, "{name}: the injected fault was never reached");
    }
    if let Some(failing) = &failing {
        assert!(failing.tripped(), "{name}: the store failure was never reached");
    }
    if case.propagation_delay.is_some() {
        assert!(matches!(first, Err(RotationError::PropagationTimeout { .. })), "{name}: {first:?}");
    }
    assert_eq!(first.as_ref().err().map(|e| e.class()), case.class, "{name}: {first:?}");
    if let Err(e) = &first {
        let text = e.to_string();
        assert!(!text.contains("PRIVATE KEY") && !text.contains("ya29."), "{name}: error leaks material: {text}");
    }
    f.emu.clear_faults();
    f.assert_safe(&format!("{name}: after the failure ({first:?})")).await;

    // Secrets Manager retries the whole rotation with the same token.
    f.run_steps(&f.rotation(), &token).await.unwrap_or_else(|e| panic!("{name}: rerun failed: {e}"));
    f.assert_safe(&format!("{name}: after the rerun")).await;
    let stages = f.stages().await;
    assert_eq!(stages[&token], vec!["AWSCURRENT"], "{name}: the rerun promoted the token: {stages:?}");
    assert!(stages.values().all(|s| !s.iter().any(|x| x == "AWSPENDING")), "{name}: {stages:?}");
    // A later rotation cleans whatever the failure left behind that this secret minted.
    f.emu.set_propagation_delay(Duration::ZERO);
    f.rotate().await;
    f.assert_safe(&format!("{name}: after the next rotation")).await;
}
