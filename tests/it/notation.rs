//! Notation conformance through the whole path: every layout of
//! `shared/conformance/notation/` (real notation-made signatures) is pushed to a real
//! docker-registry (which has no referrers API, so discovery goes through the referrers tag
//! schema), the row's unchanged Notation `trustpolicy.json` and trust store are dropped into a
//! policy directory, and a real AdmissionReview for the signed artifact is sent to the server.
//! The verdict must be the one in the table of that README, for every row. Skips, saying why,
//! where `shared/` is absent.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::support::fixtures::{load_review, replace_image};
use crate::support::layout::{conformance_dir, notation_layout, push_oci_layout};
use crate::support::registry::TestRegistry;
use crate::support::signet::Signet;

/// (layout, repository) — one repository per layout, since most sign the same artifact.
const LAYOUTS: &[(&str, &str)] = &[
    ("e2e", "notation/unsigned"),
    ("e2e-valid-signature", "notation/valid"),
    ("e2e-valid-multiple-signatures", "notation/multi"),
    ("e2e-expired-signature", "notation/expired"),
    ("e2e-invalid-signature", "notation/invalid"),
    ("e2e-with-expired-cert", "notation/expired-cert"),
    ("e2e-with-timestamped-signature", "notation/timestamped"),
    (
        "e2e-with-invalid-timestamped-signature",
        "notation/invalid-timestamped",
    ),
    ("notation-go-alpine-cose", "notation/cose"),
];

/// (trust policy file, label, trust-store certificates, (layout, expected verdict)...)
type Row = (
    &'static str,
    &'static str,
    &'static [&'static str],
    Vec<(&'static str, Expect)>,
);

enum Expect {
    Pass,
    /// Passes, and the check that failed is only logged (the verdict is still trusted).
    Fail(&'static str),
}

/// A policy directory in Notation's own layout: `trustpolicy.json` and
/// `truststore/x509/ca/e2e/*.crt`, copied unchanged from the shared data.
fn notation_dir(
    root: &Path,
    policy: &str,
    certs: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    let store = policies.join("truststore/x509/ca/e2e");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(
        root.join("notation/trustpolicies").join(policy),
        policies.join("trustpolicy.json"),
    )
    .unwrap();
    for c in certs {
        std::fs::copy(root.join("notation/certs").join(c), store.join(c)).unwrap();
    }
    (dir, policies)
}

/// The same statement as `skip_trustpolicy.json`, written for signet: Notation accepts `skip`
/// on the global scope, the specification (and so signet's importer) does not.
fn skip_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("skip.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: skip}\nspec:\n  images: [\"**\"]\n  authorities:\n    - name: skip\n      notation:\n        signatureVerification: {level: skip}\n",
    )
    .unwrap();
    (dir, policies)
}

async fn verdict(signet: &Signet, image: &str) -> Value {
    let mut review = load_review("pod-create.json");
    replace_image(&mut review, "nginx:1.27", image);
    signet.review(&review).await
}

fn check(v: &Value, expect: &Expect, what: &str) {
    let r = &v["response"];
    match expect {
        Expect::Pass => assert_eq!(r["allowed"], true, "{what}: {v:#}"),
        Expect::Fail(words) => {
            assert_eq!(r["allowed"], false, "{what}: {v:#}");
            assert_eq!(r["status"]["code"], 403, "{what}");
            let msg = r["status"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(words), "{what}: expected {words:?} in {msg}");
        }
    }
}

#[tokio::test]
async fn every_row_of_the_notation_expected_verdicts() {
    let Some(root) = conformance_dir() else {
        eprintln!(
            "SKIPPED Notation conformance through the registry: shared/conformance not found"
        );
        return;
    };
    for (layout, _) in LAYOUTS {
        if notation_layout(layout).is_none() {
            return;
        }
    }
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let mut images: HashMap<&str, String> = HashMap::new();
    for (layout, repo) in LAYOUTS {
        let dir = notation_layout(layout).expect("checked above");
        let pushed = push_oci_layout(&pusher, repo, &dir).await;
        let subject = &pushed.subjects[0];
        images.insert(layout, subject.reference_by_digest(&registry.addr()));
    }
    let image = |l: &str| images[l].clone();

    let untrusted = "does not contain any trusted certificate";
    let rows: Vec<Row> = vec![
        (
            "trustpolicy.json",
            "strict, e2e.crt",
            &["e2e.crt"],
            vec![
                ("e2e-valid-signature", Expect::Pass),
                ("e2e-valid-multiple-signatures", Expect::Pass),
                ("e2e-expired-signature", Expect::Fail("expiry")),
                ("e2e-invalid-signature", Expect::Fail("integrity")),
                ("e2e-with-expired-cert", Expect::Fail("authenticity")),
                ("e2e", Expect::Fail("no signature found")),
                (
                    "e2e-with-timestamped-signature",
                    Expect::Fail("authenticity"),
                ),
                (
                    "e2e-with-invalid-timestamped-signature",
                    Expect::Fail("authenticity"),
                ),
                ("notation-go-alpine-cose", Expect::Fail("authenticity")),
            ],
        ),
        (
            "trustpolicy.json",
            "strict, new_e2e.crt",
            &["new_e2e.crt"],
            vec![
                ("e2e-valid-signature", Expect::Fail(untrusted)),
                ("e2e", Expect::Fail("no signature found")),
            ],
        ),
        (
            "permissive_trustpolicy.json",
            "permissive, new_e2e.crt",
            &["new_e2e.crt"],
            vec![
                ("e2e-valid-signature", Expect::Fail(untrusted)),
                ("e2e", Expect::Fail("no signature found")),
            ],
        ),
        (
            "audit_trustpolicy.json",
            "audit, new_e2e.crt",
            &["new_e2e.crt"],
            vec![
                ("e2e-valid-signature", Expect::Pass),
                ("e2e", Expect::Fail("no signature found")),
            ],
        ),
        (
            "override_strict_trustpolicy.json",
            "override strict, new_e2e.crt",
            &["new_e2e.crt"],
            vec![("e2e-valid-signature", Expect::Pass)],
        ),
        (
            "override_audit_trustpolicy.json",
            "override audit, new_e2e.crt",
            &["new_e2e.crt"],
            vec![("e2e-valid-signature", Expect::Fail(untrusted))],
        ),
        (
            "permissive_trustpolicy.json",
            "permissive, e2e.crt",
            &["e2e.crt"],
            vec![
                ("e2e-expired-signature", Expect::Pass),
                ("e2e-invalid-signature", Expect::Fail("integrity")),
            ],
        ),
        (
            "audit_trustpolicy.json",
            "audit, e2e.crt",
            &["e2e.crt"],
            vec![
                ("e2e-expired-signature", Expect::Pass),
                ("e2e-invalid-signature", Expect::Fail("integrity")),
                ("e2e", Expect::Fail("no signature found")),
            ],
        ),
        (
            "override_strict_trustpolicy.json",
            "override strict, e2e.crt",
            &["e2e.crt"],
            vec![("e2e-expired-signature", Expect::Pass)],
        ),
        (
            "override_permissive_trustpolicy.json",
            "override permissive, e2e.crt",
            &["e2e.crt"],
            vec![
                ("e2e-expired-signature", Expect::Fail("expiry")),
                ("e2e", Expect::Fail("no signature found")),
            ],
        ),
        (
            "override_audit_trustpolicy.json",
            "override audit, e2e.crt",
            &["e2e.crt"],
            vec![("e2e-expired-signature", Expect::Fail("expiry"))],
        ),
        (
            "trustpolicy.json",
            "strict, expired_e2e.crt",
            &["expired_e2e.crt"],
            vec![("e2e-with-expired-cert", Expect::Fail("authenticTimestamp"))],
        ),
        (
            "permissive_trustpolicy.json",
            "permissive, expired_e2e.crt",
            &["expired_e2e.crt"],
            vec![("e2e-with-expired-cert", Expect::Pass)],
        ),
        (
            "audit_trustpolicy.json",
            "audit, expired_e2e.crt",
            &["expired_e2e.crt"],
            vec![("e2e-with-expired-cert", Expect::Pass)],
        ),
        (
            "override_strict_trustpolicy.json",
            "override strict, expired_e2e.crt",
            &["expired_e2e.crt"],
            vec![("e2e-with-expired-cert", Expect::Pass)],
        ),
        (
            "trustpolicy.json",
            "strict, alpine.crt",
            &["alpine.crt"],
            vec![("notation-go-alpine-cose", Expect::Pass)],
        ),
        (
            "trustpolicy.json",
            "strict, {e2e, alpine}",
            &["e2e.crt", "alpine.crt"],
            vec![
                ("e2e-valid-signature", Expect::Pass),
                ("e2e-valid-multiple-signatures", Expect::Pass),
                ("notation-go-alpine-cose", Expect::Pass),
                ("e2e", Expect::Fail("no signature found")),
                ("e2e-expired-signature", Expect::Fail("expiry")),
                ("e2e-invalid-signature", Expect::Fail("integrity")),
                ("e2e-with-expired-cert", Expect::Fail("authenticity")),
                (
                    "e2e-with-timestamped-signature",
                    Expect::Fail("authenticity"),
                ),
                (
                    "e2e-with-invalid-timestamped-signature",
                    Expect::Fail("authenticity"),
                ),
            ],
        ),
    ];
    let mut checked = 0;
    for (policy, label, certs, cases) in rows {
        let (dir, policies) = notation_dir(&root, policy, certs);
        let signet = Signet::start_dir(dir, policies, &[&registry], Default::default()).await;
        for (layout, expect) in &cases {
            let v = verdict(&signet, &image(layout)).await;
            check(&v, expect, &format!("{layout} under {label}"));
            checked += 1;
        }
        signet.stop().await;
    }
    // skip: nothing is verified, everything passes.
    let (dir, policies) = skip_dir();
    let signet = Signet::start_dir(dir, policies, &[&registry], Default::default()).await;
    for layout in ["e2e-invalid-signature", "e2e"] {
        check(
            &verdict(&signet, &image(layout)).await,
            &Expect::Pass,
            &format!("{layout} under skip"),
        );
        checked += 1;
    }
    signet.stop().await;
    assert_eq!(checked, 42);
}

#[tokio::test]
async fn a_notation_verification_costs_few_registry_requests_and_is_cached() {
    let Some(root) = conformance_dir() else {
        eprintln!("SKIPPED: shared/conformance not found");
        return;
    };
    let Some(layout) = notation_layout("e2e-valid-signature") else {
        return;
    };
    let registry = TestRegistry::start();
    let pushed = push_oci_layout(&registry.pusher(), "notation/valid", &layout).await;
    let image = pushed.subjects[0].reference_by_digest(&registry.addr());
    let (dir, policies) = notation_dir(&root, "trustpolicy.json", &["e2e.crt"]);
    let signet = Signet::start_dir(dir, policies, &[&registry], Default::default()).await;
    let mut review = load_review("pod-create.json");
    replace_image(&mut review, "nginx:1.27", &image);
    check(
        &signet.measured_review("cold Notation JWS", &review).await,
        &Expect::Pass,
        "cold",
    );
    // HEAD, referrers API (404: docker-registry has none), referrers tag index, signature
    // manifest, envelope blob. The 404 is remembered, so the next image costs four.
    assert_eq!(signet.registry_requests(), 5.0);
    check(&verdict(&signet, &image).await, &Expect::Pass, "warm");
    assert_eq!(
        signet.registry_requests(),
        5.0,
        "a cache hit asks the registry nothing"
    );
    assert_eq!(
        signet.metric("signet_verifications_total{reason=\"trusted\",result=\"trusted\",verifier=\"notation\"}"),
        1.0
    );
    signet.stop().await;

    // COSE: the notation-go alpine image; the host's missing referrers API is remembered now.
    let Some(layout) = notation_layout("notation-go-alpine-cose") else {
        return;
    };
    let pushed = push_oci_layout(&registry.pusher(), "notation/cose", &layout).await;
    let image = pushed.subjects[0].reference_by_digest(&registry.addr());
    let (dir, policies) = notation_dir(&root, "trustpolicy.json", &["alpine.crt"]);
    let signet = Signet::start_dir(dir, policies, &[&registry], Default::default()).await;
    let mut review = load_review("pod-create.json");
    replace_image(&mut review, "nginx:1.27", &image);
    check(
        &signet.measured_review("cold Notation COSE", &review).await,
        &Expect::Pass,
        "COSE",
    );
    signet.stop().await;
}
