//! The container image (scripts/image.sh) run in Docker as ECS, EKS or a laptop would run it
//! (--network host: task and pod containers share loopback): Google's Python client gets tokens
//! from it with a rotated key in moto, and with AWS federation from ECS container credentials and
//! from EKS Pod Identity's form of them; it becomes healthy with no shell; it runs read-only as a
//! user other than root; `docker stop` answers the request in flight and exits 0; `/opt` holds
//! the layer's two files, executable. The other architecture's image (arm64 here) serves a token
//! and turns healthy under qemu-user.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use google_emulator::WORKLOAD_IDENTITY_USER;
use serde_json::Value;
use test_support as support;

/// An architecture as scripts/image.sh, Docker and ELF name it, and the tag scripts/test.sh
/// gives its image when it is the other one.
struct Arch {
    name: &'static str,
    platform: &'static str,
    elf_machine: u16,
    foreign_tag: &'static str,
}

const X86_64: Arch =
    Arch { name: "x86_64", platform: "linux/amd64", elf_machine: 0x3E, foreign_tag: "vertex-broker:test-x86_64" };
const ARM64: Arch =
    Arch { name: "arm64", platform: "linux/arm64", elf_machine: 0xB7, foreign_tag: "vertex-broker:test-arm64" };
/// This machine's architecture, and the other one.
const NATIVE: Arch = if cfg!(target_arch = "aarch64") { ARM64 } else { X86_64 };
const FOREIGN: Arch = if cfg!(target_arch = "aarch64") { X86_64 } else { ARM64 };

/// The image for this machine's architecture, built once per test binary (starting Docker's
/// daemon first when none answers).
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    build(&BUILT, "vertex-broker:test", NATIVE.name, &[])
}

/// The other architecture's image (`make image ARCH=arm64` here), run under qemu-user through
/// binfmt_misc (scripts/binfmt.sh).
fn foreign_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    build(&BUILT, FOREIGN.foreign_tag, FOREIGN.name, &["scripts/binfmt.sh"])
}

fn build(built: &OnceLock<()>, image: &'static str, arch: &str, first: &[&str]) -> &'static str {
    built.get_or_init(|| {
        for script in ["scripts/docker.sh"].iter().chain(first).chain(&["scripts/image.sh"]) {
            let status = std::process::Command::new("bash")
                .arg(format!("{}/{script}", support::REPO))
                .arg(arch)
                .env("IMAGE", image)
                .status()
                .unwrap();
            assert!(status.success(), "{script} {arch} failed");
        }
    });
    image
}

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker").args(args).output().unwrap()
}

/// A running container, removed when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d` of `image` (default command `serve`) on the host's network, read-only,
    /// as the image's unprivileged user, with `env` and `extra` docker arguments.
    fn run(image: &str, env: &[(&str, String)], extra: &[&str]) -> Self {
        let name = support::unique("vertex-broker");
        let mut args: Vec<String> =
            ["run", "-d", "--network", "host", "--read-only", "--name", &name].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        for (k, v) in env {
            args.extend(["-e".to_string(), format!("{k}={v}")]);
        }
        args.push(image.to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = docker(&refs);
        assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
        Self { name }
    }

    fn inspect(&self, format: &str) -> String {
        String::from_utf8_lossy(&docker(&["inspect", "--format", format, &self.name]).stdout).trim().to_string()
    }

    /// The container's `/opt`, copied to a fresh host directory (the caller removes it).
    fn copy_opt(&self) -> std::path::PathBuf {
        let opt = std::env::temp_dir().join(support::unique("opt"));
        let copied = docker(&["cp", &format!("{}:/opt", self.name), opt.to_str().unwrap()]);
        assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
        opt
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// Google's Python client against the broker on `port`: its JSON (token, email, ...).
async fn python_client(port: u16) -> Value {
    let addr = format!("127.0.0.1:{port}");
    let dir = support::REPO;
    let out = support::broker::google_client_at(&format!("{dir}/.venv/bin/python"), &addr)
        .arg(format!("{dir}/tests/python/google_auth_client.py"))
        .arg("https://example.run.app")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a container needs to serve `f`'s rotated key on `port`, Vertex at the emulator.
fn rotated_key_env(f: &support::Fixture, port: u16) -> Vec<(&'static str, String)> {
    let mut env = support::aws_env().to_vec();
    env.extend([
        ("VERTEX_BROKER_SECRET_ID", f.secret.clone()),
        ("VERTEX_BROKER_PORT", port.to_string()),
        ("VERTEX_BROKER_VERTEX_ENDPOINT", f.emu.url()),
    ]);
    env
}

/// A Gemini call through the gateway of the broker on `port`: its status.
async fn generate_through(port: u16) -> reqwest::Result<u16> {
    reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/vertex/v1/projects/proj-test/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        ))
        .json(&serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}))
        .send()
        .await
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_read_only_unprivileged_healthy_and_a_stop_that_answers_in_flight() {
    let f = support::Fixture::new("image").await;
    let port = support::free_port();
    let mut env = rotated_key_env(&f, port);
    env.push(("VERTEX_BROKER_DRAIN_TIMEOUT", "5s".to_string()));
    let c = Container::run(image(), &env, &[]);
    support::wait_listening(port).await;
    assert_eq!(c.inspect("{{.Config.User}}"), "65532:65532", "not root");
    assert_eq!(c.inspect("{{.HostConfig.ReadonlyRootfs}}"), "true");

    let v = python_client(port).await;
    let token = v["token"].as_str().unwrap_or_else(|| panic!("{v}; logs: {}", c.logs()));
    assert_eq!(f.emu.token_account(token), Some(f.account.clone()));
    assert_eq!(support::generate(&f.emu, token).await, 200);

    // Healthy, by the CLI's own probe (Docker runs it every 10 s).
    support::wait_for("the container healthy", Duration::from_secs(40), || async {
        (c.inspect("{{.State.Health.Status}}") == "healthy").then_some(())
    })
    .await;

    // A slow Vertex call in flight while `docker stop` drains: it is answered, the exit is 0.
    f.emu.set_vertex_latency(Duration::from_millis(1500), Duration::ZERO);
    let call = tokio::spawn(generate_through(port));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    let stop = docker(&["stop", "-t", "10", &c.name]);
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(stopping.elapsed() < Duration::from_secs(8), "stopped within the drain time: {:?}", stopping.elapsed());
    assert_eq!(call.await.unwrap().ok(), Some(200), "the call in flight was answered; logs: {}", c.logs());
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0", "logs: {}", c.logs());

    // The layer's files for Lambda container images, executable.
    let opt = c.copy_opt();
    use std::os::unix::fs::PermissionsExt;
    for file in ["extensions/vertex-broker-extension", "vertex-broker-wrapper"] {
        let mode = std::fs::metadata(opt.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "/opt/{file}");
    }
    let _ = std::fs::remove_dir_all(&opt);
    let logs = c.logs();
    assert!(!logs.contains(token) && !logs.contains("PRIVATE KEY"), "no token or key in the logs");

    // The image's CLI has no sandbox (no emulator inside): asked for one, it says where it is.
    let dev = docker(&["run", "--rm", "--network", "host", image(), "dev"]);
    assert_eq!(dev.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&dev.stderr).contains("make dev"), "{}", String::from_utf8_lossy(&dev.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_federates_with_ecs_task_credentials_and_with_eks_pod_identity() {
    let emu = google_emulator::Emulator::start().await.unwrap();
    let audience = support::federation::provider_audience(&support::unique("image-pool"));
    support::federation::trust_moto(&emu, &audience);
    let creds = support::federation::assume_role(&support::unique("task-role"), "ecs-task").await;
    let target = support::account("image-target");
    emu.grant(&target, WORKLOAD_IDENTITY_USER, &support::federation::role_member(&audience, &creds));
    let config = support::federation::credential_config(&emu, &audience, Some(&target)).to_string();
    let base = |port: u16| -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", support::moto_endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("VERTEX_BROKER_CREDENTIAL_CONFIG", config.clone()),
            ("VERTEX_BROKER_PORT", port.to_string()),
        ]
    };

    // ECS: the task role's credentials from the agent's endpoint, with its authorization token.
    let (uri, served) = support::federation::serve_container_credentials(&creds, "ecs-auth-token").await;
    let port = support::free_port();
    let mut env = base(port);
    env.extend([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.clone()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-token".into()),
    ]);
    // Any unprivileged user, as a pod's runAsUser or a task's user would set it.
    let ecs = Container::run(image(), &env, &["--user", "10001:10001"]);
    assert_eq!(ecs.inspect("{{.Config.User}}"), "10001:10001");
    support::wait_listening(port).await;
    let v = python_client(port).await;
    assert_eq!(v["email"], target.as_str(), "logs: {}", ecs.logs());
    assert_eq!(emu.token_account(v["token"].as_str().unwrap()), Some(target.clone()));
    assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= 1, "the task credentials were used");
    drop(ecs);

    // EKS Pod Identity: the same endpoint form, its token in a file the agent mounts.
    let (uri, served) = support::federation::serve_container_credentials(&creds, "pod-identity-token").await;
    let token_file = std::env::temp_dir().join(support::unique("eks-pod-identity-token"));
    std::fs::write(&token_file, "pod-identity-token").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mount = format!(
        "{}:/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token:ro",
        token_file.display()
    );
    let port = support::free_port();
    let mut env = base(port);
    env.extend([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token".into(),
        ),
    ]);
    let eks = Container::run(image(), &env, &["-v", &mount]);
    support::wait_listening(port).await;
    let v = python_client(port).await;
    assert_eq!(v["email"], target.as_str(), "logs: {}", eks.logs());
    assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= 1, "the pod identity credentials were used");
    let _ = std::fs::remove_file(&token_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_architectures_image_serves_a_rotated_key_and_turns_healthy() {
    let image = foreign_image();
    let platform = docker(&["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image]);
    assert_eq!(String::from_utf8_lossy(&platform.stdout).trim(), FOREIGN.platform);

    let f = support::Fixture::new("image-foreign").await;
    let port = support::free_port();
    let c = Container::run(image, &rotated_key_env(&f, port), &["--platform", FOREIGN.platform]);
    // Emulated: a slower start than the native image's.
    support::wait_for("the emulated broker listening", Duration::from_secs(30), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
    })
    .await;
    let v = python_client(port).await;
    let token = v["token"].as_str().unwrap_or_else(|| panic!("{v}; logs: {}", c.logs()));
    assert_eq!(f.emu.token_account(token), Some(f.account.clone()));
    let through_gateway = generate_through(port).await.unwrap();
    assert_eq!(through_gateway, 200, "a Vertex call through the emulated gateway; logs: {}", c.logs());
    support::wait_for("the emulated container healthy", Duration::from_secs(60), || async {
        (c.inspect("{{.State.Health.Status}}") == "healthy").then_some(())
    })
    .await;

    // The layer's extension for Lambda container images of that architecture: its ELF machine.
    let opt = c.copy_opt();
    let elf = std::fs::read(opt.join("extensions/vertex-broker-extension")).unwrap();
    let machine = u16::from_le_bytes([elf[18], elf[19]]);
    assert_eq!(machine, FOREIGN.elf_machine, "e_machine of the extension");
    let _ = std::fs::remove_dir_all(&opt);
}
