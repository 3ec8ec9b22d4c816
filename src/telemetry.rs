//! Logging (JSON lines in Lambda, readable text elsewhere) and CloudWatch Embedded Metric
//! Format lines. Nothing here ever receives a key or a token: callers log ids and outcomes.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

/// Installs the global tracing subscriber with `filter` (VERTEX_BROKER_LOG). JSON when `json`.
pub fn init(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(false).without_time().try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

/// One EMF line for a rotation step: `StepDuration` (ms) and `StepFailure` (0/1), with the
/// secret ARN and step as dimensions. CloudWatch turns it into metrics; nothing secret is in it.
pub fn step_metric(secret_arn: &str, step: &str, ok: bool, duration: Duration, timestamp_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "VertexBroker/Rotation",
                "Dimensions": [["SecretArn", "Step"]],
                "Metrics": [
                    {"Name": "StepDuration", "Unit": "Milliseconds"},
                    {"Name": "StepFailure", "Unit": "Count"}
                ]
            }]
        },
        "SecretArn": secret_arn,
        "Step": step,
        "Outcome": if ok { "success" } else { "failure" },
        "StepDuration": duration.as_secs_f64() * 1000.0,
        "StepFailure": if ok { 0 } else { 1 },
    })
    .to_string()
}

/// Writes an EMF line to stdout, where Lambda forwards it to CloudWatch Logs as is.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_metric_is_valid_emf() {
        let line =
            step_metric("arn:aws:secretsmanager:r:1:secret:s", "testSecret", false, Duration::from_millis(1500), 42);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 42);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        for dim in directive["Dimensions"][0].as_array().unwrap() {
            assert!(v.get(dim.as_str().unwrap()).is_some(), "dimension {dim} has a value");
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(v[metric["Name"].as_str().unwrap()].is_number(), "metric {metric} has a number");
        }
        assert_eq!(v["StepDuration"], 1500.0);
        assert_eq!(v["StepFailure"], 1);
        assert_eq!(v["Outcome"], "failure");
    }
}
