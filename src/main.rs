//! `vertex-broker`: the operator CLI. Parses the command line and hands each command to its
//! module in `vertex_broker::cli`; human text by default, `--output json` for scripts; errors
//! go to stderr with what to do next, and the exit code says what kind of failure it was.

use clap::{Parser, Subcommand};
use vertex_broker::cli::{self, ExitCode, Failure, Format, Printer};
use vertex_broker::config::Config;

#[derive(Parser)]
#[command(
    version,
    about = "Rotate Google service-account keys in AWS Secrets Manager and serve short-lived Google tokens",
    after_help = ExitCode::HELP
)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rotate now: ask Secrets Manager to run the rotation function, or run its steps here (--local).
    Rotate(cli::rotate::Args),
    /// Show versions and stages joined to the account's Google keys, with warnings.
    Status(cli::status::Args),
    /// Store the first key: from a key file, or minted for a service account with an admin key.
    Init(cli::init::Args),
    /// Revoke keys (delete, or disable with VERTEX_BROKER_REVOKE=disable). Never the AWSCURRENT key.
    Revoke(cli::revoke::Args),
    /// Print a fresh access token (or an ID token with --audience), like `gcloud auth print-access-token`,
    /// from the configured source: a rotated key, or federation; impersonating when configured.
    Token(cli::token::Args),
    /// Central minting, once: renew the tokens in the token secret that are past half their life
    /// (what the vertex-broker-minter function does on its schedule).
    Mint(cli::mint::Args),
    /// Run the broker as a daemon on 127.0.0.1 (ECS sidecar, EC2, a laptop); stops on SIGTERM/SIGINT.
    Serve(cli::serve::Args),
    /// Check a configuration end to end: source, AWS identity, exchange, impersonation, lifetime,
    /// tokens, and what clients need. Says per check what to fix; exit 1 when a check fails.
    Doctor(cli::doctor::Args),
    /// Probe the broker on 127.0.0.1 (a container's HEALTHCHECK): exit 0 when it answers and holds
    /// a servable token.
    Health(cli::health::Args),
    /// Everything local, offline: Google emulator, in-memory secret, broker, rotations. Ctrl-C stops.
    Dev(cli::dev::Args),
}

/// One thread, like the extension: `serve` answers cached tokens in microseconds, and `dev`
/// and the operator commands are I/O-bound.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let out = Printer::new(cli.output);
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Command::Doctor(_)) => {
            cli::doctor::print(&vertex_broker::doctor::configuration_failure(e.to_string()), out);
            return ExitCode::Usage.into();
        }
        Err(e) => return fail(Failure::usage(e.to_string())),
    };
    // `dev` speaks in one readable line per rotation and `doctor` reports every failure in its
    // checks: their engines log only when VERTEX_BROKER_LOG asks.
    let filter = match (&cli.command, config.log.as_deref()) {
        (_, Some(chosen)) => chosen,
        (Command::Dev(_), None) => "warn",
        (Command::Doctor(_), None) => "error",
        (_, None) => "info",
    };
    vertex_broker::telemetry::init(filter, config.function_name.is_some());
    let result = match cli.command {
        Command::Rotate(args) => cli::rotate::run(args, &config, out).await,
        Command::Status(args) => cli::status::run(args, &config, out).await,
        Command::Init(args) => cli::init::run(args, &config, out).await,
        Command::Revoke(args) => cli::revoke::run(args, &config, out).await,
        Command::Token(args) => cli::token::run(args, config, out).await,
        Command::Mint(args) => cli::mint::run(args, &config, out).await,
        Command::Serve(args) => cli::serve::run(args, config, out).await,
        Command::Doctor(args) => cli::doctor::run(args, config, out).await,
        Command::Health(args) => cli::health::run(args, &config, out).await,
        Command::Dev(args) => cli::dev::run(args, out).await,
    };
    match result {
        Ok(()) => ExitCode::Ok.into(),
        Err(f) => fail(f),
    }
}

fn fail(f: Failure) -> std::process::ExitCode {
    eprintln!("error: {}", f.message);
    f.code.into()
}
