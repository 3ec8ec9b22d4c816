//! `vertex-broker dev`: the offline sandbox (see [`crate::dev`]) until Ctrl-C.

use std::time::Duration;

use super::{Failure, Printer};

/// Shortest accepted `--rotate-every`: each rotation mints a key and revokes an aged-out one,
/// so anything shorter only churns keys faster than a person can watch them.
pub const MIN_ROTATE_EVERY: Duration = Duration::from_secs(1);

/// `vertex-broker dev`'s arguments.
#[derive(clap::Args)]
#[cfg_attr(not(feature = "dev"), allow(dead_code))]
#[command(
    after_help = "Examples:\n  vertex-broker dev --rotate-every 30s\n  vertex-broker dev --keyless   # federation from AWS, no key\n  \
        make dev PORT=2780"
)]
pub struct Args {
    /// Broker port on 127.0.0.1.
    #[arg(long, default_value_t = crate::config::DEFAULT_PORT)]
    port: u16,
    /// How often to rotate the key (at least 1s).
    #[arg(long, default_value = "2m", value_parser = rotate_every)]
    rotate_every: Duration,
    /// No key: workload identity federation from a sandbox AWS role, impersonating the sample account.
    #[arg(long)]
    keyless: bool,
}

fn rotate_every(value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if d < MIN_ROTATE_EVERY {
        return Err(format!(
            "{value} is too short: rotate at most once a second (each rotation mints a Google key), e.g. 30s"
        ));
    }
    Ok(d)
}

/// Runs the sandbox until Ctrl-C.
pub async fn run(args: Args, out: Printer) -> Result<(), Failure> {
    if out.json() {
        return Err(Failure::usage(
            "dev talks to a person and has no JSON output; drop --output json (status, token and doctor have it)",
        ));
    }
    sandbox(args, out).await
}

#[cfg(feature = "dev")]
async fn sandbox(args: Args, out: Printer) -> Result<(), Failure> {
    let opts = crate::dev::DevOptions { port: args.port, rotate_every: args.rotate_every, keyless: args.keyless };
    crate::dev::run(opts, |line| out.progress(line)).await.map_err(|e| Failure::failed(e.to_string()))
}

/// A build without the emulator (the container image's CLI) says where the sandbox is.
#[cfg(not(feature = "dev"))]
async fn sandbox(_: Args, _: Printer) -> Result<(), Failure> {
    Err(Failure::usage(
        "this vertex-broker was built without the dev sandbox (the container image leaves the Google emulator out); \
         run it from a source checkout: make dev",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_every_refuses_what_would_spin() {
        assert!(rotate_every("0s").unwrap_err().contains("too short"));
        assert!(rotate_every("500ms").is_err());
        assert_eq!(rotate_every("2s").unwrap(), Duration::from_secs(2));
        assert!(rotate_every("soon").is_err());
    }
}
