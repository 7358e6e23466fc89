//! Registry failures that `signet verify` reports in words saying what to do: a plain-HTTP
//! registry spoken to over TLS, a closed port and a name that does not resolve read apart.

use std::process::{Command, Output};

use crate::support::cosign::CosignKey;
use crate::support::registry::TestRegistry;
use crate::support::signet::cosign_policy;

/// `signet verify IMAGE` under a policy covering every image; returns (exit code, output).
fn verify(image: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = CosignKey::p256();
    std::fs::write(
        dir.path().join("p.yaml"),
        cosign_policy("all", "**", "enforce", "deny", &key.public_key_pem()),
    )
    .unwrap();
    let o: Output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["verify", image, "--policies", dir.path().to_str().unwrap()])
        .args(["--timeout-secs", "10"])
        .env("RUST_LOG", "warn")
        .env("HOME", "/nonexistent")
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[tokio::test]
async fn a_plain_http_registry_reached_over_tls_names_the_flag() {
    let registry = TestRegistry::start();
    let image = format!("{}/team/app:1.0", registry.addr());
    let (code, out) = verify(&image);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!("add --insecure-registry {}", registry.addr())),
        "{out}"
    );
}

#[test]
fn a_closed_port_reads_as_connection_refused() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (code, out) = verify(&format!("{addr}/team/app:1.0"));
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(&format!("connection refused by {addr}")),
        "{out}"
    );
    assert!(!out.contains("insecure-registry"), "{out}");
}

#[test]
fn an_unresolvable_name_reads_as_a_name_error() {
    let (code, out) = verify("registry.invalid/team/app:1.0");
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("cannot resolve the name registry.invalid"),
        "{out}"
    );
    assert!(!out.contains("connection refused"), "{out}");
}

/// A registry whose certificate signet does not trust is told apart from one that speaks no
/// TLS, and the message names the flags that add a CA.
#[tokio::test]
async fn an_untrusted_certificate_names_the_ca_flags() {
    let registry = TestRegistry::builder().test_tls().start();
    let (code, out) = verify(&format!("{}/team/app:1.0", registry.addr()));
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("is not trusted") && out.contains("--registry-ca"),
        "{out}"
    );
}
