//! Cached verdicts renewed in the background, against the real registry: an image in steady
//! use is verified again in the last quarter of its verdict's lifetime, so that its reviews
//! never wait on a verification after the first, and what changed at the registry since (a
//! signature replaced by one that does not verify) is seen at that renewal, as it would have
//! been at the expiry. A registry outage reaches such an image only once its entries expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use signet::decision::{CacheConfig, Engine, ImageUse, Verdict};
use signet::engine;
use signet::metrics::Metrics;

use crate::support::cosign::{self, CosignKey, SIGNATURE_ANNOTATION, SIMPLESIGNING};
use crate::support::oci::{OCI_CONFIG, OCI_MANIFEST, PushedImage};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, engine_over_http, test_options};

/// Trusted verdicts live this long here (renewed after three quarters of it, 3 s).
const TRUSTED_FOR: Duration = Duration::from_secs(4);
/// Into a verdict's last quarter, counted from just after it was made: 0.3 s past the
/// quarter's start, and 0.7 s before the expiry for the reviews that made it (a busy machine).
const INTO_LAST_QUARTER: Duration = Duration::from_millis(3_300);

fn engine(registry: &TestRegistry, key: &CosignKey, caches: CacheConfig) -> (Engine, Arc<Metrics>) {
    let policy = cosign_policy(
        "prod",
        &format!("{}/**", registry.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let options = engine::Options {
        caches,
        ..test_options()
    };
    engine_over_http(&[registry.addr()], &policy, options)
}

/// Trusted verdicts that live [`TRUSTED_FOR`], the other caches as in production.
fn short_verdicts() -> CacheConfig {
    CacheConfig {
        trusted_ttl: TRUSTED_FOR,
        ..CacheConfig::default()
    }
}

async fn decide(engine: &Engine, registry: &TestRegistry, image: &PushedImage) -> Verdict {
    engine
        .decide(
            &[ImageUse {
                image: image.reference_by_tag(&registry.addr()),
                containers: vec!["app".into()],
            }],
            None,
            Instant::now() + Duration::from_secs(10),
        )
        .await
}

/// Signature manifests fetched so far (each verification fetches the `.sig` manifest once).
fn signature_fetches(metrics: &Metrics) -> u64 {
    metrics
        .registry_requests
        .with_label_values(&["manifest", "200"])
        .get()
}

fn renewals(metrics: &Metrics, result: &str) -> u64 {
    metrics.verdict_renewals.with_label_values(&[result]).get()
}

/// Until `count` says `n` (at most 5 s).
async fn counted(what: &str, n: u64, count: impl Fn() -> u64) {
    for _ in 0..500 {
        if count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} {what} expected, saw {}", count());
}

async fn renewed(metrics: &Metrics, result: &str, n: u64) {
    counted(&format!("{result} verdict renewal(s)"), n, || {
        renewals(metrics, result)
    })
    .await;
}

#[tokio::test]
async fn a_verdict_in_steady_use_is_renewed_and_sees_what_changed_at_the_registry() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let steady = pusher.push_image("team/app", "steady", 1).await;
    cosign::sign_image(&registry, "team/app", &steady, &key).await;
    let resigned = pusher.push_image("team/app", "resigned", 2).await;
    cosign::sign_image(&registry, "team/app", &resigned, &key).await;
    let (engine, metrics) = engine(&registry, &key, short_verdicts());

    for image in [&steady, &resigned] {
        let v = decide(&engine, &registry, image).await;
        assert!(v.allowed && v.images[0].trusted(), "{v:?}");
    }
    // The verdicts were made before this.
    let started = Instant::now();
    let first = signature_fetches(&metrics);
    assert!(first >= 2, "each image was verified");

    // The second image's signature is replaced by one that does not verify; its verdict is
    // still cached.
    push_bad_signature(&registry, &resigned).await;
    let v = decide(&engine, &registry, &resigned).await;
    assert!(v.allowed, "served from the cache: {v:?}");
    assert_eq!(
        signature_fetches(&metrics),
        first,
        "no review verified again"
    );

    tokio::time::sleep(INTO_LAST_QUARTER.saturating_sub(started.elapsed())).await;
    for image in [&steady, &resigned] {
        let v = decide(&engine, &registry, image).await;
        assert!(v.allowed, "still cached while the renewal runs: {v:?}");
    }
    renewed(&metrics, "ok", 2).await;
    assert_eq!(renewals(&metrics, "failed"), 0);
    let after_renewals = signature_fetches(&metrics);
    assert_eq!(after_renewals, first + 2, "one renewal per image");

    // The renewal saw the bad signature: the image is denied at once, not at the expiry.
    let v = decide(&engine, &registry, &resigned).await;
    assert!(!v.allowed, "the renewed verdict is untrusted: {v:?}");

    // Past the first verdict's lifetime, the renewed one is served without a verification.
    tokio::time::sleep(
        (TRUSTED_FOR + Duration::from_millis(300)).saturating_sub(started.elapsed()),
    )
    .await;
    let v = decide(&engine, &registry, &steady).await;
    assert!(v.allowed && v.images[0].trusted(), "{v:?}");
    assert_eq!(
        signature_fetches(&metrics),
        after_renewals,
        "the renewed verdict was served"
    );
}

/// A registry outage behind a warm cache: reviews of an image in use are admitted from the
/// cache while its entries last, the renewals fail and change nothing, and once the tag's
/// resolution has expired the policy's `onError` decides; the registry back, the image is
/// verified as before (failures were not cached).
#[tokio::test]
async fn a_registry_outage_behind_a_warm_cache_lasts_until_the_entries_expire() {
    let mut registry = TestRegistry::start();
    let key = CosignKey::p256();
    let image = registry.pusher().push_image("team/app", "v1", 3).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let caches = CacheConfig {
        digest_ttl: TRUSTED_FOR,
        ..short_verdicts()
    };
    let (engine, metrics) = engine(&registry, &key, caches);
    let v = decide(&engine, &registry, &image).await;
    assert!(v.allowed && v.images[0].trusted(), "{v:?}");
    // The verdict and the tag's resolution were made before this.
    let started = Instant::now();

    registry.stop();
    let v = decide(&engine, &registry, &image).await;
    assert!(v.allowed && v.images[0].trusted(), "from the cache: {v:?}");
    tokio::time::sleep(INTO_LAST_QUARTER.saturating_sub(started.elapsed())).await;
    let v = decide(&engine, &registry, &image).await;
    assert!(v.allowed, "still cached while the renewals run: {v:?}");
    renewed(&metrics, "failed", 1).await;
    counted("failed digest refresh", 1, || {
        metrics
            .digest_refreshes
            .with_label_values(&["failed"])
            .get()
    })
    .await;
    assert_eq!(renewals(&metrics, "ok"), 0);
    let v = decide(&engine, &registry, &image).await;
    assert!(v.allowed, "a failed renewal changes nothing: {v:?}");

    tokio::time::sleep(
        (TRUSTED_FOR + Duration::from_millis(300)).saturating_sub(started.elapsed()),
    )
    .await;
    let v = decide(&engine, &registry, &image).await;
    assert!(!v.allowed, "onError: deny, once the entries expired: {v:?}");
    assert!(
        v.denials.join("\n").contains("unreachable"),
        "{:?}",
        v.denials
    );

    registry.restart();
    let v = decide(&engine, &registry, &image).await;
    assert!(v.allowed && v.images[0].trusted(), "{v:?}");
}

/// Overwrites `image`'s `.sig` tag with a signature manifest whose one layer carries a
/// signature that does not verify.
async fn push_bad_signature(registry: &TestRegistry, image: &PushedImage) {
    let pusher = registry.pusher();
    let payload = cosign::simple_signing_payload(&registry.repo_ref("team/app"), &image.digest);
    let mut layer = pusher.push_blob("team/app", &payload).await;
    layer.media_type = SIMPLESIGNING.to_string();
    layer.annotations.insert(
        SIGNATURE_ANNOTATION.to_string(),
        base64::engine::general_purpose::STANDARD.encode("not a signature"),
    );
    let config = pusher.push_blob("team/app", b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [layer.to_json()],
    }))
    .expect("JSON");
    pusher
        .push_manifest(
            "team/app",
            &image.cosign_signature_tag(),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
}
