//! The limits measured in the same run as signet's figures: signature verifications, the
//! review decode, one registry round trip.

use std::time::Instant;

use crate::report::{Report, Stats, load};
use crate::support;
use crate::support::cosign;
use crate::support::oci::PushedImage;
use crate::support::registry::TestRegistry;

/// The policies in `text`, loaded as signet loads a policy file.
pub fn load_policies(text: &str) -> anyhow::Result<signet::policy::PolicySet> {
    signet::policy::load_str(std::path::Path::new("bench.yaml"), text)
        .map_err(|e| anyhow::anyhow!("the bench's policy does not load: {e:?}"))
}

/// The verifier of the first authority of `set`'s first policy.
pub fn first_verifier(set: &signet::policy::PolicySet) -> Option<&signet::policy::Verifier> {
    set.policies
        .first()
        .and_then(|p| p.authorities.first())
        .map(|a| &a.verifier)
}

/// Mean µs of `verify` over `n` runs, once it is seen to trust the `what` signature (no I/O:
/// the floor of a verification).
pub fn trusted_verify_us(
    what: &str,
    n: u32,
    verify: impl Fn() -> signet::verify::Outcome,
) -> anyhow::Result<f64> {
    let outcome = verify();
    anyhow::ensure!(
        matches!(outcome, signet::verify::Outcome::Trusted(_)),
        "the {what} signature does not verify in-process: {outcome:?}"
    );
    Ok(time_us(n, || {
        std::hint::black_box(verify());
    }))
}

/// Mean time of `f` over `n` runs, in microseconds.
pub fn time_us(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

pub struct Limits {
    pub p256_us: f64,
    pub decode_us: f64,
    pub registry_rtt: Stats,
}

/// Mean µs of one verification: P-256, P-384 (the root of the test Notation chain signs with
/// it), RSA-PSS-2048; and of one decode of `pod-create.json`.
pub fn crypto_and_decode_limits(n: u32) -> anyhow::Result<(f64, f64, f64, f64)> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair};
    let rng = SystemRandom::new();
    let msg = cosign::simple_signing_payload(
        "registry.example.com/team/app",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    let ec = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| anyhow::anyhow!("P-256 keygen"))?;
    let ec_sig = ec
        .sign(&rng, &msg)
        .map_err(|_| anyhow::anyhow!("P-256 sign"))?;
    let ec_pub = sig::UnparsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_ASN1,
        ec.public_key().as_ref().to_vec(),
    );
    let p256 = time_us(n, || {
        ec_pub
            .verify(&msg, ec_sig.as_ref())
            .expect("P-256 verifies");
    });
    let ec384 = sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_ASN1_SIGNING)
        .map_err(|_| anyhow::anyhow!("P-384 keygen"))?;
    let ec384_sig = ec384
        .sign(&rng, &msg)
        .map_err(|_| anyhow::anyhow!("P-384 sign"))?;
    let ec384_pub = sig::UnparsedPublicKey::new(
        &sig::ECDSA_P384_SHA384_ASN1,
        ec384.public_key().as_ref().to_vec(),
    );
    let p384 = time_us(n, || {
        ec384_pub
            .verify(&msg, ec384_sig.as_ref())
            .expect("P-384 verifies");
    });
    let rsa = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA keygen"))?;
    let mut rsa_sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&sig::RSA_PSS_SHA256, &rng, &msg, &mut rsa_sig)
        .map_err(|_| anyhow::anyhow!("RSA sign"))?;
    let rsa_pub = sig::UnparsedPublicKey::new(
        &sig::RSA_PSS_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    let pss = time_us(n, || {
        rsa_pub.verify(&msg, &rsa_sig).expect("RSA-PSS verifies");
    });
    let review = support::fixtures::review_bytes("pod-create");
    let decode = time_us(n, || {
        std::hint::black_box(signet::admission::decode(&review).expect("fixture decodes"));
    });
    let full = time_us(n, || {
        std::hint::black_box(
            signet::admission::decode_with_object(&review).expect("fixture decodes"),
        );
    });
    eprintln!(
        "| limit: the full decoder of the pinning route (`decode_with_object`, pod-create.json) | {full:.1} µs | - | - | - | {} |",
        load()
    );
    Ok((p256, p384, pss, decode))
}

/// Sequential `HEAD` of a manifest over one keep-alive connection (what signet's resolve does).
pub async fn registry_rtt(registry: &TestRegistry, image: &PushedImage, n: usize) -> Stats {
    let client = registry.client();
    let url = format!(
        "{}/v2/{}/manifests/{}",
        registry.base_url(),
        image.repo,
        image.digest
    );
    let mut stats = Stats::empty();
    let start = Instant::now();
    for i in 0..n + 20 {
        let t0 = Instant::now();
        let ok = client
            .head(&url)
            .header("accept", support::oci::MANIFEST_ACCEPT)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if i < 20 {
            continue; // warm-up
        }
        if ok {
            stats.ok += 1;
            stats.hist.saturating_record(t0.elapsed().as_nanos() as u64);
        } else {
            stats.errors += 1;
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

/// The limits: P-256, P-384 and RSA-PSS verifications, the decode, one registry round trip.
pub async fn measure_limits(
    registry: &TestRegistry,
    image: &PushedImage,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<Limits> {
    let n = if quick { 200 } else { 2000 };
    let (p256_us, p384_us, rsa_pss_us, decode_us) = crypto_and_decode_limits(n)?;
    for (what, us) in [
        ("limit: ECDSA P-256 verify (aws-lc-rs)", p256_us),
        (
            "limit: ECDSA P-384 verify (aws-lc-rs; the test Notation root's algorithm)",
            p384_us,
        ),
        ("limit: RSA-PSS-2048 verify (aws-lc-rs)", rsa_pss_us),
        ("limit: AdmissionReview decode (pod-create.json)", decode_us),
    ] {
        report.row(what, &format!("{us:.1} µs"), "-", "-", "-");
    }
    let registry_rtt = registry_rtt(registry, image, if quick { 100 } else { 1000 }).await;
    report.row(
        "limit: loopback docker-registry round trip (HEAD manifest, keep-alive)",
        &registry_rtt.latency(),
        "-",
        "-",
        "-",
    );
    Ok(Limits {
        p256_us,
        decode_us,
        registry_rtt,
    })
}
