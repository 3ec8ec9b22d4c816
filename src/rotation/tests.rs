//! The engine's decisions on the in-memory store, no moto: which events it refuses before any
//! Google call, what a repeated step does, and how a rotation is followed. The steps' Google
//! calls are tested against moto and the emulator in tests/rotation.rs.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::{MemoryStore, AWSPREVIOUS};

const SECRET: &str = "unit/secret";

fn engine(store: &Arc<MemoryStore>) -> Rotation {
    let settings = RotationSettings::from(&Config::from_lookup(|_| None).unwrap());
    Rotation::new(store.clone(), settings)
}

fn event(step: &str, request_token: &str) -> RotationEvent {
    RotationEvent {
        step: step.into(),
        secret_id: SECRET.into(),
        client_request_token: request_token.into(),
        rotation_token: None,
    }
}

/// A store whose secret holds `value` as AWSCURRENT; returns that version's id.
async fn seeded(value: &str) -> (Arc<MemoryStore>, String) {
    let store = Arc::new(MemoryStore::new());
    store.create(SECRET, value);
    let current = store.describe(SECRET).await.unwrap().version_with(AWSCURRENT).unwrap().to_string();
    (store, current)
}

#[tokio::test]
async fn events_that_do_not_fit_the_secret_are_refused_with_aws_own_messages() {
    let (store, current) = seeded("{}").await;
    let rotation = engine(&store);
    let err = rotation.run(&event("createSecret", "no-such-version"), None).await.unwrap_err();
    assert!(matches!(err, RotationError::NoStage { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::PreCheckFailed);

    // A version that holds neither AWSPENDING nor AWSCURRENT.
    store.put(SECRET, "old", "{}", &[AWSPREVIOUS], None).await.unwrap();
    let err = rotation.run(&event("setSecret", "old"), None).await.unwrap_err();
    assert!(matches!(err, RotationError::NotPending { .. }), "{err}");

    let pending = store.start_rotation(SECRET).await.unwrap();
    let err = rotation.run(&event("bogusSecret", &pending), None).await.unwrap_err();
    assert!(err.to_string().starts_with("Invalid step parameter bogusSecret"), "{err}");

    store.set_rotation_enabled(SECRET, false);
    let err = rotation.run(&event("createSecret", &pending), None).await.unwrap_err();
    assert!(matches!(err, RotationError::NotEnabled { .. }), "{err}");
    assert!(matches!(
        rotation.run(&event("finishSecret", &current), None).await,
        Err(RotationError::NotEnabled { .. })
    ));
}

#[tokio::test]
async fn a_step_for_the_current_version_does_nothing_and_a_half_finished_promotion_is_tidied() {
    let (store, current) = seeded("{}").await;
    let rotation = engine(&store);
    for step in Step::ALL {
        assert_eq!(rotation.run(&event(step.as_str(), &current), None).await.unwrap(), Outcome::AlreadyCurrent);
    }
    // finishSecret promoted but failed to drop AWSPENDING: a retry removes it.
    store.update_stage(SECRET, AWSPENDING, Some(&current), None).await.unwrap();
    assert_eq!(rotation.run(&event("finishSecret", &current), None).await.unwrap(), Outcome::AlreadyCurrent);
    assert_eq!(store.describe(SECRET).await.unwrap().stages_of(&current), [AWSCURRENT]);
}

#[tokio::test]
async fn a_repeated_create_finds_its_key_and_set_refuses_another_accounts_key() {
    let google = google_emulator::Emulator::start().await.unwrap();
    let (store, _) = seeded(&google.seed_key("a@p.iam.gserviceaccount.com")).await;
    let rotation = engine(&store);
    let request_token = store.start_rotation(SECRET).await.unwrap();
    let other = google.seed_key("b@p.iam.gserviceaccount.com");
    store.put(SECRET, &request_token, &other, &[AWSPENDING], None).await.unwrap();
    // The pending version already holds a key: createSecret makes no IAM call (the engine's
    // IAM endpoint is Google's, which this test never reaches).
    let created = rotation.run(&event("createSecret", &request_token), None).await.unwrap();
    assert!(matches!(created, Outcome::AlreadyCreated { .. }), "{created:?}");
    let err = rotation.run(&event("setSecret", &request_token), None).await.unwrap_err();
    assert!(matches!(err, RotationError::AccountMismatch { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::InvalidSecretValue);
}

#[tokio::test]
async fn a_second_rotation_cannot_start_while_one_is_pending() {
    let (store, _) = seeded("{}").await;
    store.start_rotation(SECRET).await.unwrap();
    let err = store.start_rotation(SECRET).await.unwrap_err();
    assert!(err.to_string().contains("A previous rotation isn't complete"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn following_a_rotation_ends_when_its_version_is_current_or_at_the_timeout() {
    use crate::operator::{follow_rotation, FollowError};
    let (store, current) = seeded("{}").await;
    let version = store.start_rotation(SECRET).await.unwrap();
    let poll = Duration::from_secs(2);
    let (mut waits, started) = (0, tokio::time::Instant::now());
    let err = follow_rotation(store.as_ref(), SECRET, &version, Duration::from_secs(10), poll, || waits += 1)
        .await
        .unwrap_err();
    assert!(matches!(err, FollowError::TimedOut { .. }), "{err}");
    assert_eq!((waits, started.elapsed()), (5, Duration::from_secs(10)));

    let promote = {
        let (store, version) = (store.clone(), version.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            store.update_stage(SECRET, AWSCURRENT, Some(&version), Some(&current)).await.unwrap();
        })
    };
    follow_rotation(store.as_ref(), SECRET, &version, Duration::from_secs(60), poll, || {}).await.unwrap();
    promote.await.unwrap();
}
