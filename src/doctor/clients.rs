//! The last check: the variables each runtime's Google library needs to find the broker
//! (`GCE_METADATA_HOST`, `GCE_METADATA_IP`), and whether a broker answers where they point.

use std::time::Duration;

use super::{Check, Status, Surroundings};

/// What each runtime's Google library needs to find the broker, and whether one answers there.
pub(super) async fn clients(around: &Surroundings) -> Check {
    let want = format!("127.0.0.1:{}", around.port);
    let export = format!("export GCE_METADATA_HOST={want} GCE_METADATA_IP={want}");
    let (host, ip) = (around.gce_metadata_host.as_deref(), around.gce_metadata_ip.as_deref());
    let (host, ip) = match (host, ip) {
        (None, None) => {
            return Check::new(
                "clients",
                Status::Warn,
                "GCE_METADATA_HOST and GCE_METADATA_IP are unset here: Google's libraries would look for \
                 metadata.google.internal (in Lambda, the layer's wrapper sets both)",
                Some(export),
            )
        }
        (Some(h), None) => {
            return Check::fail(
                "clients",
                format!(
                "GCE_METADATA_HOST={h} but GCE_METADATA_IP is unset: Go and Java work, Python's google-auth does not \
                     (its detection ping goes to GCE_METADATA_IP)"
            ),
                export,
            )
        }
        (None, Some(i)) => {
            return Check::fail(
                "clients",
                format!(
                    "GCE_METADATA_IP={i} but GCE_METADATA_HOST is unset: Node works, Python, Go and Java do not (their \
                     requests go to GCE_METADATA_HOST)"
                ),
                export,
            )
        }
        (Some(h), Some(i)) => (h, i),
    };
    if host != ip {
        return Check::fail(
            "clients",
            format!(
                "GCE_METADATA_HOST={host} and GCE_METADATA_IP={ip} differ: Python detects one server, asks the other"
            ),
            export,
        );
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().unwrap_or_default();
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/email");
    match http.get(&url).header("Metadata-Flavor", "Google").send().await {
        Ok(r) if r.status().is_success() => Check::ok(
            "clients",
            format!(
                "GCE_METADATA_HOST and GCE_METADATA_IP name {host} (Python, Node, Go, Java) and a broker answers there \
                 as {}",
                r.text().await.unwrap_or_default()
            ),
        ),
        Ok(r) => Check::new(
            "clients",
            Status::Warn,
            format!("GCE_METADATA_HOST and GCE_METADATA_IP name {host}, which answers {}", r.status()),
            Some("is another program on that port? Start the broker there or point both variables at it".into()),
        ),
        Err(_) => Check::new(
            "clients",
            Status::Warn,
            format!("GCE_METADATA_HOST and GCE_METADATA_IP name {host}, where nothing answers now"),
            Some("start `vertex-broker serve` (in Lambda, the layer's extension starts it)".into()),
        ),
    }
}
