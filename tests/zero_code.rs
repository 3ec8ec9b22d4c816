//! No code change: through the layer's exec wrapper, with the broker in gateway token mode,
//! Python's `genai.Client(vertexai=True, project, location)`, `AnthropicVertex()` and Node's
//! `new GoogleGenAI({vertexai, project, location})`, given no base URL and no credential,
//! reach Vertex (the emulator, which answers only the account's real tokens) through the
//! gateway; the token they were handed is refused by Vertex when sent there directly. The
//! example functions (`examples/python-function`, `examples/node-function`) run the same way.

use test_support as support;

use serde_json::Value;
use support::Fixture;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `program args` run as a Lambda runtime would be: under the wrapper, with nothing of ours in
/// the environment but the port and the SDKs' own variables.
async fn under_wrapper(port: u16, program: &str, args: &[&str]) -> Value {
    let out = support::clean_command(format!("{REPO}/layer/vertex-broker-wrapper"))
        .env("VERTEX_BROKER_PORT", port.to_string())
        .env("CLOUD_ML_REGION", "us-east5")
        .env("ANTHROPIC_VERTEX_PROJECT_ID", "proj-test")
        .env("GOOGLE_CLOUD_PROJECT", "proj-test")
        .env("GOOGLE_CLOUD_LOCATION", "us-central1")
        .env("NODE_PATH", format!("{REPO}/tests/node/node_modules"))
        .arg(program)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdks_with_no_base_url_and_no_credential_reach_vertex_through_the_gateway() {
    let f = Fixture::new("zero-code").await;
    let port = support::free_port();
    let child = support::serve_command(env!("CARGO_BIN_EXE_vertex-broker"), &f, port)
        .env("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url())
        .env("VERTEX_BROKER_TOKEN_ENDPOINTS", "gateway")
        .spawn()
        .unwrap();
    support::wait_listening(port).await;

    let python = format!("{REPO}/.venv/bin/python");
    let script = format!("{REPO}/tests/python/zero_code.py");
    let v = under_wrapper(
        port,
        &python,
        &[&script, "proj-test", "us-central1", "gemini-2.0-flash", "claude-sonnet-4@20250514"],
    )
    .await;
    assert_eq!(v["genai"], "echo: zero code genai");
    assert_eq!(v["claude"], "echo: zero code claude");
    let node = under_wrapper(
        port,
        "node",
        &[&format!("{REPO}/tests/node/gateway_client.js"), "genai", "proj-test", "us-central1", "gemini-2.0-flash"],
    )
    .await;
    assert_eq!(node["text"], "echo: hello from node");

    // The example functions, as Lambda's runtimes would call their handlers.
    let event = r#"{"body": "{\"prompt\": \"an example prompt\"}"}"#;
    let python_example = format!(
        "import json, sys; sys.path.insert(0, '{REPO}/examples/python-function'); import handler; \
         print(handler.handler(json.loads(sys.argv[1]), None)['body'])"
    );
    let answer = under_wrapper(port, &python, &["-c", &python_example, event]).await;
    assert_eq!(
        (answer["genai"].as_str(), answer["openai"].as_str()),
        (Some("echo: an example prompt"), Some("echo: an example prompt"))
    );
    let node_example = format!(
        "require('{REPO}/examples/node-function/index.js').handler(JSON.parse(process.argv[1])).then(r => console.log(r.body))"
    );
    let answer = under_wrapper(port, "node", &["-e", &node_example, event]).await;
    assert_eq!(answer["genai"], "echo: an example prompt");

    // What function code was handed is the gateway's token: Vertex refuses it.
    let token = v["token"].as_str().unwrap();
    assert!(token.starts_with("vertex-broker-gateway."), "{token}");
    assert_eq!(f.emu.token_account(token), None);
    let direct = reqwest::Client::new()
        .post(format!(
            "{}/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            f.emu.url()
        ))
        .bearer_auth(token)
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "direct"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 401);
    let body: Value = direct.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");

    let (out, _) = support::stop_serve(child).await;
    let audits: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["event"] == "vertex-broker.audit")
        .collect();
    assert_eq!(audits.len(), 6, "{out}");
    assert!(
        audits.iter().all(|a| a["status"] == 200 && a["account"] == f.account.as_str()),
        "as the account: {audits:?}"
    );
}
