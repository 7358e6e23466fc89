//! The command line: `signet verify`, `signet review` and `signet policy check`, run as the
//! real binary.

use std::process::{Command, Output};

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, settings};

fn signet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run signet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A policy directory with one enforcing policy trusting `key` for the whole registry.
fn policy_dir(registry: &TestRegistry, key: &CosignKey) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/**", registry.addr());
    let policy = cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem());
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    dir
}

#[tokio::test]
async fn verify_exit_codes_and_output() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "1.0", 21).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher.push_image("team/app", "2.0", 22).await;
    let dir = policy_dir(&registry, &key);
    let policies = dir.path().to_str().unwrap();
    let addr = registry.addr();
    let good = signed.reference_by_tag(&addr);
    let bad = unsigned.reference_by_tag(&addr);

    let o = signet(&[
        "verify",
        &good,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("TRUSTED"), "{}", text(&o));
    assert!(text(&o).contains(&signed.digest), "{}", text(&o));

    let o = signet(&[
        "verify",
        &good,
        &bad,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("UNTRUSTED") && text(&o).contains("no signature found"),
        "{}",
        text(&o)
    );

    let o = signet(&[
        "verify",
        &bad,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    assert_eq!(v["trusted"], false);
    assert_eq!(v["images"][0]["policies"][0]["verdict"], "untrusted");
    assert_eq!(v["images"][0]["policies"][0]["reason"], "no_signature");

    // Usage and configuration errors exit 2.
    let o = signet(&["verify", &good, "--policies", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = signet(&["verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[tokio::test]
async fn review_prints_the_admission_response() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let unsigned = registry.pusher().push_image("team/app", "1.0", 23).await;
    let dir = policy_dir(&registry, &key);
    let mut review = load_review("pod-create.json");
    replace_image(
        &mut review,
        "nginx:1.27",
        &unsigned.reference_by_tag(&registry.addr()),
    );
    let file = dir.path().join("review.json");
    std::fs::write(&file, serde_json::to_vec(&review).unwrap()).unwrap();
    let o = signet(&[
        "review",
        file.to_str().unwrap(),
        "--policies",
        dir.path().to_str().unwrap(),
        "--insecure-registry",
        &registry.addr(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 403);
    assert_eq!(v["response"]["uid"], review["request"]["uid"]);

    std::fs::write(&file, b"{oops").unwrap();
    let o = signet(&[
        "review",
        file.to_str().unwrap(),
        "--policies",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("not a valid AdmissionReview"),
        "{}",
        text(&o)
    );
}

#[test]
fn policy_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), settings("deny")).unwrap();
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(dir.path().join("b.yaml"), "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: x\nspec:\n  images: [\"**\"]\n  mood: enforce\n  authorities: []\n").unwrap();
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("b.yaml:7:") && out.contains("unknown field `mood`"),
        "{out}"
    );
}

#[test]
fn serve_refuses_a_bad_certificate_pair_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "not a cert").unwrap();
    let o = signet(&[
        "serve",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--policies",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no CERTIFICATE"), "{}", text(&o));
}

#[test]
fn serve_with_kubernetes_and_no_cluster_configuration_exits_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "serve",
            "--kubernetes",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--self-signed-ca-out",
            dir.path().join("ca.pem").to_str().unwrap(),
            "--policies",
            dir.path().to_str().unwrap(),
        ])
        // Neither a kubeconfig (KUBECONFIG names a missing file, no ~/.kube/config) nor a pod.
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run signet");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--kubernetes: no usable cluster configuration"),
        "{}",
        text(&o)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for(url: &str, status: u16) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn serve_with_invalid_policies_is_not_ready_denies_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: Nope\n",
    )
    .unwrap();
    let (port, admin) = (free_port(), free_port());
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--policies",
            dir.path().to_str().unwrap(),
            "--self-signed-ca-out",
            ca.to_str().unwrap(),
        ])
        .args(["--shutdown-delay-secs", "1", "--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    assert!(
        wait_for(&format!("http://127.0.0.1:{admin}/healthz"), 200).await,
        "not alive"
    );
    assert!(
        wait_for(&format!("http://127.0.0.1:{admin}/readyz"), 503).await,
        "ready with invalid policies"
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let body = serde_json::to_vec(&load_review("pod-create.json")).unwrap();
    let resp: serde_json::Value = client
        .post(format!("https://localhost:{port}/validate?timeout=5s"))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["response"]["allowed"], false);
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no valid policy set")
    );
    // SIGTERM: exits cleanly after the shutdown delay. The client is dropped first so that its
    // idle connection closes (a client that keeps one open holds the drain up to its timeout),
    // and the wait runs off the test's runtime so that the runtime can close it.
    drop(client);
    let pid = child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let started = std::time::Instant::now();
    let (status, mut child) = tokio::task::spawn_blocking(move || (child.wait(), child))
        .await
        .unwrap();
    let status = status.unwrap();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= std::time::Duration::from_millis(900),
        "drained before the shutdown delay"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "drain took {took:?}; t0 {:?}",
        t0.elapsed()
    );
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("kind \\\"Nope\\\" is not one of")
            || log.contains("kind \"Nope\" is not one of"),
        "{log}"
    );
    assert!(log.contains("shutdown signal received"), "{log}");
}
