//! Cosign keyless signatures and Sigstore bundles end to end: real AdmissionReview bodies
//! against the real server over HTTPS, a real docker-registry holding `.sig` tags and cosign v3
//! bundle referrers, and a test Sigstore (`support::sigstore`) that shares no code with
//! signet's verifier. Each denial is checked for the reason words the user reads.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::oci::PushedImage;
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, cosign_policy};
use crate::support::sigstore::{
    self, BundleSigner, EMAIL, Fulcio, ISSUER, LeafSpec, LogEntry, SIGN_PREDICATE, SLSA_PREDICATE,
    Sigstore, default_identity, keyless_policy,
};

const POD: &str = "pod-create.json";
const POD_IMAGE: &str = "nginx:1.27";
const REPO: &str = "team/app";

fn pod_with(image: &str) -> Value {
    let mut review = load_review(POD);
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    review
}

fn message(v: &Value) -> String {
    v["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[track_caller]
fn assert_allowed(v: &Value) {
    let r = &v["response"];
    assert_eq!(r["allowed"], true, "{v:#}");
    assert!(r.get("warnings").is_none(), "{v:#}");
}

/// Denied with 403 Forbidden, and the message holds every one of `words`.
#[track_caller]
fn assert_denied_with(v: &Value, words: &[&str]) {
    let r = &v["response"];
    assert_eq!(r["allowed"], false, "{v:#}");
    assert_eq!(r["status"]["code"], 403, "{v:#}");
    assert_eq!(r["status"]["reason"], "Forbidden", "{v:#}");
    let msg = message(v);
    for w in words {
        assert!(msg.contains(w), "the deny message lacks {w:?}:\n{msg}");
    }
}

struct World {
    registry: TestRegistry,
    sigstore: Sigstore,
    trust_root: PathBuf,
}

impl World {
    fn new() -> World {
        let sigstore = Sigstore::new();
        let trust_root = sigstore.write_trusted_root();
        World {
            registry: TestRegistry::start(),
            sigstore,
            trust_root,
        }
    }

    fn glob(&self) -> String {
        format!("{}/**", self.registry.addr())
    }

    /// signet with one keyless policy "keyless" trusting `identities`.
    async fn signet(&self, identities: &[&str]) -> Signet {
        let policy = keyless_policy("keyless", &self.glob(), &self.trust_root, identities);
        Signet::start(&policy, &[&self.registry]).await
    }

    async fn push(&self, tag: &str, seed: u64) -> PushedImage {
        self.registry.pusher().push_image(REPO, tag, seed).await
    }

    fn reference(&self, image: &PushedImage) -> String {
        image.reference_by_tag(&self.registry.addr())
    }

    /// Signs `image` keyless with a leaf for `spec`, logged at `entry`, into its `.sig` tag.
    async fn sign_keyless(&self, image: &PushedImage, spec: &LeafSpec, entry: LogEntry) {
        let leaf = self.sigstore.leaf(spec);
        self.push_layer(
            image,
            self.sigstore
                .keyless_layer(&leaf, &self.registry.repo_ref(REPO), &image.digest, entry),
        )
        .await;
    }

    async fn push_layer(&self, image: &PushedImage, layer: cosign::SignatureLayer) {
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
    async fn push_keyless_bundle(&self, image: &PushedImage, digest: &str, predicate: &str) {
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

#[tokio::test]
async fn bundle_referrer_is_allowed_with_one_pass_over_the_referrers() {
    let w = World::new();
    let image = w.push("1.0", 12).await;
    w.push_keyless_bundle(&image, &image.digest, SIGN_PREDICATE)
        .await;
    let signet = w.signet(&[&default_identity()]).await;
    let review = pod_with(&w.reference(&image));
    assert_allowed(&signet.measured_review("cold keyless bundle", &review).await);
    let cold = signet.registry_requests();
    // Resolve the tag (1 HEAD), the `.sig` tag (1, absent), the referrers API (1, absent on
    // docker-registry), the referrers tag index (1), the referrer manifest (1), the bundle
    // blob (1).
    let by_operation: Vec<String> = signet
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("signet_registry_requests_total{"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        cold, 6.0,
        "cold verification took {cold} registry requests: {by_operation:#?}"
    );
    // The verdict is cached: a second review goes to no registry.
    assert_allowed(&signet.review(&review).await);
    assert_eq!(signet.registry_requests(), cold);
    signet.stop().await;
}

#[tokio::test]
async fn bundle_with_an_inclusion_proof_but_no_promise_has_no_trusted_time() {
    let w = World::new();
    let image = w.push("1.0", 23).await;
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let bundle = w.sigstore.bundle(
        &BundleSigner::Certificate(&leaf),
        &w.registry.repo_ref(REPO),
        &image.digest,
        SIGN_PREDICATE,
        LogEntry::default(),
    );
    // The inclusion proof (and its signed checkpoint) is valid, but it proves inclusion, not
    // when: without the SET's integrated time there is nothing to check the certificate at.
    let mut json: Value = serde_json::from_slice(&bundle).unwrap();
    json["verificationMaterial"]["tlogEntries"][0]
        .as_object_mut()
        .unwrap()
        .remove("inclusionPromise");
    let bundle = serde_json::to_vec(&json).unwrap();
    sigstore::push_bundle(&w.registry.pusher(), REPO, &image, bundle, SIGN_PREDICATE).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "the signature's timestamp is not valid",
            "no trusted time: the log entry has no inclusion promise and there is no RFC 3161 timestamp",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn bundle_naming_another_digest_is_denied_as_for_another_image() {
    let w = World::new();
    let victim = w.push("victim", 13).await;
    let donor = w.push("donor", 14).await;
    // A valid, logged bundle whose statement names the donor, attached to the victim.
    w.push_keyless_bundle(&victim, &donor.digest, SIGN_PREDICATE)
        .await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&victim))).await;
    assert_denied_with(
        &v,
        &[
            "the signature is for another image",
            &format!("the bundle signs [\"{}\"]", donor.digest),
            "not this image's digest",
        ],
    );
    signet.stop().await;
}

#[tokio::test]
async fn attestation_bundle_alone_is_never_counted_as_a_signature() {
    let w = World::new();
    let image = w.push("1.0", 15).await;
    // Valid in every other way: trusted signer, logged, naming this digest.
    w.push_keyless_bundle(&image, &image.digest, SLSA_PREDICATE)
        .await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "no signature found",
            "looked for the sha256-<hex>.sig tag and Sigstore bundle referrers",
        ],
    );
    // Its predicate-type annotation says what it is: resolve, the `.sig` tag, the referrers
    // API and the referrers tag index, and the attestation itself is never fetched.
    assert_eq!(signet.registry_requests(), 4.0);
    signet.stop().await;
}

#[tokio::test]
async fn attestation_labelled_as_a_signature_is_still_judged_by_its_signed_statement() {
    let w = World::new();
    let image = w.push("1.0", 20).await;
    // The referrer's annotation claims the signature predicate; the signed statement says SLSA.
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let bundle = w.sigstore.bundle(
        &BundleSigner::Certificate(&leaf),
        &w.registry.repo_ref(REPO),
        &image.digest,
        SLSA_PREDICATE,
        LogEntry::default(),
    );
    sigstore::push_bundle(&w.registry.pusher(), REPO, &image, bundle, SIGN_PREDICATE).await;
    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&image))).await;
    assert_denied_with(
        &v,
        &[
            "no signature found",
            "an attestation of predicate type \"https://slsa.dev/provenance/v1\", not a cosign signature",
        ],
    );
    signet.stop().await;
}

/// cosign v3 stores attestations (SBOMs, provenance, scans) as referrers with the same
/// artifactType as signatures, one more each time it attests. Ten of them listed before the
/// signature must not use up the referrers signet is willing to fetch.
#[tokio::test]
async fn attestations_listed_before_the_signature_bundle_do_not_crowd_it_out() {
    let w = World::new();
    let image = w.push("1.0", 21).await;
    for _ in 0..10 {
        w.push_keyless_bundle(&image, &image.digest, SLSA_PREDICATE)
            .await;
    }
    w.push_keyless_bundle(&image, &image.digest, SIGN_PREDICATE)
        .await;
    let index = w
        .registry
        .pusher()
        .get_referrers_index(REPO, &image.digest)
        .await
        .expect("referrers index");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(11));
    let signet = w.signet(&[&default_identity()]).await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&image))).await);
    // The attestations' annotations say what they are: none of them is fetched.
    assert_eq!(signet.registry_requests(), 6.0);
    signet.stop().await;
}

#[tokio::test]
async fn failing_sig_signature_falls_back_to_a_valid_bundle() {
    let w = World::new();
    let image = w.push("1.0", 16).await;
    // A `.sig` signature by an untrusted identity, and a valid bundle referrer.
    w.sign_keyless(
        &image,
        &LeafSpec::subject("mallory@example.com"),
        LogEntry::default(),
    )
    .await;
    w.push_keyless_bundle(&image, &image.digest, SIGN_PREDICATE)
        .await;
    let signet = w.signet(&[&default_identity()]).await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&image))).await);
    signet.stop().await;
}

#[tokio::test]
async fn key_based_bundle_is_allowed_by_its_key_and_denied_for_another() {
    let w = World::new();
    let key = CosignKey::p256();
    let other = CosignKey::p256();
    let signed = w.push("signed", 17).await;
    let by_other = w.push("other", 18).await;
    for (image, signer) in [(&signed, &key), (&by_other, &other)] {
        let bundle = w.sigstore.bundle(
            &BundleSigner::Key(signer),
            &w.registry.repo_ref(REPO),
            &image.digest,
            SIGN_PREDICATE,
            LogEntry::default(),
        );
        sigstore::push_bundle(&w.registry.pusher(), REPO, image, bundle, SIGN_PREDICATE).await;
    }
    let signet = Signet::start(
        &cosign_policy("keys", &w.glob(), "enforce", "deny", &key.public_key_pem()),
        &[&w.registry],
    )
    .await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&signed))).await);
    let v = signet.review(&pod_with(&w.reference(&by_other))).await;
    assert_denied_with(
        &v,
        &[
            "signed, but not by a trusted key or certificate",
            "the bundle's DSSE signature verifies with none of the trusted keys",
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

/// Regression (found by the bundle request count above): resolving a tag with HEAD read the
/// size from `reqwest::Response::content_length()`, which is the *body's* size hint and always
/// 0 for a HEAD response, so every tag resolution fell back to a second request, a manifest
/// GET (which Docker Hub counts against the pull rate limit; HEAD it does not). The registry
/// sends `Content-Length` and `Docker-Content-Digest` on HEAD: one request must do.
#[tokio::test]
async fn head_resolve_reads_content_length_from_the_header_not_the_empty_body() {
    use signet::registry::{HttpRegistry, Registry, RegistryConfig};
    use std::sync::Arc;
    let registry = TestRegistry::start();
    let image = registry.pusher().push_image(REPO, "1.0", 19).await;
    let metrics = Arc::new(signet::metrics::Metrics::new());
    let client = HttpRegistry::new(
        RegistryConfig {
            insecure: vec![registry.addr()],
            ..RegistryConfig::default()
        },
        metrics.clone(),
    )
    .expect("registry client");
    let reference: signet::image::ImageRef =
        image.reference_by_tag(&registry.addr()).parse().unwrap();
    let resolved = client.resolve(&reference).await.expect("resolves");
    assert_eq!(resolved.digest.as_str(), image.digest);
    assert_eq!(resolved.size, image.size);
    assert_eq!(resolved.media_type, image.media_type);
    let requests: Vec<String> = metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("signet_registry_requests_total{"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        requests,
        ["signet_registry_requests_total{operation=\"resolve\",status=\"200\"} 1"],
        "one HEAD, no manifest GET"
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

/// A multi-arch image is signed at its index digest: the bundle referrer's subject is the
/// index, and admitting the tag verifies the index digest.
#[tokio::test]
async fn bundle_referrer_of_a_multi_arch_index_is_allowed() {
    let w = World::new();
    let index = w.registry.pusher().push_multiarch(REPO, "multi", 27).await;
    w.push_keyless_bundle(&index, &index.digest, SIGN_PREDICATE)
        .await;
    let signet = w.signet(&[&default_identity()]).await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&index))).await);
    // A platform manifest of it is not what was signed.
    let child = &index.children[0];
    let v = signet
        .review(&pod_with(&child.reference_by_digest(&w.registry.addr())))
        .await;
    assert_denied_with(&v, &["no signature found"]);
    signet.stop().await;
}

/// The bundle path judges the signer and the signed bytes like the `.sig` path: a bundle by an
/// untrusted identity names what it found and what was wanted, and a statement edited after
/// signing (here: re-pointed at this image) no longer verifies.
#[tokio::test]
async fn bundle_with_a_wrong_identity_or_an_edited_statement_is_denied() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let w = World::new();
    let repo = w.registry.repo_ref(REPO);
    let by_mallory = w.push("mallory", 28).await;
    let leaf = w.sigstore.leaf(&LeafSpec::subject("mallory@example.com"));
    let bundle = w.sigstore.bundle(
        &BundleSigner::Certificate(&leaf),
        &repo,
        &by_mallory.digest,
        SIGN_PREDICATE,
        LogEntry::default(),
    );
    sigstore::push_bundle(
        &w.registry.pusher(),
        REPO,
        &by_mallory,
        bundle,
        SIGN_PREDICATE,
    )
    .await;

    // A valid bundle of the donor, its statement edited to name the victim.
    let victim = w.push("victim", 29).await;
    let donor = w.push("donor", 30).await;
    let leaf = w.sigstore.leaf(&LeafSpec::default());
    let bundle = w.sigstore.bundle(
        &BundleSigner::Certificate(&leaf),
        &repo,
        &donor.digest,
        SIGN_PREDICATE,
        LogEntry::default(),
    );
    let mut json: Value = serde_json::from_slice(&bundle).unwrap();
    let statement = STANDARD
        .decode(json["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let edited = String::from_utf8(statement).unwrap().replace(
        donor.digest.trim_start_matches("sha256:"),
        victim.digest.trim_start_matches("sha256:"),
    );
    json["dsseEnvelope"]["payload"] = STANDARD.encode(edited).into();
    let bundle = serde_json::to_vec(&json).unwrap();
    sigstore::push_bundle(&w.registry.pusher(), REPO, &victim, bundle, SIGN_PREDICATE).await;

    let signet = w.signet(&[&default_identity()]).await;
    let v = signet.review(&pod_with(&w.reference(&by_mallory))).await;
    assert_denied_with(
        &v,
        &[
            "the signer's identity is not trusted",
            "bundle 0: the certificate is for subject [\"mallory@example.com\"]",
            &format!("the policy wants issuer \"{ISSUER}\" subject \"{EMAIL}\""),
        ],
    );
    let v = signet.review(&pod_with(&w.reference(&victim))).await;
    assert_denied_with(
        &v,
        &[
            "no signature is valid",
            "the DSSE signature does not verify with the bundle certificate's key",
        ],
    );
    signet.stop().await;
}
