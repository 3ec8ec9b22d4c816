//! Child processes as the tests start them: one clean environment, one wait.

use std::ffi::OsStr;
use std::future::Future;
use std::time::Duration;

/// The metadata path of the default account's access token.
pub const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Empties `cmd`'s environment but PATH, and gives it a HOME (and gcloud configuration) of its
/// own, empty: no AWS profile, no gcloud or ADC file of this machine leaks into a test. Stdin is
/// closed. Callers add the variables the test is about.
pub fn clean_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    let home = std::env::temp_dir().join(super::unique("home"));
    std::fs::create_dir_all(&home).unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLOUDSDK_CONFIG", &home)
        .stdin(std::process::Stdio::null())
}

/// `program` with [`clean_env`], killed when dropped.
pub fn clean_command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    clean_env(cmd.as_std_mut());
    cmd.kill_on_drop(true);
    cmd
}

/// Polls `check` every 25 ms until it yields something, for at most `within`; panics saying
/// what did not happen.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if tokio::time::Instant::now() >= until {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until something listens on 127.0.0.1:`port` (a process this test started).
pub async fn wait_listening(port: u16) {
    let what = format!("something listening on 127.0.0.1:{port}");
    wait_for(&what, Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
    })
    .await
}
