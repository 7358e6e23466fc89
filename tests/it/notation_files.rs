//! Conformance with real notation-made signatures: every row of the "Expected verdicts" table
//! of `shared/conformance/notation/README.md`.
//!
//! The OCI layouts are read from disk (not copied into the project): the subject is the
//! index entry tagged with a plain tag; the signatures are every manifest blob whose `subject`
//! is that digest (rebuilt from `subject` fields, because one layout's referrers index is
//! stale); the envelope is the signature manifest's single layer. Trust policies are imported
//! with `import_trust_policy` over a temporary Notation trust-store directory holding the
//! row's certificates.
//!
//! Clock: the real current time. Every row holds for any time between 2023-06-27T06:10Z (the
//! expired certificate's notAfter, after the expired signature's expiry) and 2122 (when
//! e2e.crt expires), so no row needs a fixed clock.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use signet::image::Digest;
use signet::policy::notation::{
    NotationAuthority, NotationSpec, RegistryScopes, import_trust_policy,
};
use signet::reason::Reason;
use signet::verify::notation::NotationSignature;
use signet::verify::notation::verify;
use signet::verify::{Context, Outcome, Subject};

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIGNET_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")).to_path_buf(),
    };
    dir.join("conformance/notation/README.md")
        .is_file()
        .then_some(dir.join("conformance/notation"))
}

struct Layout {
    subject: Subject,
    signatures: Vec<NotationSignature>,
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn load_layout(root: &Path, name: &str) -> Layout {
    let dir = root.join("layouts").join(name);
    let index = read_json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|t| !t.starts_with("sha256-"))
        })
        .expect("a tagged subject manifest");
    let digest: Digest = entry["digest"].as_str().unwrap().parse().unwrap();
    let subject = Subject {
        digest: digest.clone(),
        media_type: entry["mediaType"].as_str().unwrap().to_string(),
        size: entry["size"].as_u64().unwrap(),
    };
    let blobs = dir.join("blobs/sha256");
    let mut names: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut signatures = Vec::new();
    for path in names {
        if std::fs::metadata(&path).unwrap().len() > 64 * 1024 {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if manifest["subject"]["digest"].as_str() != Some(digest.as_str()) {
            continue;
        }
        let layer = &manifest["layers"][0];
        let layer_digest = layer["digest"].as_str().unwrap();
        let hex = layer_digest.strip_prefix("sha256:").unwrap();
        let envelope = std::fs::read(blobs.join(hex)).unwrap();
        let manifest_digest = Digest::sha256_of(&bytes);
        signatures.push(NotationSignature {
            manifest_digest,
            media_type: layer["mediaType"].as_str().unwrap().to_string(),
            envelope: envelope.into(),
        });
    }
    Layout {
        subject,
        signatures,
    }
}

/// Imports `policy` with a trust store `ca:e2e` holding `certs`, and returns its authority.
fn authority(root: &Path, policy: &str, certs: &[&str]) -> NotationAuthority {
    let store = tempfile::tempdir().unwrap();
    let ca = store.path().join("x509/ca/e2e");
    std::fs::create_dir_all(&ca).unwrap();
    for c in certs {
        std::fs::copy(root.join("certs").join(c), ca.join(c)).unwrap();
    }
    let json = std::fs::read_to_string(root.join("trustpolicies").join(policy)).unwrap();
    let mut statements = import_trust_policy(&json, store.path())
        .unwrap_or_else(|e| panic!("{policy} does not import: {e}"));
    assert_eq!(statements.len(), 1);
    let st = statements.remove(0);
    assert_eq!(st.registry_scopes, RegistryScopes::Global);
    st.authority
}

/// `skip_trustpolicy.json` puts level skip on the global scope `*`, which the trust-policy spec
/// forbids ("skip cannot be used with a global scope") and signet's import therefore rejects,
/// although notation-go accepts it. The row's verdict is about level skip itself, so it is
/// checked with the same statement written as a signet `notation:` block.
fn skip_authority(root: &Path) -> NotationAuthority {
    let json = std::fs::read_to_string(root.join("trustpolicies/skip_trustpolicy.json")).unwrap();
    let err = import_trust_policy(&json, root).unwrap_err().to_string();
    assert!(
        err.contains("level skip cannot be used with the global scope"),
        "{err}"
    );
    let spec: NotationSpec = serde_yaml::from_str("signatureVerification: {level: skip}").unwrap();
    NotationAuthority::load(
        &spec,
        &signet::policy::material::Resolver::files(),
        &signet::policy::material::Context::file(root),
    )
    .unwrap()
    .0
}

fn check(root: &Path, layout: &str, policy: &str, certs: &[&str]) -> Outcome {
    let l = load_layout(root, layout);
    let a = if policy == "skip_trustpolicy.json" {
        skip_authority(root)
    } else {
        authority(root, policy, certs)
    };
    let ctx = Context {
        now: SystemTime::now(),
    };
    verify(&a, &l.subject, &l.signatures, &ctx)
}

#[track_caller]
fn expect_pass(outcome: &Outcome, logged: Option<&str>) {
    match outcome {
        Outcome::Trusted(e) => match logged {
            None => assert!(e.logged.is_empty(), "unexpected logged failures: {e:?}"),
            Some(needle) => assert!(
                e.logged.iter().any(|l| l.contains(needle)),
                "expected a logged {needle:?}: {e:?}"
            ),
        },
        Outcome::Failed(f) => panic!("expected pass, got {f:?}"),
    }
}

#[track_caller]
fn expect_fail(outcome: &Outcome, reason: Reason, check: &str) {
    match outcome {
        Outcome::Failed(f) => {
            assert_eq!(f.reason, reason, "{f:?}");
            assert!(
                f.detail.contains(check),
                "expected {check:?} in {:?}",
                f.detail
            );
        }
        Outcome::Trusted(e) => panic!("expected {reason:?}, got trusted: {e:?}"),
    }
}

const E2E: &[&str] = &["e2e.crt"];
const NEW: &[&str] = &["new_e2e.crt"];
const EXPIRED: &[&str] = &["expired_e2e.crt"];
const ALPINE: &[&str] = &["alpine.crt"];

#[test]
fn notation_expected_verdicts() {
    let Some(root) = shared_dir() else {
        eprintln!(
            "SKIPPED notation conformance: shared/conformance/notation not found (set \
             SIGNET_SHARED_DIR to the shared directory, or place shared/ beside the checkout)"
        );
        return;
    };
    let r = root.as_path();
    let valid = "e2e-valid-signature";

    // valid signature
    expect_pass(&check(r, valid, "trustpolicy.json", E2E), None);
    let untrusted = "does not contain any trusted certificate";
    for p in [
        "trustpolicy.json",
        "permissive_trustpolicy.json",
        "override_audit_trustpolicy.json",
    ] {
        expect_fail(&check(r, valid, p, NEW), Reason::UntrustedSigner, untrusted);
    }
    for p in ["audit_trustpolicy.json", "override_strict_trustpolicy.json"] {
        expect_pass(&check(r, valid, p, NEW), Some(untrusted));
    }

    // multiple signatures: the e2e one passes, the testcert11 one would fail authenticity.
    let multi = load_layout(r, "e2e-valid-multiple-signatures");
    assert_eq!(multi.signatures.len(), 2, "both signatures found");
    expect_pass(
        &check(r, "e2e-valid-multiple-signatures", "trustpolicy.json", E2E),
        None,
    );

    // expired signature
    let expired = "e2e-expired-signature";
    expect_fail(
        &check(r, expired, "trustpolicy.json", E2E),
        Reason::Expired,
        "expiry: the digital signature has expired",
    );
    for p in [
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
        "override_strict_trustpolicy.json",
    ] {
        expect_pass(
            &check(r, expired, p, E2E),
            Some("digital signature has expired"),
        );
    }
    for p in [
        "override_permissive_trustpolicy.json",
        "override_audit_trustpolicy.json",
    ] {
        expect_fail(&check(r, expired, p, E2E), Reason::Expired, "expiry");
    }

    // invalid signature: integrity at every level but skip
    let invalid = "e2e-invalid-signature";
    for p in [
        "trustpolicy.json",
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
    ] {
        expect_fail(&check(r, invalid, p, E2E), Reason::Malformed, "integrity");
    }
    expect_pass(&check(r, invalid, "skip_trustpolicy.json", &[]), None);

    // expired certificate, no timestamp
    let expired_cert = "e2e-with-expired-cert";
    expect_fail(
        &check(r, expired_cert, "trustpolicy.json", EXPIRED),
        Reason::Expired,
        "authenticTimestamp",
    );
    for p in [
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
        "override_strict_trustpolicy.json",
    ] {
        expect_pass(
            &check(r, expired_cert, p, EXPIRED),
            Some("expired at 2023-06-27T06:10:00Z"),
        );
    }
    expect_fail(
        &check(r, expired_cert, "trustpolicy.json", E2E),
        Reason::UntrustedSigner,
        "authenticity",
    );

    // unsigned
    for p in [
        "trustpolicy.json",
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
        "override_strict_trustpolicy.json",
        "override_permissive_trustpolicy.json",
        "override_audit_trustpolicy.json",
    ] {
        for certs in [E2E, NEW] {
            expect_fail(
                &check(r, "e2e", p, certs),
                Reason::NoSignature,
                "no Notation",
            );
        }
    }
    expect_pass(&check(r, "e2e", "skip_trustpolicy.json", &[]), None);

    // timestamped signatures by testcert7, which no store trusts
    for l in [
        "e2e-with-timestamped-signature",
        "e2e-with-invalid-timestamped-signature",
    ] {
        expect_fail(
            &check(r, l, "trustpolicy.json", E2E),
            Reason::UntrustedSigner,
            "authenticity",
        );
    }

    // COSE
    let cose = "notation-go-alpine-cose";
    expect_pass(&check(r, cose, "trustpolicy.json", ALPINE), None);
    expect_fail(
        &check(r, cose, "trustpolicy.json", E2E),
        Reason::UntrustedSigner,
        "authenticity",
    );

    // The combined configuration: strict over {e2e.crt, alpine.crt}.
    let both = &["e2e.crt", "alpine.crt"];
    for l in [valid, "e2e-valid-multiple-signatures", cose] {
        expect_pass(&check(r, l, "trustpolicy.json", both), None);
    }
    for l in [
        "e2e",
        expired,
        invalid,
        expired_cert,
        "e2e-with-timestamped-signature",
        "e2e-with-invalid-timestamped-signature",
    ] {
        assert!(
            matches!(check(r, l, "trustpolicy.json", both), Outcome::Failed(_)),
            "{l} must be denied"
        );
    }
}

/// The standalone notation-go envelopes (JWS and COSE over the same alpine manifest).
#[test]
fn notation_go_envelopes() {
    let Some(root) = shared_dir() else {
        eprintln!("SKIPPED notation envelopes: shared/conformance/notation not found");
        return;
    };
    let a = authority(&root, "trustpolicy.json", ALPINE);
    let cose = load_layout(&root, "notation-go-alpine-cose");
    for (file, media_type) in [
        ("jws_signature.sig", "application/jose+json"),
        ("cose_signature.sig", "application/cose"),
    ] {
        let envelope = std::fs::read(root.join("envelopes").join(file)).unwrap();
        let sig = NotationSignature {
            manifest_digest: Digest::sha256_of(&envelope),
            media_type: media_type.into(),
            envelope: envelope.into(),
        };
        let ctx = Context {
            now: SystemTime::now(),
        };
        expect_pass(&verify(&a, &cose.subject, &[sig], &ctx), None);
    }
}
