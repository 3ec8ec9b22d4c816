//! vertex-broker: Google service-account keys kept in AWS Secrets Manager, rotated on schedule,
//! and turned into short-lived Google tokens for code running next to the broker.
//!
//! Where to find things: the module map is the `## Modules` table of `docs/ARCHITECTURE.md`,
//! one row per folder and module file (a test keeps it true), beside the flow, the seams and a
//! glossary of the words the code uses.
//!
//! Features choose what compiles: none for the rotation function, `broker` for the layer's
//! extension, `cli` for the CLI with `doctor` and `operator` (the container image's), `dev` (the
//! default) for the CLI with the offline sandbox and its embedded Google emulator.
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
#[cfg(feature = "dev")]
pub mod dev;
#[cfg(feature = "cli")]
pub mod doctor;
pub mod google;
pub mod key;
#[cfg(feature = "broker")]
pub mod minter;
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
