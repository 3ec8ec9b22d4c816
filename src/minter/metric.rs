//! The minter's CloudWatch EMF line, one per run: tokens renewed, failures by class, and the
//! seconds of life left on what is stored (the number the template's alarm watches).

use std::time::Duration;

use serde_json::json;

use super::{MinterError, Report};

/// The namespace of the minter's metrics.
pub const NAMESPACE: &str = "VertexBroker/Minter";

/// The EMF line of one run: `result` is its report, or why it could not run.
pub fn run_metric(
    token_secret: &str,
    result: Result<&Report, &MinterError>,
    took: Duration,
    timestamp_ms: i64,
) -> String {
    let (renewed, failures, left, class) = match result {
        Ok(r) => (r.renewed, r.failures.len(), r.least_life_left, r.failures.first().map(|f| f.class)),
        Err(e) => (0, 1, None, Some(e.class())),
    };
    let mut dimensions = vec![json!(["TokenSecret"])];
    if class.is_some() {
        dimensions.push(json!(["TokenSecret", "ErrorType"]));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": [
                    {"Name": "TokensRenewed", "Unit": "Count"},
                    {"Name": "MintFailures", "Unit": "Count"},
                    {"Name": "SecondsLeft", "Unit": "Seconds"},
                    {"Name": "RunDuration", "Unit": "Milliseconds"}
                ]
            }]
        },
        "TokenSecret": token_secret,
        "TokensRenewed": renewed,
        "MintFailures": failures,
        "RunDuration": took.as_secs_f64() * 1000.0,
    });
    // No stored token: no value rather than a made-up one, so the alarm treats it as missing.
    if let Some(left) = left {
        line["SecondsLeft"] = json!(left);
    }
    if let Some(class) = class {
        line["ErrorType"] = json!(class);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minter::Failure;

    #[test]
    fn a_run_with_a_failure_carries_its_class_as_a_dimension() {
        let report = Report {
            renewed: 1,
            kept: 1,
            failures: vec![Failure { slot: "https://x".into(), class: "GoogleRefused", message: "m".into() }],
            least_life_left: Some(1800),
            version: None,
        };
        let line: serde_json::Value =
            serde_json::from_str(&run_metric("arn:s", Ok(&report), Duration::from_millis(5), 1)).unwrap();
        assert_eq!((line["TokensRenewed"].as_u64(), line["MintFailures"].as_u64()), (Some(1), Some(1)));
        assert_eq!((line["SecondsLeft"].as_i64(), line["ErrorType"].as_str()), (Some(1800), Some("GoogleRefused")));
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1], json!(["TokenSecret", "ErrorType"]));
        let ok = Report { failures: vec![], least_life_left: None, ..report };
        let line: serde_json::Value =
            serde_json::from_str(&run_metric("arn:s", Ok(&ok), Duration::from_millis(5), 1)).unwrap();
        assert!(line.get("SecondsLeft").is_none() && line.get("ErrorType").is_none(), "{line}");
    }
}
