//! `/emulator/v1/...`: the emulator's own control API, for tests in other processes and for
//! people driving a standalone `google-emulator`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{AwsProvider, Fault};
use crate::{crypto, Shared};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/emulator/v1/accounts", post(create_account))
        .route("/emulator/v1/accounts/{email}", get(account))
        .route("/emulator/v1/accounts/{email}/policy", post(policy))
        .route("/emulator/v1/faults", post(add_fault).get(list_faults))
        .route("/emulator/v1/faults", delete(clear_faults))
        .route("/emulator/v1/propagation", post(propagation))
        .route("/emulator/v1/accounts/{email}/bindings", post(add_binding))
        .route("/emulator/v1/aws-providers", post(add_aws_provider))
        .route("/emulator/v1/aws-sts", post(set_aws_sts))
        .route("/emulator/v1/vertex-members", post(add_vertex_member))
        .route("/emulator/v1/vertex-latency", post(vertex_latency))
}

/// Mints a key that works at once, creating the account when needed.
pub(crate) fn seed_key(shared: &Shared, email: &str) -> String {
    let generated = crypto::generate_rsa_2048();
    let mut world = shared.world();
    world.account_mut(email);
    let id = world.add_key(email, &generated, true);
    world.key_file(email, &id, &generated.private_pem)
}

#[derive(Deserialize)]
struct NewAccount {
    email: String,
    #[serde(default)]
    admins: Vec<String>,
}

async fn create_account(State(shared): State<Arc<Shared>>, Json(req): Json<NewAccount>) -> Response {
    if !req.email.contains('@') {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "email must look like name@project.iam.gserviceaccount.com"})),
        )
            .into_response();
    }
    let shared2 = shared.clone();
    let email = req.email.clone();
    let key_file = tokio::task::spawn_blocking(move || seed_key(&shared2, &email)).await.expect("keygen task");
    let mut world = shared.world();
    for admin in req.admins {
        world.account_mut(&admin);
        world.account_mut(&req.email).admins.insert(admin);
    }
    let key_file: Value = serde_json::from_str(&key_file).expect("key file is JSON");
    Json(json!({ "email": req.email, "key_file": key_file })).into_response()
}

async fn account(State(shared): State<Arc<Shared>>, Path(email): Path<String>) -> Json<Value> {
    let world = shared.world();
    let counters = world.counters.get(&email).cloned().unwrap_or_default();
    Json(json!({ "email": email, "keys": world.key_infos(&email), "counters": counters }))
}

#[derive(Deserialize)]
struct Policy {
    key_creation_disabled: Option<bool>,
    vertex_denied: Option<bool>,
    /// `constraints/iam.allowServiceAccountCredentialLifetimeExtension` lists the account.
    lifetime_extension: Option<bool>,
}

async fn policy(State(shared): State<Arc<Shared>>, Path(email): Path<String>, Json(p): Json<Policy>) -> Json<Value> {
    let mut world = shared.world();
    let account = world.account_mut(&email);
    if let Some(v) = p.key_creation_disabled {
        account.key_creation_disabled = v;
    }
    if let Some(v) = p.vertex_denied {
        account.vertex_denied = v;
    }
    if let Some(v) = p.lifetime_extension {
        account.lifetime_extension = v;
    }
    Json(json!({
        "key_creation_disabled": account.key_creation_disabled,
        "vertex_denied": account.vertex_denied,
        "lifetime_extension": account.lifetime_extension,
    }))
}

async fn add_fault(State(shared): State<Arc<Shared>>, Json(fault): Json<Fault>) -> Json<Value> {
    shared.world().faults.push_back(fault);
    list_faults(State(shared)).await
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "faults": shared.world().faults.iter().cloned().collect::<Vec<_>>() }))
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.world().faults.clear();
    Json(json!({ "faults": [] }))
}

#[derive(Deserialize)]
struct Propagation {
    delay_ms: u64,
}

async fn propagation(State(shared): State<Arc<Shared>>, Json(p): Json<Propagation>) -> Json<Value> {
    shared.world().propagation_delay = Duration::from_millis(p.delay_ms);
    Json(json!({ "delay_ms": p.delay_ms }))
}

#[derive(Deserialize)]
struct Binding {
    role: String,
    member: String,
}

/// Grants `member` (an account's email, or a `principal://` / `principalSet://`) `role` on the
/// account `email`.
async fn add_binding(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
    Json(b): Json<Binding>,
) -> Json<Value> {
    shared.world().account_mut(&email).bindings.insert((b.role.clone(), b.member.clone()));
    Json(json!({"resource": email, "role": b.role, "member": b.member}))
}

#[derive(Deserialize)]
struct NewAwsProvider {
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`
    audience: String,
    aws_account: String,
}

async fn add_aws_provider(State(shared): State<Arc<Shared>>, Json(p): Json<NewAwsProvider>) -> Json<Value> {
    shared.world().aws_providers.insert(p.audience.clone(), AwsProvider { aws_account: p.aws_account.clone() });
    Json(json!({"audience": p.audience, "aws_account": p.aws_account}))
}

#[derive(Deserialize)]
struct AwsSts {
    endpoint: String,
}

async fn set_aws_sts(State(shared): State<Arc<Shared>>, Json(p): Json<AwsSts>) -> Json<Value> {
    shared.world().aws_sts_endpoint = Some(p.endpoint.clone());
    Json(json!({"endpoint": p.endpoint}))
}

#[derive(Deserialize)]
struct VertexMember {
    member: String,
}

async fn add_vertex_member(State(shared): State<Arc<Shared>>, Json(m): Json<VertexMember>) -> Json<Value> {
    shared.world().vertex_members.insert(m.member.clone());
    Json(json!({"member": m.member}))
}

#[derive(Deserialize)]
struct VertexLatency {
    #[serde(default)]
    first_byte_ms: u64,
    #[serde(default)]
    between_events_ms: u64,
}

async fn vertex_latency(State(shared): State<Arc<Shared>>, Json(l): Json<VertexLatency>) -> Json<Value> {
    let latency = (Duration::from_millis(l.first_byte_ms), Duration::from_millis(l.between_events_ms));
    shared.world().vertex_latency = latency;
    Json(json!({"first_byte_ms": l.first_byte_ms, "between_events_ms": l.between_events_ms}))
}
