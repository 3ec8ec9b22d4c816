//! What the GenAI SDK manages besides model calls: a publisher model's metadata (`models.get`,
//! with or without a project and location in the path), context caches (`cachedContents`:
//! create, get, list, patch, delete) and batch prediction jobs (`batchPredictionJobs`: create,
//! get, list, `:cancel`), and a long-running operation under its model. Names come back with the project number, as Vertex writes them, and
//! are accepted with either the number or the id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{authorize, project_number, words};
use crate::google_error::ApiError;
use crate::Shared;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn invalid(message: &str) -> Response {
    ApiError::new(400, "INVALID_ARGUMENT", message).into_response()
}

fn not_found(name: &str) -> Response {
    ApiError::new(404, "NOT_FOUND", format!("{name} not found.")).into_response()
}

fn model_json(publisher: &str, model: &str) -> Value {
    json!({
        "name": format!("publishers/{publisher}/models/{model}"),
        "versionId": "001",
        "openSourceCategory": "PROPRIETARY",
        "launchStage": "GA",
    })
}

/// `GET {v}/publishers/{publisher}/models/{model}`.
pub async fn model(
    State(shared): State<Arc<Shared>>,
    Path((publisher, model)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let resource = format!("publishers/{publisher}/models/{model}");
    if let Err(e) = authorize(&shared, &headers, "aiplatform.publisherModels.get", &resource) {
        return e.into_response();
    }
    Json(model_json(&publisher, &model)).into_response()
}

/// `GET {v}/projects/{p}/locations/{l}/publishers/{publisher}/models/{model}`.
pub async fn model_in_location(
    State(shared): State<Arc<Shared>>,
    Path((_project, _location, publisher, model)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let resource = format!("publishers/{publisher}/models/{model}");
    if let Err(e) = authorize(&shared, &headers, "aiplatform.publisherModels.get", &resource) {
        return e.into_response();
    }
    Json(model_json(&publisher, &model)).into_response()
}

/// `projects/{number}/locations/{l}`: how Vertex writes a parent in resource names.
fn parent(project: &str, location: &str) -> String {
    format!("projects/{}/locations/{location}", project_number(project))
}

/// A model named as `projects/.../publishers/P/models/M` or `publishers/P/models/M`.
fn is_model_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    matches!(segments.as_slice(), [.., "publishers", p, "models", m] if !p.is_empty() && !m.is_empty())
}

/// Seconds of a duration written as Google's JSON does (`"3600s"`).
fn seconds(ttl: &str) -> Option<i64> {
    ttl.strip_suffix('s')?.parse::<f64>().ok().filter(|s| *s > 0.0).map(|s| s as i64)
}

/// The refusal, if the caller may not do `permission` on `resource`.
fn refused(shared: &Shared, headers: &HeaderMap, permission: &str, resource: &str) -> Option<Response> {
    authorize(shared, headers, permission, resource).err().map(IntoResponse::into_response)
}

/// The collections kept by name: context caches and batch jobs.
#[derive(Clone, Copy)]
enum Collection {
    Caches,
    Jobs,
}

impl Collection {
    /// The collection's name in paths, permissions and list answers.
    fn name(self) -> &'static str {
        match self {
            Self::Caches => "cachedContents",
            Self::Jobs => "batchPredictionJobs",
        }
    }

    fn items(self, vertex: &super::VertexState) -> &std::collections::BTreeMap<String, Value> {
        match self {
            Self::Caches => &vertex.caches,
            Self::Jobs => &vertex.jobs,
        }
    }
}

/// `GET {parent}/{collection}`: every item under the parent.
fn list(shared: &Shared, headers: &HeaderMap, collection: Collection, parent: &str) -> Response {
    if let Some(r) = refused(shared, headers, &format!("aiplatform.{}.list", collection.name()), parent) {
        return r;
    }
    let world = shared.world();
    let items: Vec<Value> =
        collection.items(&world.vertex).iter().filter(|(n, _)| n.starts_with(parent)).map(|(_, v)| v.clone()).collect();
    Json(json!({ collection.name(): items })).into_response()
}

/// `GET {parent}/{collection}/{id}`.
fn get(shared: &Shared, headers: &HeaderMap, collection: Collection, parent: &str, id: &str) -> Response {
    let name = format!("{parent}/{}/{id}", collection.name());
    if let Some(r) = refused(shared, headers, &format!("aiplatform.{}.get", collection.name()), &name) {
        return r;
    }
    match collection.items(&shared.world().vertex).get(&name) {
        Some(item) => Json(item.clone()).into_response(),
        None => not_found(&name),
    }
}

pub async fn create_cache(
    State(shared): State<Arc<Shared>>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let parent = parent(&project, &location);
    if let Some(r) = refused(&shared, &headers, "aiplatform.cachedContents.create", &parent) {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let Some(model) = body.get("model").and_then(Value::as_str).filter(|m| is_model_name(m)) else {
        return invalid(
            "model must be a publisher model's resource name, e.g. projects/P/locations/L/publishers/google/models/M.",
        );
    };
    let contents = body.get("contents").and_then(Value::as_array).cloned().unwrap_or_default();
    if contents.is_empty() {
        return invalid("contents must not be empty.");
    }
    let ttl = match body.get("ttl").and_then(Value::as_str) {
        None => 3600,
        Some(t) => match seconds(t) {
            Some(s) => s,
            None => return invalid("ttl must be a duration in seconds, e.g. \"3600s\"."),
        },
    };
    let tokens: u64 = contents.iter().map(|c| words(&c.to_string())).sum();
    let mut world = shared.world();
    world.vertex.next_id += 1;
    let name = format!("{parent}/cachedContents/{}", 4_000_000_000_000_000_000u64 + world.vertex.next_id);
    let expire = (Utc::now() + chrono::Duration::seconds(ttl)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut cache = json!({
        "name": name, "model": model, "createTime": now(), "updateTime": now(), "expireTime": expire,
        "usageMetadata": {"totalTokenCount": tokens},
    });
    if let Some(display) = body.get("displayName") {
        cache["displayName"] = display.clone();
    }
    world.vertex.caches.insert(name, cache.clone());
    Json(cache).into_response()
}

pub async fn list_caches(
    State(shared): State<Arc<Shared>>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &headers, Collection::Caches, &parent(&project, &location))
}

pub async fn get_cache(
    State(shared): State<Arc<Shared>>,
    Path((project, location, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    get(&shared, &headers, Collection::Caches, &parent(&project, &location), &id)
}

pub async fn patch_cache(
    State(shared): State<Arc<Shared>>,
    Path((project, location, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let name = format!("{}/cachedContents/{id}", parent(&project, &location));
    if let Some(r) = refused(&shared, &headers, "aiplatform.cachedContents.update", &name) {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let expire = match (body.get("ttl").and_then(Value::as_str), body.get("expireTime").and_then(Value::as_str)) {
        (Some(ttl), _) => match seconds(ttl) {
            Some(s) => (Utc::now() + chrono::Duration::seconds(s)).to_rfc3339_opts(SecondsFormat::Millis, true),
            None => return invalid("ttl must be a duration in seconds, e.g. \"3600s\"."),
        },
        (None, Some(at)) => at.to_string(),
        (None, None) => return invalid("only ttl or expireTime can be updated."),
    };
    // AIP-134: without a mask, the fields the body sets are updated (the GenAI SDK sends none).
    if let Some(mask) = query.get("updateMask") {
        if !mask.split(',').all(|f| matches!(f.trim(), "ttl" | "expireTime" | "expire_time")) {
            return invalid("updateMask may name only ttl or expireTime.");
        }
    }
    let mut world = shared.world();
    let Some(cache) = world.vertex.caches.get_mut(&name) else { return not_found(&name) };
    cache["expireTime"] = expire.into();
    cache["updateTime"] = now().into();
    Json(cache.clone()).into_response()
}

pub async fn delete_cache(
    State(shared): State<Arc<Shared>>,
    Path((project, location, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("{}/cachedContents/{id}", parent(&project, &location));
    if let Some(r) = refused(&shared, &headers, "aiplatform.cachedContents.delete", &name) {
        return r;
    }
    match shared.world().vertex.caches.remove(&name) {
        Some(_) => Json(json!({})).into_response(),
        None => not_found(&name),
    }
}

pub async fn create_job(
    State(shared): State<Arc<Shared>>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let parent = parent(&project, &location);
    if let Some(r) = refused(&shared, &headers, "aiplatform.batchPredictionJobs.create", &parent) {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    if !body.get("model").and_then(Value::as_str).is_some_and(is_model_name) {
        return invalid("model must be a publisher model's resource name, e.g. publishers/google/models/M.");
    }
    if body.pointer("/inputConfig/instancesFormat").and_then(Value::as_str).is_none() {
        return invalid("inputConfig.instancesFormat is required.");
    }
    if body.pointer("/outputConfig/predictionsFormat").and_then(Value::as_str).is_none() {
        return invalid("outputConfig.predictionsFormat is required.");
    }
    let mut world = shared.world();
    world.vertex.next_id += 1;
    let name = format!("{parent}/batchPredictionJobs/{}", 7_000_000_000_000_000_000u64 + world.vertex.next_id);
    let mut job = body.clone();
    job["name"] = name.clone().into();
    job["state"] = "JOB_STATE_PENDING".into();
    job["createTime"] = now().into();
    job["updateTime"] = now().into();
    world.vertex.jobs.insert(name, job.clone());
    Json(job).into_response()
}

pub async fn list_jobs(
    State(shared): State<Arc<Shared>>,
    Path((project, location)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    list(&shared, &headers, Collection::Jobs, &parent(&project, &location))
}

pub async fn get_job(
    State(shared): State<Arc<Shared>>,
    Path((project, location, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    get(&shared, &headers, Collection::Jobs, &parent(&project, &location), &id)
}

/// `POST .../batchPredictionJobs/{id}:cancel`: the job moves to `JOB_STATE_CANCELLING`.
pub async fn cancel_job(
    State(shared): State<Arc<Shared>>,
    Path((project, location, id_and_verb)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some((id, "cancel")) = id_and_verb.split_once(':') else {
        return ApiError::new(404, "NOT_FOUND", "Method not found.").into_response();
    };
    let name = format!("{}/batchPredictionJobs/{id}", parent(&project, &location));
    if let Some(r) = refused(&shared, &headers, "aiplatform.batchPredictionJobs.cancel", &name) {
        return r;
    }
    let mut world = shared.world();
    let Some(job) = world.vertex.jobs.get_mut(&name) else { return not_found(&name) };
    job["state"] = "JOB_STATE_CANCELLING".into();
    job["updateTime"] = now().into();
    Json(json!({})).into_response()
}

/// `GET .../publishers/{publisher}/models/{model}/operations/{id}`.
pub async fn get_operation(
    State(shared): State<Arc<Shared>>,
    Path((project, location, publisher, model, id)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let name = format!("projects/{project}/locations/{location}/publishers/{publisher}/models/{model}/operations/{id}");
    if let Some(r) = refused(&shared, &headers, "aiplatform.operations.get", &name) {
        return r;
    }
    match shared.world().vertex.operations.get(&name) {
        Some(op) => Json(op.clone()).into_response(),
        None => not_found(&name),
    }
}
