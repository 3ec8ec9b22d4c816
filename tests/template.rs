//! Every name template.yaml depends on exists in the code: binaries, the layer's paths, and
//! the environment variables it sets. (cfn-lint and `sam validate --lint` run in the test
//! command; this checks what they cannot know.)

use std::fs;

fn read(path: &str) -> String {
    fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn template() -> String {
    read("template.yaml")
}

#[test]
fn function_binaries_exist() {
    let t = template();
    // sam runs cargo-lambda in CodeUri: the binary must be in that directory's package.
    assert!(t.contains("Binary: bootstrap") && t.contains("CodeUri: rotation\n"));
    assert!(t.contains("CodeUri: examples/vertex-proxy\n"));
    assert!(read("rotation/Cargo.toml").contains("name = \"bootstrap\""), "rotation/ builds `bootstrap`");
    assert!(t.contains("Binary: vertex-proxy"));
    assert!(read("examples/vertex-proxy/Cargo.toml").contains("name = \"vertex-proxy\""));
    assert!(t.contains("Binary: vertex-broker-minter") && t.contains("CodeUri: minter\n"));
    assert!(read("minter/Cargo.toml").contains("name = \"vertex-broker-minter\""), "minter/ builds the minter");
    assert_eq!(t.matches("BuildMethod: rust-cargolambda").count(), 3);
    assert!(t.contains("Runtime: provided.al2023"));
}

#[test]
fn the_layer_build_puts_the_extension_and_wrapper_where_the_template_points() {
    let t = template();
    let make = read("layer/Makefile");
    assert!(t.contains("BuildMethod: makefile"));
    // sam copies ContentUri before running make: the folder must be small, not the repository.
    assert!(t.contains("ContentUri: layer\n"));
    assert!(make.contains("build-BrokerLayer:"), "sam calls `make build-BrokerLayer`");
    assert!(make.contains("$(ARTIFACTS_DIR)/extensions/"), "extensions live in /opt/extensions/");
    assert!(make.contains("--bin vertex-broker-extension"));
    assert!(
        read("Cargo.toml").contains("vertex-broker-extension")
            || std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin/vertex-broker-extension.rs"))
                .exists()
    );
    assert!(t.contains("AWS_LAMBDA_EXEC_WRAPPER: /opt/vertex-broker-wrapper"));
    assert!(make.contains("cp \"$(here)/vertex-broker-wrapper\" \"$(ARTIFACTS_DIR)/vertex-broker-wrapper\""));
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/layer/vertex-broker-wrapper");
    use std::os::unix::fs::PermissionsExt;
    assert!(fs::metadata(wrapper).unwrap().permissions().mode() & 0o111 != 0, "the wrapper is executable");
}

#[test]
fn every_environment_variable_the_template_sets_is_read_by_the_code() {
    let t = template();
    let config: String = [
        "src/config/mod.rs",
        "src/config/vertex.rs",
        "src/config/source.rs",
        "src/config/limits.rs",
        "layer/vertex-broker-wrapper",
    ]
    .map(read)
    .join("\n");
    let proxy = read("examples/vertex-proxy/src/lib.rs");
    let mut seen = 0;
    for line in t.lines() {
        let line = line.trim();
        let Some((name, _)) = line.split_once(':') else { continue };
        if name.starts_with("VERTEX_") {
            seen += 1;
            let (quoted, shell) = (format!("\"{name}\""), format!("${{{name}:-"));
            assert!(
                config.contains(&quoted) || config.contains(&shell) || proxy.contains(&quoted),
                "{name} is set by the template but read nowhere"
            );
        }
    }
    assert!(seen >= 5, "found {seen} VERTEX_ variables");
}

#[test]
fn the_rotation_policy_covers_every_call_the_engine_makes_and_no_more() {
    let t = template();
    let rotation_policy = t.split("RotateThisSecretOnly").nth(1).unwrap().split("Resource:").next().unwrap();
    for action in
        ["DescribeSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage", "ListSecretVersionIds"]
    {
        assert!(rotation_policy.contains(&format!("secretsmanager:{action}")), "{action}");
    }
    assert!(!rotation_policy.contains('*'), "no wildcards");
    let store = read("src/store/secrets_manager.rs");
    for call in [
        ".describe_secret()",
        ".get_secret_value()",
        ".put_secret_value()",
        ".update_secret_version_stage()",
        ".list_secret_version_ids()",
    ] {
        assert!(store.contains(call), "{call}");
    }
    let read_only = t.split("ReadTheKeyOnly").nth(1).unwrap().split("Resource:").next().unwrap();
    assert!(!read_only.contains("Put") && !read_only.contains("Update"), "the example function only reads");
    assert!(t.contains("SourceAccount: !Ref AWS::AccountId"), "the invoke permission is scoped by account");
}

/// The resource block of `name` in the template: its line and the more deeply indented ones after.
fn resource(t: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = t.lines().skip_while(|l| *l != header);
    let first = lines.next().unwrap_or_else(|| panic!("no resource {name}"));
    let body = lines.take_while(|l| l.is_empty() || l.starts_with("   "));
    std::iter::once(first).chain(body).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_federation_source_deploys_no_secret_and_no_rotation_and_the_function_gets_its_configuration() {
    let t = template();
    assert!(t.contains("AllowedValues: [RotatedKey, Federation]") && t.contains("Default: RotatedKey"));
    for name in ["GoogleKeySecret", "RotationFunction", "RotationInvokePermission", "GoogleKeyRotation"] {
        assert!(resource(&t, name).contains("Condition: UseRotatedKey"), "{name} exists only with RotatedKey");
    }
    let function = resource(&t, "VertexProxyFunction");
    for line in [
        "VERTEX_BROKER_SECRET_ID: !If [FunctionReadsKey, !Ref GoogleKeySecret, !Ref AWS::NoValue]",
        "VERTEX_BROKER_CREDENTIAL_CONFIG: !If [FunctionFederates, !Ref CredentialConfig, !Ref AWS::NoValue]",
        "VERTEX_BROKER_IMPERSONATE: !If [FunctionImpersonates, !Ref ImpersonateServiceAccount, !Ref AWS::NoValue]",
        "VERTEX_BROKER_TOKEN_LIFETIME: !Ref TokenLifetime",
    ] {
        assert!(function.contains(line), "VertexProxyFunction sets {line}");
    }
    assert!(t.contains("FunctionReadsKey: !And [!Condition UseRotatedKey, !Condition PerEnvironment]"));
    // With federation the function's role holds no Secrets Manager right at all.
    let policies = function.split("Policies:").nth(1).unwrap().split("Events:").next().unwrap();
    assert!(policies.trim_start().starts_with("- !If\n") && policies.contains("- FunctionReadsKey"), "{policies}");
    assert!(t.contains("FederationNeedsItsConfiguration"), "a Federation stack without its configuration is refused");
}

#[test]
fn under_central_minting_the_function_role_reads_the_token_secret_only_and_the_minter_holds_the_source() {
    let t = template();
    assert!(t.contains("AllowedValues: [PerEnvironment, Central]") && t.contains("Default: PerEnvironment"));
    for name in ["TokenKey", "TokenSecret", "MinterFunction", "StoredTokensAlarm"] {
        assert!(resource(&t, name).contains("Condition: Central"), "{name} exists only with Central");
    }
    assert!(
        t.contains("Central: !Equals [!Ref Minting, Central]")
            && t.contains("PerEnvironment: !Not [!Condition Central]")
    );
    // The function: the key secret's statement and the Google source only per environment, the
    // token secret's read only under Central.
    let function = resource(&t, "VertexProxyFunction");
    let policies = function.split("Policies:").nth(1).unwrap().split("Events:").next().unwrap();
    let (key_part, token_part) = policies.split_once("- Central").expect("a statement conditioned on Central");
    assert!(key_part.contains("- FunctionReadsKey") && key_part.contains("Resource: !Ref GoogleKeySecret"));
    assert!(!token_part.contains("GoogleKeySecret"), "under Central no right on the key secret: {token_part}");
    assert!(token_part.contains("secretsmanager:GetSecretValue") && token_part.contains("Resource: !Ref TokenSecret"));
    assert!(!token_part.contains("PutSecretValue") && !token_part.contains('*'), "read only, no wildcards");
    assert!(token_part.contains("kms:ViaService"), "decrypts only through Secrets Manager");
    assert!(function.contains("VERTEX_BROKER_TOKEN_SECRET_ID: !If [Central, !Ref TokenSecret, !Ref AWS::NoValue]"));
    // The minter: the source, and writes the token secret; renewed often enough for the alarm.
    let minter = resource(&t, "MinterFunction");
    assert!(minter.contains("VERTEX_BROKER_TOKEN_SECRET_ID: !Ref TokenSecret"));
    assert!(minter.contains("VERTEX_BROKER_CREDENTIAL_CONFIG: !If [UseFederation"));
    assert!(minter.contains("secretsmanager:PutSecretValue") && minter.contains("Type: ScheduleV2"));
    assert!(minter.contains("ScheduleExpression: rate(10 minutes)"));
    let alarm = resource(&t, "StoredTokensAlarm");
    assert!(alarm.contains("MetricName: SecondsLeft") && alarm.contains("Threshold: 1200"));
    assert!(alarm.contains(&format!("Namespace: {}", vertex_broker::minter::metric::NAMESPACE)));
    assert!(resource(&t, "TokenSecret").contains("KmsKeyId: !Ref TokenKey"));
}
