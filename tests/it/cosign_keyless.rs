//! Cosign keyless signatures and Sigstore bundles end to end: real AdmissionReview bodies
//! against the real server over HTTPS, a real docker-registry holding `.sig` tags and cosign v3
//! bundle referrers, and a test Sigstore (`support::sigstore`) that shares no code with
//! signet's verifier. Each denial is checked for the reason words the user reads.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::cosign::{self};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::oci::PushedImage;
use crate::support::registry::TestRegistry;
use crate::support::signet::Signet;
use crate::support::sigstore::{
    self, BundleSigner, EMAIL, Fulcio, ISSUER, LeafSpec, LogEntry, SIGN_PREDICATE, Sigstore,
    default_identity, keyless_policy,
};

pub(crate) const POD: &str = "pod-create.json";
pub(crate) const POD_IMAGE: &str = "nginx:1.27";
pub(crate) const REPO: &str = "team/app";

pub(crate) fn pod_with(image: &str) -> Value {
    let mut review = load_review(POD);
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    review
}

pub(crate) use crate::support::review::{
    assert_allowed_clean as assert_allowed, assert_denied_with, message,
};

pub(crate) struct World {
    pub(crate) registry: TestRegistry,
    pub(crate) sigstore: Sigstore,
    pub(crate) trust_root: PathBuf,
}

impl World {
    pub(crate) fn new() -> World {
        let sigstore = Sigstore::new();
        let trust_root = sigstore.write_trusted_root();
        World {
            registry: TestRegistry::start(),
            sigstore,
            trust_root,
        }
    }

    pub(crate) fn glob(&self) -> String {
        format!("{}/**", self.registry.addr())
    }

    /// signet with one keyless policy "keyless" trusting `identities`.
    pub(crate) async fn signet(&self, identities: &[&str]) -> Signet {
        let policy = keyless_policy("keyless", &self.glob(), &self.trust_root, identities);
        Signet::start(&policy, &[&self.registry]).await
    }

    pub(crate) async fn push(&self, tag: &str, seed: u64) -> PushedImage {
        self.registry.pusher().push_image(REPO, tag, seed).await
    }

    pub(crate) fn reference(&self, image: &PushedImage) -> String {
        image.reference_by_tag(&self.registry.addr())
    }

    /// Signs `image` keyless with a leaf for `spec`, logged at `entry`, into its `.sig` tag.
    pub(crate) async fn sign_keyless(&self, image: &PushedImage, spec: &LeafSpec, entry: LogEntry) {
        let leaf = self.sigstore.leaf(spec);
        self.push_layer(
            image,
            self.sigstore
                .keyless_layer(&leaf, &self.registry.repo_ref(REPO), &image.digest, entry),
        )
        .await;
    }

    pub(crate) async fn push_layer(&self, image: &PushedImage, layer: cosign::SignatureLayer) {
        cosign::push_signature_layers(
            &self.registry.pusher(),
            REPO,
            &image.digest,
            vec![layer],
            true,
        )
        .await;
    }

    /// A keyless bundle by a default leaf over `digest` with `predicate`, as a referrer of
    /// `image`.
    pub(crate) async fn push_keyless_bundle(
        &self,
        image: &PushedImage,
        digest: &str,
        predicate: &str,
    ) {
        let leaf = self.sigstore.leaf(&LeafSpec::default());
        let bundle = self.sigstore.bundle(
            &BundleSigner::Certificate(&leaf),
            &self.registry.repo_ref(REPO),
            digest,
            predicate,
            LogEntry::default(),
        );
        sigstore::push_bundle(&self.registry.pusher(), REPO, image, bundle, predicate).await;
    }
}

#[tokio::test]
async fn keyless_sig_signature_is_allowed_and_names_the_signer_in_the_metrics() {
    let w = World::new();
    let image = w.push("1.0", 1).await;
    w.sign_keyless(&image, &LeafSpec::default(), LogEntry::default())
        .await;
    // A URI identity (a CI workflow) with the pre-2023 issuer extension (.1.1, raw bytes).
    let ci = w.push("ci", 2).await;
    let workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0";
    let ci_spec = LeafSpec {
        issuer: Some("https://token.actions.githubusercontent.com".into()),
        legacy_issuer: true,
        ..LeafSpec::subject(workflow)
    };
    w.sign_keyless(&ci, &ci_spec, LogEntry::default()).await;

    let signet = w
        .signet(&[
            &default_identity(),
            r"{issuer: 'https://token.actions.githubusercontent.com', subjectRegExp: 'https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*'}",
        ])
        .await;
    assert_allowed(
        &signet
            .measured_review("cold keyless .sig", &pod_with(&w.reference(&image)))
            .await,
    );
    assert_allowed(&signet.review(&pod_with(&w.reference(&ci))).await);
    assert_eq!(
        signet.metric(
            "signet_verifications_total{reason=\"trusted\",result=\"trusted\",verifier=\"cosign\"}"
        ),
        2.0
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_wrong_subject_is_denied_naming_the_expected_and_the_found_identity() {
    let w = World::new();
    let image = w.push("1.0", 3).await;
    w.sign_keyless(
        &image,
        &LeafSpec::subject("mallory@example.com"),
        LogEntry::default(),
    )
    .await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            &format!("image {}", w.reference(&image)),
            &image.digest[..19],
            "policy \"keyless\"",
            "the signer's identity is not trusted",
            // What was found …
            "the certificate is for subject [\"mallory@example.com\"] issuer \"https://accounts.example.com\"",
            // … and what the policy wanted.
            "the policy wants issuer \"https://accounts.example.com\" subject \"signer@example.com\"",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_wrong_issuer_is_denied() {
    let w = World::new();
    let image = w.push("1.0", 4).await;
    let spec = LeafSpec {
        issuer: Some("https://evil.example.net".into()),
        ..LeafSpec::default()
    };
    w.sign_keyless(&image, &spec, LogEntry::default()).await;
    // And a certificate with no issuer extension at all.
    let bare = w.push("bare", 5).await;
    let spec = LeafSpec {
        issuer: None,
        ..LeafSpec::default()
    };
    w.sign_keyless(&bare, &spec, LogEntry::default()).await;

    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the signer's identity is not trusted",
            &format!("subject [\"{EMAIL}\"] issuer \"https://evil.example.net\""),
            &format!("the policy wants issuer \"{ISSUER}\""),
        ],
    );
    let v = signet.review(&pod_with(&w.reference(&bare))).await;
    assert_denied_with(
        &v,
        &[
            "the signer's identity is not trusted",
            "the certificate has no Fulcio issuer extension",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_subject_regexp_is_anchored_at_both_ends() {
    let w = World::new();
    let good = w.push("good", 6).await;
    w.sign_keyless(&good, &LeafSpec::default(), LogEntry::default())
        .await;
    let evil = w.push("evil", 7).await;
    w.sign_keyless(
        &evil,
        &LeafSpec::subject("evil@example.com.attacker"),
        LogEntry::default(),
    )
    .await;
    let signet = w
        .signet(&[&format!(
            r"{{issuer: '{ISSUER}', subjectRegExp: '.*@example\.com'}}"
        )])
        .await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&good))).await);
    let v = signet.review(&pod_with(&w.reference(&evil))).await;
    assert_denied_with(
        &v,
        &[
            "the signer's identity is not trusted",
            "[\"evil@example.com.attacker\"]",
            r"subject /.*@example\.com/",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_certificate_expired_at_the_integrated_time_is_denied() {
    let w = World::new();
    let image = w.push("1.0", 8).await;
    // The leaf lived ten minutes, an hour ago; Rekor saw the signature a minute ago.
    let spec = LeafSpec {
        not_before: sigstore::now() - 3600,
        ..LeafSpec::default()
    };
    w.sign_keyless(&image, &spec, LogEntry::default()).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the signature or its certificate has expired",
            "at the signing time",
            "CertExpired",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_set_over_another_integrated_time_is_denied() {
    let w = World::new();
    let image = w.push("1.0", 9).await;
    let entry = LogEntry::default();
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let mut layer =
        w.sigstore
            .keyless_layer(&leaf, &w.registry.repo_ref(REPO), &image.digest, entry);
    // Claim another integrated time (one the certificate was valid at, too): the SET was
    // signed over the original one and no longer verifies.
    let annotation = layer
        .annotations
        .get_mut(sigstore::BUNDLE_ANNOTATION)
        .expect("bundle annotation");
    let mut bundle: Value = serde_json::from_str(annotation).expect("bundle JSON");
    bundle["Payload"]["integratedTime"] = (entry.integrated_time - 30).into();
    *annotation = bundle.to_string();
    w.push_layer(&image, layer).await;

    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the transparency-log entry is missing or does not match",
            "the signed entry timestamp does not verify with the key of log",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_certificate_from_a_ca_outside_the_trust_root_is_denied() {
    let w = World::new();
    let image = w.push("1.0", 10).await;
    // Same identity, same (trusted) Rekor and CT log: only the CA is a stranger. The layer's
    // chain annotation carries the rogue intermediate and root: it must add no trust.
    let rogue = Fulcio::new("rogue-fulcio");
    let leaf = rogue.issue(&LeafSpec::default(), &w.sigstore.ct);
    let layer = w.sigstore.keyless_layer(
        &leaf,
        &w.registry.repo_ref(REPO),
        &image.digest,
        LogEntry::default(),
    );
    w.push_layer(&image, layer).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the signing certificate is not valid",
            "does not chain to \"signet-test-fulcio\"",
            "UnknownIssuer",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_log_entry_recording_another_signature_is_denied() {
    let w = World::new();
    let image = w.push("1.0", 22).await;
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let repo = w.registry.repo_ref(REPO);
    let mut layer = w
        .sigstore
        .keyless_layer(&leaf, &repo, &image.digest, LogEntry::default());
    // A genuine, SET-signed Rekor entry of the same signer, but for another signature (over
    // another image's payload): the SET verifies, the entry does not record this signature.
    let other_payload =
        cosign::simple_signing_payload(&repo, &format!("sha256:{}", "e".repeat(64)));
    let other_signature = leaf.sign(&other_payload);
    let body = Sigstore::hashedrekord_body(&other_signature, &other_payload, &leaf.pem());
    layer.annotations.insert(
        sigstore::BUNDLE_ANNOTATION.to_owned(),
        w.sigstore.legacy_bundle(&body, LogEntry::default()),
    );
    w.push_layer(&image, layer).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the transparency-log entry is missing or does not match",
            "the log entry records another signature",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn keyless_certificate_without_an_sct_is_denied_when_the_ctlog_is_required() {
    let w = World::new();
    let image = w.push("1.0", 11).await;
    let spec = LeafSpec {
        sct: false,
        ..LeafSpec::default()
    };
    w.sign_keyless(&image, &spec, LogEntry::default()).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the signing certificate is not valid",
            "the certificate carries no embedded SCT, and the policy requires one",
        ],
    );
    signet.stop().await;
}

/// The test Sigstore checked by a second implementation, `openssl`, so that it cannot share a
/// bug with signet's verifier: the leaf chains to the root at the signing time (not an hour
/// later), carries the code-signing EKU, the SAN, the Fulcio issuer extension and an SCT list
/// openssl can parse; the payload signature verifies with the leaf's key; the SET verifies
/// with the Rekor key over the canonical entry JSON; the bundle's DSSE signature covers the PAE.
#[test]
fn cosign_keyless_test_sigstore_checks_out_with_openssl() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use std::process::Command;
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: no openssl CLI (scripts/install-test-deps.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |args: &[&str]| -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let s = Sigstore::new();
    let leaf = s.leaf(&LeafSpec::default());
    let pem = |d: &[u8]| sigstore::pem("CERTIFICATE", d);
    std::fs::write(p("root.pem"), pem(&s.fulcio.root_der)).unwrap();
    std::fs::write(p("inter.pem"), pem(&s.fulcio.inter_der)).unwrap();
    std::fs::write(p("leaf.pem"), leaf.pem()).unwrap();
    let signed_at = (sigstore::now() - 60).to_string();
    let later = (sigstore::now() + 3600).to_string();
    let verify = |at: &str| {
        run(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "inter.pem",
            "-attime",
            at,
            "leaf.pem",
        ])
    };
    let (ok, out) = verify(&signed_at);
    assert!(ok, "{out}");
    let (ok, out) = verify(&later);
    assert!(!ok && out.contains("expired"), "{out}");
    let (ok, text) = run(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    for want in [
        "Code Signing",
        &format!("email:{EMAIL}"),
        "1.3.6.1.4.1.57264.1.8",
        "CT Precertificate SCTs",
        "Signed Certificate Timestamp",
        "ecdsa-with-SHA256",
    ] {
        assert!(text.contains(want), "leaf lacks {want:?}:\n{text}");
    }
    let ct_id =
        s.ct.id
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
    assert!(
        text.replace(['\n', ' '], "").contains(&ct_id),
        "the SCT names the CT log {ct_id}:\n{text}"
    );

    // The `.sig` layer: payload signature by the leaf key, SET by the Rekor key.
    let layer = s.keyless_layer(
        &leaf,
        "registry.test/app",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        LogEntry::default(),
    );
    run(&[
        "x509", "-in", "leaf.pem", "-pubkey", "-noout", "-out", "leaf.pub",
    ]);
    std::fs::write(p("payload"), &layer.payload).unwrap();
    std::fs::write(p("payload.sig"), layer.signature().unwrap()).unwrap();
    let (ok, out) = run(&[
        "dgst",
        "-sha256",
        "-verify",
        "leaf.pub",
        "-signature",
        "payload.sig",
        "payload",
    ]);
    assert!(ok, "{out}");
    let bundle: Value =
        serde_json::from_str(&layer.annotations[sigstore::BUNDLE_ANNOTATION]).unwrap();
    let body = bundle["Payload"]["body"].as_str().unwrap();
    let message = s.rekor.set_message(
        body,
        bundle["Payload"]["integratedTime"].as_u64().unwrap(),
        bundle["Payload"]["logIndex"].as_u64().unwrap(),
    );
    std::fs::write(p("set.msg"), &message).unwrap();
    std::fs::write(
        p("set.sig"),
        STANDARD
            .decode(bundle["SignedEntryTimestamp"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    std::fs::write(p("rekor.pub"), s.rekor.public_key_pem()).unwrap();
    let (ok, out) = run(&[
        "dgst",
        "-sha256",
        "-verify",
        "rekor.pub",
        "-signature",
        "set.sig",
        "set.msg",
    ]);
    assert!(ok, "{out}");
    // The canonical JSON is what a JSON parser reads back, keys in sorted order.
    let parsed: Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(parsed["logID"], hex::encode(&s.rekor.id));
    let entry: Value = serde_json::from_slice(&STANDARD.decode(body).unwrap()).unwrap();
    assert_eq!(entry["kind"], "hashedrekord");

    // The bundle: DSSE signature over PAE(type, statement) by the leaf key.
    let b: Value = serde_json::from_slice(&s.bundle(
        &BundleSigner::Certificate(&leaf),
        "registry.test/app",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        SIGN_PREDICATE,
        LogEntry::default(),
    ))
    .unwrap();
    let env = &b["dsseEnvelope"];
    let statement = STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
    std::fs::write(
        p("pae"),
        sigstore::pae(env["payloadType"].as_str().unwrap(), &statement),
    )
    .unwrap();
    std::fs::write(
        p("pae.sig"),
        STANDARD
            .decode(env["signatures"][0]["sig"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (ok, out) = run(&[
        "dgst",
        "-sha256",
        "-verify",
        "leaf.pub",
        "-signature",
        "pae.sig",
        "pae",
    ]);
    assert!(ok, "{out}");
    let st: Value = serde_json::from_slice(&statement).unwrap();
    assert_eq!(st["predicateType"], SIGN_PREDICATE);
    assert_eq!(
        st["subject"][0]["digest"]["sha256"],
        "1111111111111111111111111111111111111111111111111111111111111111"
    );
}

/// Fulcio rotates to a new CA: operators replace `trusted_root.json` next to the policy (in a
/// subdirectory of the mounted policy directory) and change nothing else. The reload must pick
/// the file up, and the verdict cached under the old trust root must not be served.
#[tokio::test]
async fn trust_root_rotation_without_a_policy_edit_is_picked_up() {
    let w = World::new();
    let image = w.push("1.0", 24).await;
    w.sign_keyless(&image, &LeafSpec::default(), LogEntry::default())
        .await;
    let review = pod_with(&w.reference(&image));
    let signet = Signet::start(&crate::support::signet::settings("deny"), &[&w.registry]).await;
    assert_denied_with(&signet.review(&review).await, &["noMatch: deny"]);

    // Before the rotation the trust root knows only the old CA.
    let old = Fulcio::new("old-fulcio");
    let dir = signet.policy_dir.join("sigstore");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("trusted_root.json");
    let write_root = |cas: &[&Fulcio]| {
        let json = w.sigstore.trusted_root_with_cas(cas);
        std::fs::write(&file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    };
    write_root(&[&old]);
    std::fs::write(
        signet.policy_dir.join("policies.yaml"),
        keyless_policy(
            "keyless",
            &w.glob(),
            std::path::Path::new("sigstore/trusted_root.json"),
            &[&default_identity()],
        ),
    )
    .unwrap();
    let mut last = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        last = signet.review(&review).await;
        if message(&last).contains("the signing certificate is not valid") {
            break;
        }
    }
    assert_denied_with(
        &last,
        &[
            "policy \"keyless\"",
            "the signing certificate is not valid",
            "does not chain to \"old-fulcio\"",
        ],
    );

    // The rotation: the new CA is added; only the JSON file changes.
    write_root(&[&old, &w.sigstore.fulcio]);
    let mut allowed = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if signet.review(&review).await["response"]["allowed"] == true {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the rotated trust root was not picked up");
    assert_allowed(&signet.review(&review).await);
    signet.stop().await;
}

/// `tlog.required: false` relaxes key-based signatures only: a keyless signature without a
/// Rekor entry has no trusted signing time, and its ten-minute certificate proves nothing.
/// `ctlog.required: false`, on the other hand, does let a certificate without an SCT pass.
#[tokio::test]
async fn keyless_policy_options_relax_the_sct_but_never_the_rekor_entry() {
    let w = World::new();
    let unlogged = w.push("unlogged", 25).await;
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let mut layer = w.sigstore.keyless_layer(
        &leaf,
        &w.registry.repo_ref(REPO),
        &unlogged.digest,
        LogEntry::default(),
    );
    layer.annotations.remove(sigstore::BUNDLE_ANNOTATION);
    w.push_layer(&unlogged, layer).await;
    let no_sct = w.push("no-sct", 26).await;
    let spec = LeafSpec {
        sct: false,
        ..LeafSpec::default()
    };
    w.sign_keyless(&no_sct, &spec, LogEntry::default()).await;

    let policy = keyless_policy("relaxed", &w.glob(), &w.trust_root, &[&default_identity()])
        .replace("tlog: {required: true}", "tlog: {required: false}")
        .replace("ctlog: {required: true}", "ctlog: {required: false}");
    assert!(
        policy.contains("tlog: {required: false}") && policy.contains("ctlog: {required: false}")
    );
    let signet = Signet::start(&policy, &[&w.registry]).await;
    let v = signet.review(&pod_with(&w.reference(&unlogged))).await;
    assert_denied_with(
        &v,
        &[
            "policy \"relaxed\"",
            "the transparency-log entry is missing or does not match",
            "the keyless signature has no Rekor bundle, so there is no trusted signing time",
        ],
    );
    assert_allowed(&signet.review(&pod_with(&w.reference(&no_sct))).await);
    signet.stop().await;
}
