//! criterion micro-benchmarks of signet's pure, per-review work: AdmissionReview decode, image
//! reference normalisation, policy matching over 1,000 policies, and verification: Cosign with a
//! P-256 key, Cosign keyless (a Fulcio leaf with its SCT and a Rekor bundle), Notation JWS and
//! COSE (ES256 leaf, chain root → intermediate → leaf), and the Notation revocation-location
//! pass signet makes before verifying. Run: `cargo bench --bench micro`; smoke (each once, seconds): `cargo bench --bench micro
//! -- --test`.
//!
//! Inputs come from the test kit the integration tests use (crates/testkit: fixtures, the
//! Cosign-style signer, the test Sigstore, the Notation signer), so the bench signs exactly what
//! the tests sign.

// Tests and benchmarks may unwrap: a panic here is a failed run, not a crashed webhook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use signet::image::{Digest, ImageRef};
use signet::policy::{PolicySet, Verifier};
use signet::verify::cosign::CosignSignature;

/// The test kit the integration tests use (crates/testkit), under the tests' module paths.
mod support {
    pub use signet_testkit::{cosign, fixtures, notary, oci, sigstore};
    pub mod signet {
        pub use signet_testkit::policy::cosign_policy;
    }
}

use support::cosign::{self as signer, CosignKey};
use support::notary::{ChainSpec, Format, SigningChain};
use support::oci::{OCI_CONFIG, OCI_MANIFEST, PushedImage, sha256_digest};

/// `n` ClusterImagePolicies, policy `i` covering `registry.example.com/team{i}/**`.
fn policies(n: usize, key_pem: &str) -> PolicySet {
    let text = (0..n)
        .map(|i| {
            support::signet::cosign_policy(
                &format!("p{i}"),
                &format!("registry.example.com/team{i}/**"),
                "enforce",
                "deny",
                key_pem,
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    signet::policy::load_str(Path::new("bench.yaml"), &text).expect("bench policies load")
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for name in ["pod-create", "deployment-create", "pod-update-image"] {
        let body = support::fixtures::review_bytes(name);
        g.bench_function(name, |b| {
            b.iter(|| signet::admission::decode(black_box(&body)).expect("fixture decodes"))
        });
    }
    g.finish();
}

fn normalise(c: &mut Criterion) {
    let mut g = c.benchmark_group("image_ref");
    for (label, s) in [
        ("short", "nginx"),
        ("tagged", "docker.io/library/nginx:1.25"),
        (
            "host_port_digest",
            "registry.example.com:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| black_box(s).parse::<ImageRef>().expect("valid reference"))
        });
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let key = CosignKey::p256();
    let set = policies(1_000, &key.public_key_pem());
    let mut g = c.benchmark_group("policy_matching_1000");
    for (label, image) in [
        ("last_matches", "registry.example.com/team999/app:1.0"),
        ("none_match", "docker.io/library/nginx:1.25"),
    ] {
        let image: ImageRef = image.parse().expect("valid reference");
        g.bench_function(label, |b| {
            b.iter(|| set.matching(black_box(&image), Some("default")).count())
        });
    }
    g.finish();
}

fn verify(c: &mut Criterion) {
    let key = CosignKey::p256();
    let set = policies(1, &key.public_key_pem());
    let Verifier::Cosign(authority) = &set.policies[0].authorities[0].verifier else {
        unreachable!("cosign_policy makes a Cosign authority")
    };
    let digest: Digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        .parse()
        .expect("digest");
    let payload = signer::simple_signing_payload("registry.example.com/team/app", digest.as_str());
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(key.sign(&payload))
    };
    let signatures = vec![CosignSignature {
        payload: payload.into(),
        signature,
        certificate: None,
        chain: None,
        bundle: None,
    }];
    let mut g = c.benchmark_group("verify");
    g.bench_function("cosign_p256_key", |b| {
        b.iter(|| {
            let outcome = signet::verify::cosign::verify_with_keys(
                authority,
                black_box(&digest),
                black_box(&signatures),
            );
            assert!(matches!(outcome, signet::verify::Outcome::Trusted(_)));
        })
    });
    keyless(&mut g, &digest);
    notation(&mut g);
    g.finish();
}

/// `verify/cosign_keyless`: one `.sig` layer as `cosign sign` without a key makes it (a new
/// Fulcio leaf of the test Sigstore with its SCT, the Rekor bundle annotation), under a keyless
/// authority that requires the CT and transparency-log proofs and trusts the leaf's identity.
fn keyless(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    digest: &Digest,
) {
    use support::sigstore::{
        BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, LeafSpec, LogEntry, Sigstore,
        default_identity, keyless_policy,
    };
    let sigstore = Sigstore::new();
    let root = sigstore.write_trusted_root();
    let policy = keyless_policy(
        "keyless",
        "registry.example.com/**",
        &root,
        &[&default_identity()],
    );
    let set = signet::policy::load_str(Path::new("bench.yaml"), &policy).expect("policy loads");
    let Verifier::Cosign(authority) = &set.policies[0].authorities[0].verifier else {
        unreachable!("keyless_policy makes a Cosign authority")
    };
    let leaf = sigstore.leaf(&LeafSpec::default());
    let layer = sigstore.keyless_layer(
        &leaf,
        "registry.example.com/team/app",
        digest.as_str(),
        LogEntry::default(),
    );
    let annotation = |name: &str| layer.annotations.get(name).cloned();
    let signatures = vec![CosignSignature {
        payload: layer.payload.clone().into(),
        signature: annotation(signer::SIGNATURE_ANNOTATION).expect("signed"),
        certificate: annotation(CERTIFICATE_ANNOTATION),
        chain: annotation(CHAIN_ANNOTATION),
        bundle: annotation(BUNDLE_ANNOTATION),
    }];
    let ctx = signet::verify::Context {
        now: std::time::SystemTime::now(),
    };
    g.bench_function("cosign_keyless", |b| {
        b.iter(|| {
            let outcome = signet::verify::cosign::verify(
                authority,
                black_box(digest),
                black_box(&signatures),
                &[],
                &ctx,
            );
            assert!(
                matches!(outcome, signet::verify::Outcome::Trusted(_)),
                "{outcome:?}"
            );
        })
    });
}

/// `verify/notation_{jws,cose}`: one signature made at start by the test signer, under a strict
/// authority whose `ca` store holds the chain's root and that trusts any identity. The leaf
/// names no revocation URL, so nothing is fetched and the outcome is trusted.
/// `verify/notation_jws_revocation_locations`: the fetch plan of one signature under a
/// revocation-checking level, as the engine gets it from the format seam's one check
/// (`format::check`: integrity and authenticity, to learn which URLs to fetch for trusted
/// chains only).
fn notation(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use signet::policy::notation::{NotationAuthority, NotationSpec};
    use signet::verify::notation::NotationSignature;
    use signet::verify::{Context, Outcome, Subject};

    let chain = SigningChain::new(&ChainSpec::default());
    let root = chain.root.cert_pem.trim_end().replace('\n', "\n      ");
    let spec: NotationSpec = serde_yaml::from_str(&format!(
        "signatureVerification: {{level: strict}}\n\
         trustStores:\n\
         - type: ca\n  name: bench\n  certificates:\n  - inline: |\n      {root}\n\
         trustedIdentities: ['*']\n"
    ))
    .expect("Notation spec parses");
    let (authority, _) = NotationAuthority::load(
        &spec,
        &signet::policy::material::Resolver::files(),
        &signet::policy::material::Context::file(Path::new(".")),
    )
    .expect("authority loads");
    let image = image();
    let subject = Subject {
        digest: image.digest.parse().expect("digest"),
        media_type: image.media_type.clone(),
        size: image.size,
    };
    let ctx = Context {
        now: std::time::SystemTime::now(),
    };
    for format in [Format::Jws, Format::Cose] {
        let signatures = vec![NotationSignature {
            manifest_digest: sha256_digest(format.name().as_bytes())
                .parse()
                .expect("digest"),
            media_type: format.media_type().to_owned(),
            envelope: chain.sign(format, &image, None).into(),
        }];
        g.bench_function(format!("notation_{}", format.name()), |b| {
            b.iter(|| {
                let outcome = signet::verify::notation::verify(
                    &authority,
                    black_box(&subject),
                    black_box(&signatures),
                    &ctx,
                );
                assert!(matches!(outcome, Outcome::Trusted(_)), "{outcome:?}");
            })
        });
        if format == Format::Jws {
            use signet::verify::format::{self as seam, Artifact, Kind};
            let authorities = [signet::policy::Authority {
                name: "bench".into(),
                verifier: signet::policy::Verifier::Notation(Box::new(authority.clone())),
            }];
            let sig = &signatures[0];
            let artifact = Artifact {
                kind: Kind::Notation,
                manifest: Some(sig.manifest_digest.clone()),
                layer_digest: sha256_digest(&sig.envelope).parse().expect("digest"),
                media_type: sig.media_type.clone(),
                annotations: Default::default(),
                bytes: sig.envelope.clone(),
            };
            g.bench_function("notation_jws_revocation_locations", |b| {
                b.iter(|| {
                    let checked =
                        seam::check(&authorities, black_box(&subject), artifact.clone(), 0, &ctx);
                    assert!(checked.plan().is_empty());
                })
            });
        }
    }
}

/// An image manifest that is in no registry: only its descriptor is signed.
fn image() -> PushedImage {
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [],
    }))
    .expect("manifest JSON");
    PushedImage {
        repo: "team/app".into(),
        tag: None,
        digest: sha256_digest(&manifest),
        media_type: OCI_MANIFEST.into(),
        size: manifest.len() as u64,
        manifest,
        platform: None,
        children: Vec::new(),
    }
}

criterion_group!(benches, decode, normalise, matching, verify);
criterion_main!(benches);
