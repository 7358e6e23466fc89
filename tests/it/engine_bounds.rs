//! What one review can cost, and who decides when signature artifacts are junk.
//!
//! - Defects in an image's own signature artifacts (a `.sig` manifest that does not parse, a
//!   layer that claims to be huge, a blob that does not hash to its digest, a referrer manifest
//!   that does not parse) are failed signatures: untrusted, never "could not check", so they
//!   cannot turn `onError: allow` into an admission. Only the registry failing is undecided.
//! - A review lists at most so many distinct images; more is denied at once.
//! - One review's registry requests cannot crowd out another review's on the same host.
//! - A blob listed by many signature layers is fetched once per verification.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use signet::decision::{Engine, ImageUse, Verdict};
use signet::engine;
use signet::metrics::Metrics;
use signet::registry::RegistryConfig;

use crate::support::cosign::{
    self, CosignKey, SIGNATURE_ANNOTATION, SIMPLESIGNING, SignatureLayer,
};
use crate::support::fault::{FaultServer, Reply};
use crate::support::oci::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, sha256_digest};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, engine_over_http, test_options};

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn engine(hosts: &[String], policy: &str) -> (Engine, Arc<Metrics>) {
    engine_over_http(hosts, policy, test_options())
}

fn uses(images: &[String]) -> Vec<ImageUse> {
    images
        .iter()
        .map(|i| ImageUse {
            image: i.clone(),
            containers: vec!["app".into()],
        })
        .collect()
}

async fn decide(engine: &Engine, images: &[String], within: Duration) -> Verdict {
    engine
        .decide(&uses(images), None, Instant::now() + within)
        .await
}

/// A small OCI image manifest, distinct per `seed`.
fn image_manifest(seed: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{seed:064x}"), "size": 2},
        "layers": [],
    }))
    .expect("JSON")
}

/// A registry made of fixed answers, path → (content type, body); everything else is 404.
/// Routes are added after start, since signed payloads name the server's own address.
struct FakeRegistry {
    server: FaultServer,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

/// A fixed answer of [`FakeRegistry`].
#[derive(Clone)]
enum Route {
    Ok(&'static str, Vec<u8>),
    Status(u16),
}

impl FakeRegistry {
    async fn start() -> FakeRegistry {
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let server = {
            let routes = routes.clone();
            FaultServer::start(move |seen| {
                match routes.lock().expect("lock").get(&seen.path).cloned() {
                    Some(Route::Ok(content_type, body)) => {
                        let digest = sha256_digest(&body);
                        Reply::with(
                            200,
                            &[
                                ("Content-Type", content_type),
                                ("Docker-Content-Digest", &digest),
                            ],
                            body,
                        )
                    }
                    Some(Route::Status(s)) => Reply::status(s),
                    None => Reply::status(404),
                }
            })
        };
        FakeRegistry { server, routes }
    }

    fn host(&self) -> String {
        self.server.addr()
    }

    fn route(&self, path: &str, reply: Route) {
        self.routes
            .lock()
            .expect("lock")
            .insert(path.to_string(), reply);
    }

    /// Serves `team/app:<tag>` as a small manifest; returns its reference and digest.
    fn image(&self, tag: &str, seed: u32) -> (String, String) {
        let m = image_manifest(seed);
        let digest = sha256_digest(&m);
        self.route(
            &format!("/v2/team/app/manifests/{tag}"),
            Route::Ok(OCI_MANIFEST, m.clone()),
        );
        self.route(
            &format!("/v2/team/app/manifests/{digest}"),
            Route::Ok(OCI_MANIFEST, m),
        );
        (format!("{}/team/app:{tag}", self.host()), digest)
    }

    /// Serves `blob` and returns a `.sig` layer descriptor for it.
    fn sig_layer(&self, blob: &[u8], signature_b64: &str) -> serde_json::Value {
        let digest = sha256_digest(blob);
        self.route(
            &format!("/v2/team/app/blobs/{digest}"),
            Route::Ok("application/octet-stream", blob.to_vec()),
        );
        json!({
            "mediaType": SIMPLESIGNING,
            "digest": digest,
            "size": blob.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature_b64},
        })
    }

    fn sig_manifest(&self, subject: &str, layers: Vec<serde_json::Value>) {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{:064x}", 7), "size": 2},
            "layers": layers,
        }))
        .expect("JSON");
        self.route(
            &format!(
                "/v2/team/app/manifests/{}.sig",
                subject.replacen(':', "-", 1)
            ),
            Route::Ok(OCI_MANIFEST, body),
        );
    }

    /// A `.sig` layer correctly signed by `key` for `subject`.
    fn good_layer(&self, key: &CosignKey, subject: &str) -> serde_json::Value {
        let payload = cosign::simple_signing_payload(&format!("{}/team/app", self.host()), subject);
        let layer = SignatureLayer::signed(payload.clone(), key);
        self.sig_layer(&payload, &layer.annotations[SIGNATURE_ANNOTATION])
    }
}

fn allow_on_error_policy(host: &str, key: &CosignKey) -> String {
    cosign_policy(
        "prod",
        &format!("{host}/**"),
        "enforce",
        "allow",
        &key.public_key_pem(),
    )
}

fn reason(v: &Verdict) -> String {
    match &v.images[0].status {
        signet::decision::ImageStatus::Checked { policies } => {
            format!("{:?}", policies[0].verdict)
        }
        other => format!("{other:?}"),
    }
}

/// Each kind of junk an attacker who can push to the repository can plant is a failed
/// signature (untrusted), so `onError: allow` does not admit the image; a good signature
/// beside the junk is still found; a registry that fails is still undecided.
#[tokio::test]
async fn junk_signature_artifacts_are_untrusted_not_undecided() {
    let key = CosignKey::p256();
    let fake = FakeRegistry::start().await;
    let (engine, _) = engine(&[fake.host()], &allow_on_error_policy(&fake.host(), &key));

    // A `.sig` manifest that is not JSON.
    let (malformed, digest) = fake.image("malformed", 1);
    fake.route(
        &format!(
            "/v2/team/app/manifests/{}.sig",
            digest.replacen(':', "-", 1)
        ),
        Route::Ok(OCI_MANIFEST, b"{ not json".to_vec()),
    );

    // A layer that claims 64 MiB.
    let (oversized, digest) = fake.image("oversized", 2);
    let mut layer = fake.good_layer(&key, &digest);
    layer["size"] = json!(64u64 << 20);
    fake.sig_manifest(&digest, vec![layer]);

    // A blob that does not hash to its digest.
    let (mismatch, digest) = fake.image("mismatch", 3);
    let layer = fake.good_layer(&key, &digest);
    let blob_path = format!("/v2/team/app/blobs/{}", layer["digest"].as_str().unwrap());
    fake.sig_manifest(&digest, vec![layer.clone()]);
    let size = layer["size"].as_u64().unwrap() as usize;
    fake.route(
        &blob_path,
        Route::Ok("application/octet-stream", vec![b'x'; size]),
    );

    // No `.sig`; a referrer (Sigstore bundle) whose manifest does not parse.
    let (bad_referrer, digest) = fake.image("bad-referrer", 4);
    let junk = b"[1, 2, 3]".to_vec();
    let junk_digest = sha256_digest(&junk);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": junk_digest, "size": junk.len(), "artifactType": BUNDLE}],
    }))
    .unwrap();
    fake.route(
        &format!("/v2/team/app/referrers/{digest}"),
        Route::Ok(OCI_INDEX, index),
    );
    fake.route(
        &format!("/v2/team/app/manifests/{junk_digest}"),
        Route::Ok(OCI_MANIFEST, junk),
    );

    for image in [&malformed, &oversized, &mismatch, &bad_referrer] {
        let v = decide(&engine, std::slice::from_ref(image), Duration::from_secs(5)).await;
        assert!(!v.allowed, "{image}: junk is untrusted: {}", reason(&v));
        assert!(
            matches!(
                &v.images[0].status,
                signet::decision::ImageStatus::Checked { policies }
                    if matches!(*policies[0].verdict, signet::decision::PolicyVerdict::Untrusted { .. })
            ),
            "{image}: {}",
            reason(&v)
        );
    }

    // The newest layer is junk, an older one is good: the good one is still tried.
    let (mixed, digest) = fake.image("mixed", 5);
    let good = fake.good_layer(&key, &digest);
    let mut junk = fake.good_layer(&key, &digest);
    junk["size"] = json!(64u64 << 20);
    fake.sig_manifest(&digest, vec![good, junk]);
    let v = decide(
        &engine,
        std::slice::from_ref(&mixed),
        Duration::from_secs(5),
    )
    .await;
    assert!(v.allowed && v.images[0].trusted(), "{}", reason(&v));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);

    // The registry itself failing is still undecided: onError: allow admits, with a warning.
    let (failing, digest) = fake.image("failing", 6);
    let layer = fake.good_layer(&key, &digest);
    fake.route(
        &format!("/v2/team/app/blobs/{}", layer["digest"].as_str().unwrap()),
        Route::Status(500),
    );
    fake.sig_manifest(&digest, vec![layer]);
    let v = decide(
        &engine,
        std::slice::from_ref(&failing),
        Duration::from_secs(5),
    )
    .await;
    assert!(v.allowed, "{}", reason(&v));
    assert!(
        !v.warnings.is_empty(),
        "admitted under onError, with a warning"
    );
}

/// A review with more distinct images than the limit (default 100) is denied at once,
/// whatever `onError` says and without a registry request: a pod spec has no business
/// listing thousands.
#[tokio::test]
async fn a_review_with_too_many_images_is_denied_at_once() {
    let hole = FaultServer::black_hole();
    let key = CosignKey::p256();
    let (engine, metrics) = engine(&[hole.addr()], &allow_on_error_policy(&hole.addr(), &key));
    for count in [101usize, 20_000] {
        let images: Vec<String> = (0..count)
            .map(|i| format!("{}/team/app{i}:v1", hole.addr()))
            .collect();
        let started = Instant::now();
        let v = decide(&engine, &images, Duration::from_secs(3)).await;
        let took = started.elapsed();
        eprintln!("{count} images: decided in {took:?}");
        assert!(!v.allowed, "{count} images");
        assert!(
            v.denials.iter().any(|d| d.contains("100")),
            "the message names the limit: {:?}",
            v.denials
        );
        assert!(
            took < Duration::from_secs(1),
            "{count} images took {took:?}"
        );
    }
    let requests: u64 = ["resolve", "manifest", "blob", "referrers"]
        .iter()
        .map(|op| {
            metrics
                .registry_requests
                .with_label_values(&[op, "timeout"])
                .get()
        })
        .sum();
    assert_eq!(
        requests, 0,
        "no registry request for a review denied outright"
    );
    // The limit itself is fine.
    let images: Vec<String> = (0..100)
        .map(|i| format!("{}/team/app{i}:v1", hole.addr()))
        .collect();
    let v = decide(&engine, &images, Duration::from_millis(300)).await;
    assert!(
        v.allowed,
        "100 images are within the limit (undecided, onError: allow)"
    );
}

/// A review of many images on a slow (but answering) registry does not starve a concurrent
/// review of one signed image on the same host: one review holds at most a share of the
/// host's connections.
#[tokio::test]
async fn a_crowded_review_does_not_starve_another_on_the_same_host() {
    let key = CosignKey::p256();
    let routes: SlowRoutes = Arc::default();
    let server = {
        let routes = routes.clone();
        FaultServer::start(move |req| {
            let delay = Duration::from_millis(500);
            let path = req.path.split('?').next().unwrap_or_default();
            let reply = match routes.lock().expect("lock").get(path) {
                Some((content_type, body)) => Reply::status(200)
                    .header("Content-Type", content_type)
                    .header("Docker-Content-Digest", &sha256_digest(body))
                    .body(body.clone()),
                // The crowd's images: each is an unsigned manifest.
                None if path.contains("/crowd/") && path.ends_with("/manifests/v1") => {
                    let m = image_manifest(9);
                    Reply::status(200)
                        .header("Content-Type", OCI_MANIFEST)
                        .header("Docker-Content-Digest", &sha256_digest(&m))
                        .body(m)
                }
                None => Reply::status(404),
            };
            reply.delay(delay)
        })
    };
    let host = server.addr();
    serve_signed_app(&routes, &host, &key);
    let policy = cosign_policy(
        "prod",
        &format!("{host}/**"),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let (engine, _) = engine(std::slice::from_ref(&host), &policy);
    let engine = Arc::new(engine);
    let crowd: Vec<String> = (0..100)
        .map(|i| format!("{host}/crowd/app{i}:v1"))
        .collect();
    let crowded = {
        let engine = engine.clone();
        tokio::spawn(async move { decide(&engine, &crowd, Duration::from_secs(15)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let v = decide(
        &engine,
        &[format!("{host}/team/app:v1")],
        Duration::from_secs(3),
    )
    .await;
    let took = started.elapsed();
    eprintln!("the signed image was decided in {took:?} beside a crowded review");
    assert!(
        v.allowed,
        "the signed image is trusted in time: {}",
        reason(&v)
    );
    let crowded = crowded.await.expect("crowded review");
    assert!(!crowded.allowed, "the crowd is unsigned");
}

/// Path → (content type, body) of the slow registry.
type SlowRoutes = Arc<Mutex<HashMap<String, (&'static str, Vec<u8>)>>>;

/// A `.sig` manifest whose 10 layers all name one large blob costs one blob fetch (and the
/// bytes of one), not ten.
#[tokio::test]
async fn a_blob_listed_by_many_signature_layers_is_fetched_once() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 1).await;
    let mut blob = cosign::simple_signing_payload(&registry.repo_ref("team/app"), &image.digest);
    blob.resize(3 << 20, b' ');
    let mut descriptor = pusher.push_blob("team/app", &blob).await;
    descriptor.media_type = SIMPLESIGNING.to_string();
    let layers: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            let mut d = descriptor.clone();
            d.annotations.insert(
                SIGNATURE_ANNOTATION.to_string(),
                base64::engine::general_purpose::STANDARD.encode(format!("not a signature {i}")),
            );
            d.to_json()
        })
        .collect();
    let config = pusher.push_blob("team/app", b"{}").await;
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers,
    }))
    .unwrap();
    pusher
        .push_manifest(
            "team/app",
            &image.cosign_signature_tag(),
            OCI_MANIFEST,
            &sig,
        )
        .await;
    let policy = cosign_policy(
        "prod",
        &format!("{}/**", registry.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let (first, metrics) = engine(&[registry.addr()], &policy);
    let v = decide(
        &first,
        &[image.reference_by_tag(&registry.addr())],
        Duration::from_secs(10),
    )
    .await;
    assert!(!v.allowed, "no layer carries a valid signature");
    let blob_fetches = metrics
        .registry_requests
        .with_label_values(&["blob", "200"])
        .get();
    assert_eq!(blob_fetches, 1, "one fetch of the one blob");

    // The usual case costs what it always did: resolve, the `.sig` manifest, its blob.
    let (fresh, metrics) = engine(&[registry.addr()], &policy);
    let signed = pusher.push_image("team/app", "signed", 2).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let v = decide(
        &fresh,
        &[signed.reference_by_tag(&registry.addr())],
        Duration::from_secs(10),
    )
    .await;
    assert!(v.allowed, "{}", reason(&v));
    let requests: Vec<(&str, u64)> = ["resolve", "manifest", "blob", "referrers"]
        .into_iter()
        .map(|op| {
            let n = metrics
                .registry_requests
                .with_label_values(&[op, "200"])
                .get();
            (op, n)
        })
        .collect();
    assert_eq!(
        requests,
        [
            ("resolve", 1),
            ("manifest", 1),
            ("blob", 1),
            ("referrers", 0)
        ]
    );
}

/// A review that needs more registry requests than its limit is denied as a whole, even under
/// `onError: allow`: the images it could not check are not the registry's failure.
#[tokio::test]
async fn a_review_that_needs_too_many_requests_is_denied() {
    let key = CosignKey::p256();
    let fake = FakeRegistry::start().await;
    let images: Vec<String> = (0..10).map(|i| fake.image(&format!("t{i}"), i).0).collect();
    let set = signet::policy::load_str(
        Path::new("policies.yaml"),
        &allow_on_error_policy(&fake.host(), &key),
    )
    .expect("policy loads");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![fake.host()],
        limits: signet::registry::Limits {
            review_max_requests: 12,
            ..Default::default()
        },
        ..RegistryConfig::default()
    };
    let engine = engine::build(config, set, metrics, test_options()).expect("engine");
    let v = decide(&engine, &images, Duration::from_secs(5)).await;
    assert!(!v.allowed, "{:?}", v.warnings);
    assert!(
        v.denials[0].contains("more than the 12 registry requests one review may make"),
        "{:?}",
        v.denials
    );
    // One image alone fits (resolve, .sig, referrers API, referrers tag schema).
    let v = decide(&engine, &images[..1], Duration::from_secs(5)).await;
    assert!(!v.allowed, "unsigned");
    assert!(
        !v.denials[0].contains("registry requests"),
        "{:?}",
        v.denials
    );
}

/// Reviews that ask about one image at once share one verification. When that verification
/// fails for the review that ran it (here its request budget ran out), another review that
/// was waiting on it verifies for itself rather than inherit the failure.
#[tokio::test]
async fn a_shared_verification_that_fails_for_one_review_is_redone_for_another() {
    let key = CosignKey::p256();
    let routes: SlowRoutes = Arc::default();
    let server = {
        let routes = routes.clone();
        FaultServer::start(move |req| {
            let path = req.path.split('?').next().unwrap_or_default();
            let delay = if path.ends_with(".sig") {
                Duration::from_millis(600)
            } else {
                Duration::ZERO
            };
            match routes.lock().expect("lock").get(path) {
                Some((content_type, body)) => Reply::status(200)
                    .header("Content-Type", content_type)
                    .header("Docker-Content-Digest", &sha256_digest(body))
                    .body(body.clone()),
                None => Reply::status(404),
            }
            .delay(delay)
        })
    };
    let host = server.addr();
    serve_signed_app(&routes, &host, &key);
    let policy = cosign_policy(
        "prod",
        &format!("{host}/**"),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let set = signet::policy::load_str(Path::new("policies.yaml"), &policy).expect("policy");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![host.clone()],
        // The first review spends its two on resolve and `.sig`; its blob is refused.
        limits: signet::registry::Limits {
            review_max_requests: 2,
            ..Default::default()
        },
        ..RegistryConfig::default()
    };
    let engine = Arc::new(engine::build(config, set, metrics, test_options()).expect("engine"));
    let image = format!("{host}/team/app:v1");
    let first = {
        let (engine, image) = (engine.clone(), image.clone());
        tokio::spawn(async move { decide(&engine, &[image], Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The tag is resolved (cached), so this review needs only `.sig` and the blob.
    let second = decide(
        &engine,
        std::slice::from_ref(&image),
        Duration::from_secs(5),
    )
    .await;
    let first = first.await.expect("first review");
    assert!(!first.allowed, "the first review ran out of requests");
    assert!(
        second.allowed,
        "the second verified for itself: {}",
        reason(&second)
    );
}

/// `team/app:v1` on the fake registry at `host`, with a Cosign `.sig` signed by `key`.
fn serve_signed_app(routes: &SlowRoutes, host: &str, key: &CosignKey) {
    let m = image_manifest(1);
    let digest = sha256_digest(&m);
    let payload = cosign::simple_signing_payload(&format!("{host}/team/app"), &digest);
    let layer = SignatureLayer::signed(payload.clone(), key);
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{:064x}", 7), "size": 2},
        "layers": [{
            "mediaType": SIMPLESIGNING,
            "digest": sha256_digest(&payload),
            "size": payload.len(),
            "annotations": {SIGNATURE_ANNOTATION: layer.annotations[SIGNATURE_ANNOTATION]},
        }],
    }))
    .unwrap();
    {
        let mut r = routes.lock().unwrap();
        r.insert("/v2/team/app/manifests/v1".into(), (OCI_MANIFEST, m));
        r.insert(
            format!(
                "/v2/team/app/manifests/{}.sig",
                digest.replacen(':', "-", 1)
            ),
            (OCI_MANIFEST, sig),
        );
        r.insert(
            format!("/v2/team/app/blobs/{}", sha256_digest(&payload)),
            ("application/octet-stream", payload),
        );
    }
}
