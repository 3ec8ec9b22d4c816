//! vertex-broker: Google service-account keys kept in AWS Secrets Manager, rotated on schedule,
//! and turned into short-lived Google tokens for code running next to the broker.
//!
//! Where to find things:
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | every environment variable, its default and its validation; `require_lambda` for Lambda entry points |
//! | [`key`] | `ServiceAccountKey`: parse and validate a Google JSON key file; redacted, zeroized |
//! | [`google::iam`] | `IamClient`: create/list/get/delete/disable/enable keys; Google errors typed |
//! | [`google::token`] | `TokenClient`, one per process: access tokens (yup-oauth2) and ID tokens at the key's `token_uri` |
//! | [`google::federation`] | AWS workload identity federation: `external_account` config, SigV4 subject token (`aws-sigv4`), STS exchange |
//! | [`google::iam_credentials`] | impersonation: `generateAccessToken` / `generateIdToken` with delegates and lifetimes |
//! | [`store`] | `SecretStore`, the storage seam: Secrets Manager and in-memory implementations |
//! | [`rotation`] | `Rotation`: the four Secrets Manager rotation steps, shared by Lambda and CLI; `ErrorClass` names each failure |
//! | [`rotation::operator`] | what the CLI adds on the engine: local rotation, status, revoke, first key |
//! | [`broker`] | the token broker: guards, limits, cache, accounts, GCE metadata protocol, listener, signals, Lambda extension |
//! | [`broker::gateway`] | `/vertex/...`: Vertex calls with the account's token, streamed, retried within the deadline, audited |
//! | [`broker::metrics`] | the broker's CloudWatch EMF metrics, aggregated between flushes |
//! | [`doctor`] | `vertex-broker doctor`: the token path checked one call at a time, with what to fix per step |
//! | [`dev`] | `vertex-broker dev`: emulator + in-memory store + broker + periodic rotation |
//! | [`telemetry`] | log setup (JSON in Lambda) and CloudWatch Embedded Metric Format lines |
//!
//! Binaries: `vertex-broker` (the CLI, `src/main.rs`), `vertex-broker-extension` (the layer's
//! extension, `src/bin/`). The rotation Lambda is the `rotation/` crate (binary `bootstrap`);
//! the local Google used by tests and `dev` is the `emulator/` crate (binary `google-emulator`);
//! the example function behind API Gateway is `examples/vertex-proxy`. The layer's exec wrapper
//! is `layer/vertex-broker-wrapper`; `template.yaml` wires it all for AWS SAM.

pub mod broker;
pub mod config;
pub mod dev;
pub mod doctor;
pub mod google;
pub mod key;
pub mod rotation;
pub mod store;
pub mod telemetry;

/// A std mutex's guard even if a thread panicked while holding it: every value kept behind one
/// here stays consistent between statements, so a panic elsewhere must not stop the broker.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
