//! vertex-broker: Google service-account keys kept in AWS Secrets Manager, rotated on schedule,
//! and turned into short-lived Google tokens for code running next to the broker.
//!
//! Where to find things:
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | every environment variable, its default and its validation (the gateway's in `config/vertex.rs`, the model allowlist in `config/allowed_models.rs`, its proxy in `config/proxy.rs`); `require_lambda` for Lambda entry points |
//! | [`key`] | `ServiceAccountKey`: parse and validate a Google JSON key file; redacted, zeroized |
//! | [`google::iam`] | `IamClient`: create/list/get/delete/disable/enable keys; Google errors typed |
//! | [`google::token`] | `TokenClient`, one per process: access tokens (yup-oauth2) and ID tokens at the key's `token_uri` |
//! | [`google::federation`] | AWS workload identity federation: `external_account` config, SigV4 subject token (`aws-sigv4`), STS exchange |
//! | [`google::iam_credentials`] | impersonation: `generateAccessToken` / `generateIdToken` with delegates and lifetimes |
//! | [`google::scopes`] | what a token request may name: scope sets and audiences validated and normalized |
//! | [`store`] | `SecretStore`, the storage seam: Secrets Manager and in-memory implementations |
//! | [`rotation`] | `Rotation`: the four Secrets Manager rotation steps, shared by Lambda and CLI; `ErrorClass` names each failure |
//! | [`operator`] | what the CLI adds over the engine's public interface: local rotation, following one, status, revoke, first key |
//! | [`broker`] | the token broker: guards, limits, cache, accounts, GCE metadata protocol, listener, signals, Lambda extension |
//! | [`broker::gateway`] | `/vertex/...`: Vertex calls with the account's token, streamed, retried within the deadline, audited; `route/table.rs` is the one table of what it forwards |
//! | [`broker::metrics`] | the broker's CloudWatch EMF metrics, aggregated between flushes |
//! | [`cli`] | the operator CLI, one file per command; `Printer` (text or JSON) and `ExitCode` |
//! | [`doctor`] | `vertex-broker doctor`: the token path checked one call at a time, with what to fix per step |
//! | [`dev`] | `vertex-broker dev`: emulator + in-memory store (also as Secrets Manager's API) + broker + rotations |
//! | [`telemetry`] | log setup (JSON in Lambda) and CloudWatch Embedded Metric Format lines |
//! | [`retry`], [`text`] | the one backoff schedule; comma lists and untrusted text in messages |
//!
//! Features choose what compiles: none for the rotation function, `broker` for the layer's
//! extension, `cli` (the default) for the CLI with `dev`, `doctor` and `operator`.
//!
//! Binaries: `vertex-broker` (the CLI, `src/main.rs` over `src/cli/`), `vertex-broker-extension`
//! (the layer's extension, `src/bin/`). The rotation Lambda is the `rotation/` crate (binary `bootstrap`);
//! the local Google used by tests and `dev` is the `emulator/` crate (binary `google-emulator`);
//! the example function behind API Gateway is `examples/vertex-proxy` (Python and Node functions
//! with no credential in their code are `examples/python-function` and `examples/node-function`). The layer's exec wrapper
//! is `layer/vertex-broker-wrapper`; `template.yaml` wires it all for AWS SAM. The design is in
//! `docs/ARCHITECTURE.md`; the tests' shared harness is the `tests/support` crate.

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
#[cfg(feature = "cli")]
pub mod dev;
#[cfg(feature = "cli")]
pub mod doctor;
pub mod google;
pub mod key;
#[cfg(feature = "cli")]
pub mod operator;
pub mod retry;
pub mod rotation;
pub mod store;
pub mod telemetry;
pub mod text;

// Poison-tolerant guards: every value kept behind a lock here stays consistent between
// statements, so a thread that panicked while holding one must not stop the others.

/// A std mutex's guard, even if a thread panicked while holding it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A std read-write lock's read guard, even if a writer panicked.
#[cfg_attr(not(feature = "broker"), allow(dead_code))]
pub(crate) fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A std read-write lock's write guard, even if a writer panicked.
#[cfg_attr(not(feature = "broker"), allow(dead_code))]
pub(crate) fn write<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
