//! `vertex-broker doctor`: the configuration checked end to end, one call at a time, with what
//! to fix per check (the checks themselves are in [`crate::doctor`]).

use serde_json::json;

use super::{AwsSide, Failure, Printer};
use crate::config::{aws_endpoint, Config, MetadataPointers};
use crate::doctor::{passed, Check, Status, Surroundings};
use crate::text::split_list;

/// `vertex-broker doctor`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key vertex-broker doctor\n  \
    VERTEX_BROKER_CREDENTIAL_CONFIG=clientLibraryConfig.json vertex-broker doctor --output json")]
pub struct Args {
    /// Secret id(s) or ARN(s), comma separated (default: VERTEX_BROKER_SECRET_ID).
    #[arg(long)]
    secret: Option<String>,
}

/// Runs every check and prints the report; fails if any check failed.
pub async fn run(args: Args, mut config: Config, out: Printer) -> Result<(), Failure> {
    if let Some(s) = args.secret {
        config.secret_ids = split_list(&s);
    }
    let aws = AwsSide::load().await;
    let settings = aws.broker_settings(&config);
    let sts = aws_endpoint("AWS_ENDPOINT_URL_STS")
        .or_else(|| settings.aws.as_ref().map(|a| format!("https://sts.{}.amazonaws.com", a.region)));
    let pointers = MetadataPointers::from_env();
    let around = Surroundings {
        gce_metadata_host: pointers.host,
        gce_metadata_ip: pointers.ip,
        port: config.port,
        sts_url: sts.map(|base| format!("{}/?Action=GetCallerIdentity&Version=2011-06-15", base.trim_end_matches('/'))),
    };
    let checks = crate::doctor::run(&settings, aws.store, &around).await;
    print(&checks, out);
    if passed(&checks) {
        Ok(())
    } else {
        Err(Failure::failed("a check failed: fix the first one marked FAIL, then run `vertex-broker doctor` again"))
    }
}

/// The checks as a table, or one JSON document.
pub fn print(checks: &[Check], out: Printer) {
    let mut text = Vec::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        text.push(format!("{mark}  {:<30} {}", c.check, c.detail));
        if let Some(fix) = &c.fix {
            text.push(format!("      {:<30} fix: {fix}", ""));
        }
    }
    out.result(text.join("\n"), json!({"passed": passed(checks), "checks": checks}));
}
