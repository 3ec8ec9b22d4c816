//! `vertex-broker`: the operator CLI. Human text by default, `--output json` for scripts;
//! errors go to stderr with what to do next, and exit codes say what kind of failure it was.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vertex_broker::broker::signals::{Signal, Signals};
use vertex_broker::broker::{server, Broker, BrokerSettings};
use vertex_broker::config::Config;
use vertex_broker::google::iam::IamError;
use vertex_broker::key::ServiceAccountKey;
use vertex_broker::rotation::operator::{RevokeTarget, SecretStatus};
use vertex_broker::rotation::{Rotation, RotationError, RotationSettings};
use vertex_broker::store::{SecretStore, SecretsManagerStore, StoreError, AWSCURRENT, AWSPENDING};

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 failed (e.g. a rotation step), 2 usage or bad input, \
3 secret or key not found, 4 AWS error, 5 Google error.";

#[derive(Parser)]
#[command(
    version,
    about = "Rotate Google service-account keys in AWS Secrets Manager and serve short-lived Google tokens",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Rotate now: ask Secrets Manager to run the rotation function, or run its steps here (--local).
    #[command(after_help = "Examples:\n  vertex-broker rotate prod/vertex-key --wait\n  \
        vertex-broker rotate prod/vertex-key --local   # break-glass: the Lambda is broken")]
    Rotate {
        secret: String,
        /// Follow the rotation until it finishes or fails.
        #[arg(long)]
        wait: bool,
        /// Run the four steps in this process with your credentials (resumes a half-done rotation).
        #[arg(long)]
        local: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Show versions and stages joined to the account's Google keys, with warnings.
    #[command(after_help = "Example:\n  vertex-broker status prod/vertex-key --output json")]
    Status { secret: String },
    /// Store the first key: from a key file, or minted for a service account with an admin key.
    #[command(after_help = "Examples:\n  vertex-broker init prod/vertex-key --key-file key.json\n  \
        vertex-broker init prod/vertex-key --service-account app@proj.iam.gserviceaccount.com --admin-key-file admin.json")]
    Init(InitArgs),
    /// Revoke keys (delete, or disable with VERTEX_BROKER_REVOKE=disable). Never the AWSCURRENT key.
    #[command(after_help = "Examples:\n  vertex-broker revoke prod/vertex-key --previous\n  \
        vertex-broker revoke prod/vertex-key --orphans --yes")]
    Revoke(RevokeArgs),
    /// Print a fresh access token (or an ID token with --audience), like `gcloud auth print-access-token`,
    /// from the configured source: a rotated key, or federation; impersonating when configured.
    #[command(after_help = "Examples:\n  vertex-broker token --secret prod/vertex-key\n  \
        vertex-broker token --secret prod/vertex-key --audience https://my-service.run.app\n  \
        VERTEX_BROKER_CREDENTIAL_CONFIG=clientLibraryConfig.json vertex-broker token")]
    Token {
        /// Secret id or ARN (default: VERTEX_BROKER_CREDENTIAL_CONFIG, else the first of VERTEX_BROKER_SECRET_ID).
        #[arg(long)]
        secret: Option<String>,
        /// Scopes, comma separated (default: VERTEX_BROKER_SCOPES).
        #[arg(long)]
        scopes: Option<String>,
        /// Mint an ID token for this audience instead.
        #[arg(long)]
        audience: Option<String>,
    },
    /// Run the broker as a daemon on 127.0.0.1 (ECS sidecar, EC2, a laptop); stops on SIGTERM/SIGINT.
    #[command(after_help = "Example:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key vertex-broker serve\n  \
        export GCE_METADATA_HOST=127.0.0.1:2775 GCE_METADATA_IP=127.0.0.1:2775")]
    Serve {
        /// Port on 127.0.0.1 (default: VERTEX_BROKER_PORT, else 2775).
        #[arg(long)]
        port: Option<u16>,
        /// Secret id(s) or ARN(s), comma separated (default: VERTEX_BROKER_SECRET_ID).
        #[arg(long)]
        secret: Option<String>,
    },
    /// Check a configuration end to end: source, AWS identity, exchange, impersonation, lifetime,
    /// tokens, and what clients need. Says per check what to fix; exit 1 when a check fails.
    #[command(after_help = "Examples:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key vertex-broker doctor\n  \
        VERTEX_BROKER_CREDENTIAL_CONFIG=clientLibraryConfig.json vertex-broker doctor --output json")]
    Doctor {
        /// Secret id(s) or ARN(s), comma separated (default: VERTEX_BROKER_SECRET_ID).
        #[arg(long)]
        secret: Option<String>,
    },
    /// Everything local, offline: Google emulator, in-memory secret, broker, rotations. Ctrl-C stops.
    #[command(
        after_help = "Examples:\n  vertex-broker dev --rotate-every 30s\n  vertex-broker dev --keyless   # federation from AWS, no key"
    )]
    Dev {
        /// Broker port on 127.0.0.1.
        #[arg(long, default_value_t = 2775)]
        port: u16,
        /// How often to rotate the key.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        rotate_every: Duration,
        /// No key: workload identity federation from a sandbox AWS role, impersonating the sample account.
        #[arg(long)]
        keyless: bool,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct InitSource {
    /// A Google service-account JSON key file.
    #[arg(long)]
    key_file: Option<std::path::PathBuf>,
    /// Mint the first key of this service account (needs an admin key).
    #[arg(long)]
    service_account: Option<String>,
}

#[derive(Args)]
struct InitArgs {
    secret: String,
    #[command(flatten)]
    source: InitSource,
    /// Admin key file for --service-account (default: VERTEX_BROKER_ADMIN_SECRET_ID's key).
    #[arg(long)]
    admin_key_file: Option<std::path::PathBuf>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct RevokeWhich {
    /// One key by id.
    #[arg(long)]
    key_id: Option<String>,
    /// The AWSPREVIOUS key.
    #[arg(long)]
    previous: bool,
    /// Keys this secret minted that are neither AWSCURRENT nor AWSPREVIOUS.
    #[arg(long)]
    orphans: bool,
}

#[derive(Args)]
struct RevokeArgs {
    secret: String,
    #[command(flatten)]
    which: RevokeWhich,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self { code: 2, message: message.into() }
    }
    fn failed(message: impl Into<String>) -> Self {
        Self { code: 1, message: message.into() }
    }
}

fn store_code(e: &StoreError) -> u8 {
    if e.is_not_found() {
        3
    } else {
        4
    }
}

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        let code = match &e {
            RotationError::Store(s) => store_code(s),
            RotationError::Iam(IamError::NotFound { .. }) => 3,
            RotationError::Iam(_) | RotationError::Auth { .. } | RotationError::KeyLimit { .. } => 5,
            RotationError::RefuseCurrent { .. } => 2,
            _ => 1,
        };
        Self { code, message: e.to_string() }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self { code: store_code(&e), message: e.to_string() }
    }
}

/// One thread, like the extension: `serve` answers cached tokens in microseconds, and `dev`
/// and the operator commands are I/O-bound.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Command::Doctor { .. }) => {
            print_checks(&vertex_broker::doctor::configuration_failure(e.to_string()), cli.output);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // `dev` speaks in one readable line per rotation; its engine logs only on request.
    // `doctor` reports every failure in its checks, so its engine logs only on request too.
    let chosen = std::env::var_os("VERTEX_BROKER_LOG").is_some();
    let filter = match cli.command {
        Command::Dev { .. } if !chosen => "warn",
        Command::Doctor { .. } if !chosen => "error",
        _ => config.log.as_str(),
    };
    vertex_broker::telemetry::init(filter, std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some());
    match run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli, mut config: Config) -> Result<(), Failure> {
    let out = cli.output;
    match cli.command {
        Command::Serve { port, secret } => {
            if let Some(p) = port {
                config.port = p;
            }
            if let Some(s) = secret {
                config.secret_ids = vertex_broker::config::split_list(&s);
            }
            serve(config).await
        }
        Command::Doctor { secret } => {
            if let Some(s) = secret {
                config.secret_ids = vertex_broker::config::split_list(&s);
            }
            doctor(config, out).await
        }
        Command::Dev { port, rotate_every, keyless } => {
            let opts = vertex_broker::dev::DevOptions { port, rotate_every, keyless };
            vertex_broker::dev::run(opts, shutdown_signal(), |line| {
                println!("{line}");
                let _ = std::io::stdout().flush();
            })
            .await
            .map_err(|e| Failure::failed(e.to_string()))
        }
        Command::Rotate { secret, wait, local, timeout } => {
            let store = Arc::new(SecretsManagerStore::from_env().await);
            if local {
                rotate_local(&config, store, &secret, out).await
            } else {
                rotate_remote(&store, &secret, wait, timeout, out).await
            }
        }
        Command::Status { secret } => {
            let store = Arc::new(SecretsManagerStore::from_env().await);
            let status = Rotation::new(store, RotationSettings::from(&config)).status(&secret).await?;
            match out {
                Output::Json => println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default()),
                Output::Text => print_status(&status),
            }
            Ok(())
        }
        Command::Init(args) => init(&config, args, out).await,
        Command::Revoke(args) => revoke(&config, args, out).await,
        Command::Token { secret, scopes, audience } => {
            if let Some(s) = secret {
                // A secret named on the command line is the source, whatever the environment says.
                config.secret_ids = vec![s];
                config.credential_config = None;
            }
            token(config, scopes, audience, out).await
        }
    }
}

/// Mints one token the way the broker does, from whichever source is configured.
async fn token(config: Config, scopes: Option<String>, audience: Option<String>, out: Output) -> Result<(), Failure> {
    if config.secret_ids.is_empty() && config.credential_config.is_none() {
        return Err(Failure::usage(
            "no token source: pass --secret SECRET, or set VERTEX_BROKER_SECRET_ID or VERTEX_BROKER_CREDENTIAL_CONFIG",
        ));
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(SecretsManagerStore::from_config(&aws));
    if config.credential_config.is_none() {
        // Classifies a missing secret (exit 3) apart from other AWS errors (exit 4).
        store.describe(&config.secret_ids[0]).await?;
    }
    let mut settings = BrokerSettings::from(&config);
    settings.aws = vertex_broker::google::federation::AwsIdentity::from_sdk_config(&aws);
    let broker = Broker::new(&settings, store).map_err(|e| Failure::usage(e.to_string()))?;
    let account = broker.accounts()[0].clone();
    let minted = match &audience {
        Some(aud) => account.id_token(aud).await,
        None => {
            let key = match &scopes {
                Some(s) => vertex_broker::broker::scopes::scope_key(s).map_err(|e| Failure::usage(e.to_string()))?,
                None => broker.default_scope_key().to_string(),
            };
            account.access_token(&key).await
        }
    }
    .map_err(|e| Failure { code: 5, message: e.to_string() })?;
    match out {
        Output::Text => println!("{}", minted.secret.expose()),
        Output::Json => println!(
            "{}",
            serde_json::json!({
                if audience.is_some() { "id_token" } else { "access_token" }: minted.secret.expose(),
                "expires_at": minted.expires_at.to_rfc3339(),
                "account": account.served_email().await.ok().flatten(),
            })
        ),
    }
    Ok(())
}

async fn rotate_local(
    config: &Config,
    store: Arc<SecretsManagerStore>,
    secret: &str,
    out: Output,
) -> Result<(), Failure> {
    let rotation = Rotation::new(store, RotationSettings::from(config));
    let mut steps = Vec::new();
    let token = rotation
        .rotate_locally(secret, |step, outcome| {
            if out == Output::Text {
                println!("{:<13} {outcome}", step.as_str());
            }
            steps.push(serde_json::json!({"step": step.as_str(), "outcome": outcome.to_string()}));
        })
        .await?;
    match out {
        Output::Text => println!("rotated {secret}: version {token} is AWSCURRENT"),
        Output::Json => println!("{}", serde_json::json!({"secret": secret, "version": token, "steps": steps})),
    }
    Ok(())
}

async fn rotate_remote(
    store: &SecretsManagerStore,
    secret: &str,
    wait: bool,
    timeout: Duration,
    out: Output,
) -> Result<(), Failure> {
    let started = store.client().rotate_secret().secret_id(secret).send().await.map_err(|e| {
        let code = if format!("{e:?}").contains("ResourceNotFoundException") { 3 } else { 4 };
        Failure {
            code,
            message: format!(
                "RotateSecret {secret}: {}. Is rotation configured (a rotation function and schedule)? \
                 `vertex-broker rotate --local` runs the steps here instead",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ),
        }
    })?;
    let version = started.version_id().unwrap_or_default().to_string();
    if !wait {
        match out {
            Output::Text => println!(
                "rotation of {secret} started (version {version}); follow it with --wait or `vertex-broker status`"
            ),
            Output::Json => {
                println!("{}", serde_json::json!({"secret": secret, "version": version, "state": "started"}))
            }
        }
        return Ok(());
    }
    let spinner = std::io::stderr().is_terminal();
    let deadline = tokio::time::Instant::now() + timeout;
    let frames = ['|', '/', '-', '\\'];
    let mut tick = 0;
    loop {
        let desc = store.describe(secret).await?;
        let stages = desc.stages_of(&version);
        if stages.iter().any(|s| s == AWSCURRENT) {
            if spinner {
                eprint!("\r");
            }
            match out {
                Output::Text => println!("rotated {secret}: version {version} is AWSCURRENT"),
                Output::Json => {
                    println!("{}", serde_json::json!({"secret": secret, "version": version, "state": "finished"}))
                }
            }
            return Ok(());
        }
        if !stages.iter().any(|s| s == AWSPENDING) && desc.versions.contains_key(&version) {
            return Err(Failure::failed(format!(
                "the rotation of {secret} stopped: version {version} is neither AWSPENDING nor AWSCURRENT. \
                 Read the rotation function's logs, then `vertex-broker rotate --local`"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::failed(format!(
                "the rotation of {secret} did not finish within {}; it may still be running (Secrets Manager \
                 retries failed steps). See `vertex-broker status {secret}` and the rotation function's logs",
                humantime::format_duration(timeout)
            )));
        }
        if spinner {
            eprint!("\r{} rotating {secret} (version {version})", frames[tick % 4]);
            tick += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn print_status(s: &SecretStatus) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M").to_string());
    println!("secret    {}", s.arn);
    println!("account   {}", s.account);
    println!(
        "rotation  {}{}; last {}; next {}",
        if s.rotation_enabled { "enabled" } else { "disabled" },
        s.schedule.as_deref().map(|d| format!(", {d}")).unwrap_or_default(),
        time(s.last_rotated).unwrap_or_else(|| "never".into()),
        time(s.next_rotation).unwrap_or_else(|| "not scheduled".into()),
    );
    println!();
    println!("{:<42} {:<17} {:<17} {:<9} SECRET", "GOOGLE KEY", "CREATED", "EXPIRES", "STATE");
    for k in &s.keys {
        let secret = if !k.managed {
            "not minted by this secret".to_string()
        } else if k.stages.is_empty() {
            "aged out (revoked next rotation)".to_string()
        } else {
            k.stages.join(",")
        };
        println!(
            "{:<42} {:<17} {:<17} {:<9} {secret}",
            k.key_id,
            time(k.created).unwrap_or_else(|| "-".into()),
            time(k.expires).unwrap_or_else(|| "never".into()),
            if k.disabled { "disabled" } else { "enabled" },
        );
    }
    if s.warnings.is_empty() {
        println!("\nno warnings");
    } else {
        println!("\nwarnings:");
        for w in &s.warnings {
            println!("  ! {w}");
        }
    }
}

async fn init(config: &Config, args: InitArgs, out: Output) -> Result<(), Failure> {
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let key = match (&args.source.key_file, &args.source.service_account) {
        (Some(path), _) => ServiceAccountKey::parse(&read_file(path)?)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        (None, Some(account)) => {
            let admin_text =
                match (&args.admin_key_file, &config.admin_secret_id) {
                    (Some(path), _) => read_file(path)?,
                    (None, Some(id)) => store.get(id, None, Some(AWSCURRENT)).await?.value.to_string(),
                    (None, None) => return Err(Failure::usage(
                        "--service-account needs an admin key: --admin-key-file FILE or VERTEX_BROKER_ADMIN_SECRET_ID",
                    )),
                };
            let admin = ServiceAccountKey::parse(&admin_text).map_err(|e| Failure::usage(format!("admin key: {e}")))?;
            Rotation::new(store.clone(), RotationSettings::from(config)).mint_first_key(&admin, account).await?
        }
        (None, None) => unreachable!("clap requires one source"),
    };
    let (arn, version, created) = match store.describe(&args.secret).await {
        Ok(desc) => {
            let version = uuid::Uuid::new_v4().to_string();
            store.put(&desc.arn, &version, key.raw(), &[AWSCURRENT], None).await?;
            (desc.arn, Some(version), false)
        }
        Err(e) if e.is_not_found() => {
            let arn =
                store.create(&args.secret, key.raw(), "Google service-account key, rotated by vertex-broker").await?;
            (arn, None, true)
        }
        Err(e) => return Err(e.into()),
    };
    match out {
        Output::Text if created => println!("created {arn} holding {key}"),
        Output::Text => println!(
            "stored {key} in {arn} as the new AWSCURRENT version {}; the previous key stays AWSPREVIOUS",
            version.as_deref().unwrap_or_default()
        ),
        Output::Json => println!(
            "{}",
            serde_json::json!({"secret": arn, "created": created, "version": version,
                "account": key.client_email(), "key_id": key.private_key_id()})
        ),
    }
    Ok(())
}

/// A file the operator named, or a usage error naming it.
fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

async fn revoke(config: &Config, args: RevokeArgs, out: Output) -> Result<(), Failure> {
    let store = Arc::new(SecretsManagerStore::from_env().await);
    let rotation = Rotation::new(store, RotationSettings::from(config));
    let target = match (args.which.key_id, args.which.previous, args.which.orphans) {
        (Some(id), _, _) => RevokeTarget::KeyId(id),
        (None, true, _) => RevokeTarget::Previous,
        _ => RevokeTarget::Orphans,
    };
    let plan = rotation.revoke_plan(&args.secret, &target).await?;
    if plan.key_ids.is_empty() {
        match out {
            Output::Text => println!("nothing to revoke"),
            Output::Json => println!("{}", serde_json::json!({"revoked": [], "plan": plan})),
        }
        return Ok(());
    }
    if !args.yes {
        let what =
            format!("{} {} key(s) of {} ({})", plan.action, plan.key_ids.len(), plan.account, plan.key_ids.join(", "));
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(format!("would {what}; not on a terminal, so pass --yes to confirm")));
        }
        eprint!("{what}? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::failed("not confirmed; nothing revoked"));
        }
    }
    let done = rotation.revoke(&plan).await?;
    match out {
        Output::Text => {
            for id in &done {
                println!("{}d key {id} of {}", plan.action, plan.account);
            }
        }
        Output::Json => {
            println!("{}", serde_json::json!({"revoked": done, "action": plan.action, "account": plan.account}))
        }
    }
    Ok(())
}

async fn serve(config: Config) -> Result<(), Failure> {
    if config.secret_ids.is_empty() && config.credential_config.is_none() {
        return Err(Failure::usage(vertex_broker::broker::BrokerError::NoSecret.to_string()));
    }
    let signals = Signals::install().map_err(|e| Failure::failed(format!("cannot install signal handlers: {e}")))?;
    // Listen first: clients can connect while the AWS configuration loads.
    let listener = server::bind(config.port).await.map_err(|e| {
        Failure::failed(format!("cannot listen on 127.0.0.1:{}: {e}; pick another with --port", config.port))
    })?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(SecretsManagerStore::from_config(&aws));
    let mut settings = BrokerSettings::from(&config);
    settings.aws = vertex_broker::google::federation::AwsIdentity::from_sdk_config(&aws);
    let broker = Arc::new(Broker::new(&settings, store).map_err(|e| Failure::usage(e.to_string()))?);
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%addr, "vertex-broker listening");
    println!("vertex-broker serving on {addr}\nexport GCE_METADATA_HOST={addr} GCE_METADATA_IP={addr}");
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.warm_up().await }
    });
    let metrics = tokio::spawn(broker.metrics().clone().flush_every(vertex_broker::broker::metrics::SERVE_PERIOD));
    server::serve(broker.clone(), listener, broker.clone().until_stopped(signals)).await;
    metrics.abort();
    broker.metrics().flush();
    tracing::info!("vertex-broker stopped");
    Ok(())
}

async fn doctor(config: Config, out: Output) -> Result<(), Failure> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(SecretsManagerStore::from_config(&aws));
    let mut settings = BrokerSettings::from(&config);
    settings.aws = vertex_broker::google::federation::AwsIdentity::from_sdk_config(&aws);
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let sts = var("AWS_ENDPOINT_URL_STS")
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or_else(|| settings.aws.as_ref().map(|a| format!("https://sts.{}.amazonaws.com", a.region)));
    let around = vertex_broker::doctor::Surroundings {
        gce_metadata_host: var("GCE_METADATA_HOST"),
        gce_metadata_ip: var("GCE_METADATA_IP"),
        port: config.port,
        sts_url: sts.map(|base| format!("{}/?Action=GetCallerIdentity&Version=2011-06-15", base.trim_end_matches('/'))),
    };
    let checks = vertex_broker::doctor::run(&settings, store, &around).await;
    print_checks(&checks, out);
    if vertex_broker::doctor::passed(&checks) {
        Ok(())
    } else {
        Err(Failure::failed("a check failed: fix the first one marked FAIL, then run `vertex-broker doctor` again"))
    }
}

fn print_checks(checks: &[vertex_broker::doctor::Check], out: Output) {
    use vertex_broker::doctor::Status;
    match out {
        Output::Json => {
            println!("{}", serde_json::json!({"passed": vertex_broker::doctor::passed(checks), "checks": checks}))
        }
        Output::Text => {
            for c in checks {
                let mark = match c.status {
                    Status::Ok => "ok  ",
                    Status::Warn => "warn",
                    Status::Fail => "FAIL",
                    Status::Skip => "skip",
                };
                println!("{mark}  {:<30} {}", c.check, c.detail);
                if let Some(fix) = &c.fix {
                    println!("      {:<30} fix: {fix}", "");
                }
            }
        }
    }
}

/// Installs the signal handlers now (before the port opens, so a signal that arrives early
/// still stops cleanly) and resolves at SIGTERM or SIGINT; SIGHUP changes nothing here.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut signals = Signals::install().expect("signal handlers install");
    async move { while signals.next().await != Signal::Stop {} }
}
