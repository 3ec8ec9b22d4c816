//! A `SecretStore` around the real moto-backed store that fails the Nth call of one operation,
//! to inject Secrets Manager failures at an exact point of a rotation, and counts reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use vertex_broker::store::*;

/// The store operation a `FailingStore` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// PutSecretValue.
    Put,
    /// UpdateSecretVersionStage.
    UpdateStage,
}

/// A store that fails one chosen call and forwards the rest.
pub struct FailingStore {
    inner: Arc<dyn SecretStore>,
    op: Op,
    nth: usize,
    seen: AtomicUsize,
    reads: AtomicUsize,
}

impl FailingStore {
    /// Fails the `nth` (1-based) call of `op`; all other calls reach `inner`. 0 fails none.
    pub fn new(inner: Arc<dyn SecretStore>, op: Op, nth: usize) -> Self {
        Self { inner, op, nth, seen: AtomicUsize::new(0), reads: AtomicUsize::new(0) }
    }

    /// DescribeSecret and GetSecretValue calls so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Whether the injected failure happened.
    pub fn tripped(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.nth
    }

    fn trip(&self, op: Op, name: &'static str) -> Result<(), StoreError> {
        if op == self.op && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            return Err(StoreError::Unavailable { operation: name, message: "injected failure".into() });
        }
        Ok(())
    }
}

#[async_trait]
impl SecretStore for FailingStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.describe(secret_id).await
    }
    async fn get(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(secret_id, version_id, stage).await
    }
    async fn put(
        &self,
        secret_id: &str,
        token: &str,
        value: &str,
        stages: &[&str],
        rotation_token: Option<&str>,
    ) -> Result<(), StoreError> {
        self.trip(Op::Put, "PutSecretValue")?;
        self.inner.put(secret_id, token, value, stages, rotation_token).await
    }
    async fn update_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), StoreError> {
        self.trip(Op::UpdateStage, "UpdateSecretVersionStage")?;
        self.inner.update_stage(secret_id, stage, move_to, remove_from).await
    }
    async fn list_versions(&self, secret_id: &str) -> Result<Vec<VersionInfo>, StoreError> {
        self.inner.list_versions(secret_id).await
    }
    async fn create(&self, name: &str, value: &str, description: &str) -> Result<String, StoreError> {
        self.inner.create(name, value, description).await
    }
    async fn start_rotation(&self, secret_id: &str) -> Result<String, StoreError> {
        self.inner.start_rotation(secret_id).await
    }
}
