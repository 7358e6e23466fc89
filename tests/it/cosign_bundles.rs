//! Sigstore bundles (cosign v3 referrers) end to end, with the world of `cosign_keyless`: the
//! real server over HTTPS, a real docker-registry and the test Sigstore. Bundles are accepted
//! for keys and keyless, judged by their signed statement; attestations never count.

use serde_json::Value;

use crate::cosign_keyless::{REPO, World, assert_allowed, assert_denied_with, pod_with};
use crate::support::cosign::CosignKey;
use crate::support::oci::{Annotations, OCI_EMPTY, annotations};
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, cosign_policy};
use crate::support::sigstore::{
    self, BundleSigner, EMAIL, ISSUER, LeafSpec, LogEntry, SIGN_PREDICATE, SLSA_PREDICATE,
    default_identity,
};

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

/// A bundle referrer's artifactType is the bundle's media type, and discovery finds every
/// version the verifier accepts: a v0.2 bundle was once set aside unopened as "an artifact",
/// denying an image whose signature the verifier would have accepted.
#[tokio::test]
async fn a_v0_2_bundle_referrer_is_found_and_verified() {
    const V02: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
    let w = World::new();
    let key = CosignKey::p256();
    let image = w.push("v02", 19).await;
    let v03 = w.sigstore.bundle(
        &BundleSigner::Key(&key),
        &w.registry.repo_ref(REPO),
        &image.digest,
        SIGN_PREDICATE,
        LogEntry::default(),
    );
    let mut bundle: Value = serde_json::from_slice(&v03).unwrap();
    bundle["mediaType"] = V02.into();
    let bundle = serde_json::to_vec(&bundle).unwrap();
    w.registry
        .pusher()
        .push_referrer(
            REPO,
            &image,
            V02,
            OCI_EMPTY,
            vec![(V02, bundle, Annotations::new())],
            annotations(&[("dev.sigstore.bundle.predicateType", SIGN_PREDICATE)]),
        )
        .await;
    let signet = Signet::start(
        &cosign_policy("keys", &w.glob(), "enforce", "deny", &key.public_key_pem()),
        &[&w.registry],
    )
    .await;
    assert_allowed(&signet.review(&pod_with(&w.reference(&image))).await);
    signet.stop().await;
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
