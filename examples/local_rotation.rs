//! `make demo`: three full key rotations on this machine, no AWS or Google account needed.
//! The embedded Google emulator plays IAM and the token endpoint; the in-memory store plays
//! Secrets Manager with its staging-label rules; the engine is the one the Lambda runs.

use std::sync::Arc;
use std::time::Duration;

use vertex_broker::config::RevokeMode;
use vertex_broker::google::iam::RetryPolicy;
use vertex_broker::rotation::{Rotation, RotationEvent, RotationSettings, Step};
use vertex_broker::store::{MemoryStore, SecretStore, AWSCURRENT, AWSPREVIOUS};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let google = google_emulator::Emulator::start().await?;
    let account = "vertex-caller@demo-project.iam.gserviceaccount.com";
    let store = Arc::new(MemoryStore::new());
    let arn = store.create("demo/vertex-key", &google.seed_key(account));
    println!("Google emulator on {} · secret {arn}", google.url());
    google.set_propagation_delay(Duration::from_secs(2));
    println!("new keys take 2 s to propagate, as Google's can take minutes\n");

    let rotation = Rotation::new(
        store.clone(),
        RotationSettings {
            iam_endpoint: google.url(),
            admin_secret_id: None,
            propagation_timeout: Duration::from_secs(30),
            revoke: RevokeMode::Delete,
            http_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        },
    );
    for round in 1..=3 {
        let token = uuid::Uuid::new_v4().to_string();
        store.begin_rotation(&arn, &token)?;
        println!("rotation {round} (token {token})");
        for step in Step::ALL {
            let event = RotationEvent {
                step: step.as_str().into(),
                secret_id: arn.clone(),
                client_request_token: token.clone(),
                rotation_token: None,
            };
            let outcome = rotation.run(&event, None).await?;
            println!("  {:<13} {outcome}", step.as_str());
        }
        let current = store.get(&arn, None, Some(AWSCURRENT)).await?;
        let previous = store.get(&arn, None, Some(AWSPREVIOUS)).await?;
        let id = |v: &str| vertex_broker::key::ServiceAccountKey::parse(v).map(|k| k.private_key_id().to_string());
        let held: Vec<String> = google.keys(account).into_iter().map(|k| k.id).collect();
        println!(
            "  AWSCURRENT {} · AWSPREVIOUS {} · Google holds {} key(s)\n",
            id(&current.value)?,
            id(&previous.value)?,
            held.len()
        );
    }
    println!("Done: every rotation minted, proved, promoted, and revoked what aged out.");
    Ok(())
}
