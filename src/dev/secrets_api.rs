//! The sandbox's secret as Secrets Manager serves it: the subset of its JSON API the CLI calls
//! (DescribeSecret, GetSecretValue, PutSecretValue, UpdateSecretVersionStage,
//! ListSecretVersionIds, CreateSecret, RotateSecret) over the in-memory store, on 127.0.0.1. With
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` pointing here, `status`, `token`, `rotate` and `revoke` work
//! against the sandbox unchanged. Nothing is signed or checked: it is a local toy, bounded only
//! so that it cannot be made to grow.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::store::{MemoryStore, SecretStore, StoreError};

/// Largest request body accepted (a key file is a few KiB).
const MAX_BODY: usize = 256 * 1024;

/// Serves the API on `listener` until the task is dropped. Each RotateSecret's secret name goes
/// to `rotations`, where the sandbox runs the steps as Secrets Manager would run the function.
pub async fn serve(listener: TcpListener, store: Arc<MemoryStore>, rotations: mpsc::Sender<String>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (store, rotations) = (store.clone(), rotations.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (store, rotations) = (store.clone(), rotations.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(req, &store, &rotations).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    store: &MemoryStore,
    rotations: &mpsc::Sender<String>,
) -> Response<Full<Bytes>> {
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let operation = target.strip_prefix("secretsmanager.").unwrap_or(&target).to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => serde_json::from_slice::<Value>(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => return error(413, "InvalidRequestException", "the request body is too large"),
    };
    match call(&operation, &body, store).await {
        Ok(out) => {
            if operation == "RotateSecret" {
                let _ = rotations.try_send(out["Name"].as_str().unwrap_or_default().to_string());
            }
            respond(200, out.to_string())
        }
        Err(StoreError::NotFound { message, .. }) => error(400, "ResourceNotFoundException", &message),
        Err(StoreError::Refused { code, message, .. }) => error(400, &code, &message),
        Err(StoreError::Unavailable { message, .. }) => error(500, "InternalServiceError", &message),
    }
}

/// One operation on the store, with Secrets Manager's field names.
async fn call(operation: &str, body: &Value, store: &MemoryStore) -> Result<Value, StoreError> {
    let field = |name: &str| body[name].as_str().filter(|s| !s.is_empty());
    let id = field("SecretId").or(field("Name")).unwrap_or_default();
    let refused = |message: String| StoreError::Refused {
        operation: "request",
        code: "InvalidParameterException".into(),
        message,
    };
    match operation {
        "DescribeSecret" => {
            let d = store.describe(id).await?;
            Ok(
                json!({"ARN": d.arn, "Name": d.name, "RotationEnabled": d.rotation_enabled, "VersionIdsToStages": d.versions}),
            )
        }
        "GetSecretValue" => {
            let v = store.get(id, field("VersionId"), field("VersionStage")).await?;
            let d = store.describe(id).await?;
            Ok(json!({"ARN": d.arn, "Name": d.name, "VersionId": v.version_id, "SecretString": v.value.as_str(),
                "VersionStages": v.stages}))
        }
        "PutSecretValue" => {
            let token = field("ClientRequestToken").ok_or_else(|| refused("ClientRequestToken is required".into()))?;
            let value = field("SecretString").ok_or_else(|| refused("SecretString is required".into()))?;
            let stages: Vec<&str> = body["VersionStages"]
                .as_array()
                .map_or_else(|| vec![crate::store::AWSCURRENT], |a| a.iter().filter_map(Value::as_str).collect());
            store.put(id, token, value, &stages, field("RotationToken")).await?;
            let d = store.describe(id).await?;
            Ok(json!({"ARN": d.arn, "Name": d.name, "VersionId": token, "VersionStages": stages}))
        }
        "UpdateSecretVersionStage" => {
            let stage = field("VersionStage").ok_or_else(|| refused("VersionStage is required".into()))?;
            store.update_stage(id, stage, field("MoveToVersionId"), field("RemoveFromVersionId")).await?;
            let d = store.describe(id).await?;
            Ok(json!({"ARN": d.arn, "Name": d.name}))
        }
        "ListSecretVersionIds" => {
            let versions: Vec<Value> = store
                .list_versions(id)
                .await?
                .into_iter()
                .map(|v| {
                    json!({"VersionId": v.version_id, "VersionStages": v.stages,
                        "CreatedDate": v.created.map(|t| t.timestamp())})
                })
                .collect();
            let d = store.describe(id).await?;
            Ok(json!({"ARN": d.arn, "Name": d.name, "Versions": versions}))
        }
        "CreateSecret" => {
            let value = field("SecretString").ok_or_else(|| refused("SecretString is required".into()))?;
            let arn = SecretStore::create(store, id, value, field("Description").unwrap_or_default()).await?;
            Ok(json!({"ARN": arn, "Name": id}))
        }
        "RotateSecret" => {
            let version = store.start_rotation(id).await?;
            let d = store.describe(id).await?;
            Ok(json!({"ARN": d.arn, "Name": d.name, "VersionId": version}))
        }
        other => Err(StoreError::Refused {
            operation: "request",
            code: "InvalidAction".into(),
            message: format!("the sandbox does not serve {}", crate::text::printable(other)),
        }),
    }
}

fn respond(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// An AWS JSON-protocol error: the SDK reads its class from `__type`.
fn error(status: u16, class: &str, message: &str) -> Response<Full<Bytes>> {
    let mut response = respond(status, json!({"__type": class, "message": message}).to_string());
    if let Ok(v) = class.parse() {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}
