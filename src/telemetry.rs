//! Logging (JSON lines in Lambda, readable text elsewhere) and CloudWatch Embedded Metric
//! Format lines. Nothing here ever receives a key or a token: callers log ids and outcomes.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

/// Dependencies that log request or response bodies (yup-oauth2 logs token responses at
/// DEBUG) are held at INFO whatever `VERTEX_BROKER_LOG` says, so no filter can leak a token
/// or a key.
const QUIET_DEPENDENCIES: [(&str, &str); 13] = [
    ("yup_oauth2", "info"),
    ("hyper", "info"),
    ("hyper_util", "info"),
    ("h2", "info"),
    ("reqwest", "info"),
    ("rustls", "info"),
    ("aws_smithy_runtime", "info"),
    ("aws_smithy_http", "info"),
    ("aws_smithy_http_client", "info"),
    ("aws_sdk_secretsmanager", "info"),
    ("aws_config", "error"),
    ("lambda_runtime", "info"),
    ("lambda_runtime_api_client", "info"),
];

/// The filter actually installed: the user's directives (`level` or `target=level`, comma
/// separated) without any that name a capped dependency, then the caps.
pub fn filter(user: &str) -> String {
    let capped = |directive: &str| {
        let target = directive.split('=').next().unwrap_or("").trim();
        QUIET_DEPENDENCIES.iter().any(|(dep, _)| target == *dep || target.starts_with(&format!("{dep}::")))
    };
    let mut parts: Vec<String> = crate::text::split_list(user).into_iter().filter(|d| !capped(d)).collect();
    parts.extend(QUIET_DEPENDENCIES.iter().map(|(dep, level)| format!("{dep}={level}")));
    parts.join(",")
}

fn targets(user: &str) -> tracing_subscriber::filter::Targets {
    filter(user).parse().unwrap_or_else(|_| filter("info").parse().expect("the default filter parses"))
}

/// The start of a Lambda function binary (the rotation function, the minter): outside Lambda it
/// says what `binary` is and what to run `elsewhere` instead, and exits 1 before building any AWS
/// client; an invalid configuration is one JSON log line naming the variable. Then JSON logs.
pub fn start_lambda_function(
    binary: &'static str,
    elsewhere: &'static str,
) -> Result<crate::config::Config, crate::config::ConfigError> {
    if let Err(e) = crate::config::require_lambda(binary, elsewhere) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let config = crate::config::Config::from_env().inspect_err(|e| {
        eprintln!("{}", json!({"level": "ERROR", "message": format!("configuration: {e}")}));
    })?;
    init(config.log.as_deref().unwrap_or("info"), true);
    Ok(config)
}

/// Installs the global tracing subscriber with `user_filter` (VERTEX_BROKER_LOG). JSON when `json`.
pub fn init(user_filter: &str, json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(targets(user_filter));
    let _ = if json {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .with_writer(std::io::stderr);
        registry.with(layer).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr)).try_init()
    };
}

/// One EMF line for a rotation step: `StepDuration` (ms) and `StepFailure` (0/1), with the
/// secret ARN and step as dimensions; a failure also carries its `ErrorType` (the class the
/// Lambda reports) as a second dimension set, so an alarm can watch one class. CloudWatch turns
/// it into metrics; nothing secret is in it.
pub fn step_metric(
    secret_arn: &str,
    step: &str,
    error_type: Option<&str>,
    duration: Duration,
    timestamp_ms: i64,
) -> String {
    let mut dimensions = vec![json!(["SecretArn", "Step"])];
    if error_type.is_some() {
        dimensions.push(json!(["SecretArn", "ErrorType"]));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "VertexBroker/Rotation",
                "Dimensions": dimensions,
                "Metrics": [
                    {"Name": "StepDuration", "Unit": "Milliseconds"},
                    {"Name": "StepFailure", "Unit": "Count"}
                ]
            }]
        },
        "SecretArn": secret_arn,
        "Step": step,
        "Outcome": if error_type.is_none() { "success" } else { "failure" },
        "StepDuration": duration.as_secs_f64() * 1000.0,
        "StepFailure": error_type.is_some() as u8,
    });
    if let Some(error_type) = error_type {
        line["ErrorType"] = json!(error_type);
    }
    line.to_string()
}

/// Writes an EMF line to stdout, where Lambda forwards it to CloudWatch Logs as is.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes `line`, which ends in a newline, to stdout in one write (a gateway call's audit line).
pub fn emit_line(line: &[u8]) {
    let _ = std::io::stdout().lock().write_all(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_lets_dependency_debug_logs_through() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for user in
            ["debug", "trace", "yup_oauth2=trace", "trace,yup_oauth2=debug", "yup_oauth2::service_account=trace"]
        {
            let buf = Buf::default();
            let writer = buf.clone();
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry()
                .with(targets(user))
                .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "yup_oauth2::service_account", "body: token-material");
                tracing::debug!(target: "vertex_broker::rotation", "ours");
            });
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert!(!out.contains("token-material"), "{user}: {out}");
            if user.starts_with("debug") || user.starts_with("trace") {
                assert!(out.contains("ours"), "{user}: our own debug logs still show: {out}");
            }
        }
    }

    #[test]
    fn step_metric_is_valid_emf() {
        let arn = "arn:aws:secretsmanager:r:1:secret:s";
        let line = step_metric(arn, "testSecret", Some("PropagationTimeout"), Duration::from_millis(1500), 42);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 42);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"].as_array().unwrap().len(), 2);
        for set in directive["Dimensions"].as_array().unwrap() {
            for dim in set.as_array().unwrap() {
                assert!(v.get(dim.as_str().unwrap()).is_some(), "dimension {dim} has a value");
            }
        }
        assert_eq!(v["ErrorType"], "PropagationTimeout");
        let ok: serde_json::Value =
            serde_json::from_str(&step_metric(arn, "testSecret", None, Duration::from_millis(5), 42)).unwrap();
        assert_eq!(ok["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["SecretArn", "Step"]]));
        assert!(ok.get("ErrorType").is_none() && ok["StepFailure"] == 0);
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(v[metric["Name"].as_str().unwrap()].is_number(), "metric {metric} has a number");
        }
        assert_eq!(v["StepDuration"], 1500.0);
        assert_eq!(v["StepFailure"], 1);
        assert_eq!(v["Outcome"], "failure");
    }
}
