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

#[tokio::test]
async fn verify_exit_codes_and_output() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "1.0", 21).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher.push_image("team/app", "2.0", 22).await;
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/**", registry.addr());
    std::fs::write(
        dir.path().join("p.yaml"),
        cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem()),
    )
    .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/**", registry.addr());
    std::fs::write(
        dir.path().join("p.yaml"),
        cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem()),
    )
    .unwrap();
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
