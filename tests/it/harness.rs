//! Self-tests of the test harness: if these fail, fix the harness before reading any other
//! integration-test failure. They check the registry process, the pusher's output read back
//! with the Accept quirk, the referrers tag schema, the Cosign layout, and (independently of
//! signet) the signatures with `openssl`.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Method, StatusCode};

use crate::support::cosign::{
    self, CosignKey, KeyKind, SIGNATURE_ANNOTATION, SIMPLESIGNING, SignatureLayer,
};
use crate::support::oci::{
    self, MANIFEST_ACCEPT, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, annotations, sha256_digest,
};
use crate::support::registry::TestRegistry;
use crate::support::{fixtures, layout};

async fn get_status(pusher: &oci::Pusher, path: &str) -> StatusCode {
    pusher
        .request(Method::GET, path)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn registry_answers_v2_and_stops_and_restarts() {
    let mut registry = TestRegistry::start();
    assert!(registry.addr().starts_with("127.0.0.1:"));
    let pusher = registry.pusher();
    assert_eq!(get_status(&pusher, "/v2/").await, StatusCode::OK);
    let image = pusher.push_image("team/app", "v1", 1).await;

    registry.stop();
    assert!(!registry.is_running());
    // A fresh client: a pooled keep-alive connection would see the kill as an incomplete
    // message instead of a refused connection.
    let err = registry
        .pusher()
        .request(Method::GET, "/v2/")
        .send()
        .await
        .expect_err("a stopped registry refuses connections");
    assert!(err.is_connect(), "{err:?}");

    registry.restart();
    assert!(registry.is_running());
    let fetched = pusher
        .get_manifest("team/app", "v1")
        .await
        .expect("content survives a restart");
    assert_eq!(fetched.digest(), image.digest);
}

#[tokio::test]
async fn pushed_image_reads_back_only_with_the_oci_accept_header() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 7).await;
    let other = pusher.push_image("team/app", "v2", 8).await;
    assert_ne!(image.digest, other.digest, "distinct per seed");

    for reference in ["v1", image.digest.as_str()] {
        let fetched = pusher
            .get_manifest("team/app", reference)
            .await
            .expect("manifest");
        assert_eq!(fetched.media_type, OCI_MANIFEST);
        assert_eq!(fetched.bytes, image.manifest);
        assert_eq!(fetched.digest(), image.digest);
        assert_eq!(
            fetched.header_digest.as_deref(),
            Some(image.digest.as_str())
        );
    }
    assert_eq!(image.size, image.manifest.len() as u64);

    // distribution's quirk: without the OCI types in Accept, an OCI manifest is a 404.
    let status = get_status(&pusher, "/v2/team/app/manifests/v1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Accept quirk changed?");

    // Blobs are all there.
    let manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    for digest in [
        manifest["config"]["digest"].as_str().unwrap(),
        manifest["layers"][0]["digest"].as_str().unwrap(),
    ] {
        let blob = pusher.get_blob("team/app", digest).await.expect("blob");
        assert_eq!(sha256_digest(&blob), digest);
    }
}

#[tokio::test]
async fn pushed_index_reads_back_with_its_children() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let index = pusher.push_multiarch("team/multi", "1.0", 3).await;
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(index.children.len(), 2);

    let fetched = pusher
        .get_manifest("team/multi", "1.0")
        .await
        .expect("index");
    assert_eq!(fetched.media_type, OCI_INDEX);
    assert_eq!(fetched.digest(), index.digest);
    let entries = fetched.json()["manifests"].as_array().unwrap().clone();
    let platforms: Vec<&str> = entries
        .iter()
        .map(|e| e["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    for (entry, child) in entries.iter().zip(&index.children) {
        assert_eq!(entry["digest"], child.digest.as_str());
        let fetched = pusher
            .get_manifest("team/multi", &child.digest)
            .await
            .expect("child manifest");
        assert_eq!(fetched.digest(), child.digest);
    }
}

#[tokio::test]
async fn referrers_are_listed_in_the_tag_schema_index() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 1).await;

    let first = pusher
        .push_referrer(
            "team/app",
            &image,
            "application/vnd.example.sbom",
            OCI_EMPTY,
            vec![(
                "application/json",
                b"{\"sbom\":1}".to_vec(),
                annotations(&[("org.example.layer", "x")]),
            )],
            annotations(&[("org.example.kind", "sbom")]),
        )
        .await;
    let second = pusher
        .push_referrer(
            "team/app",
            &image,
            "application/vnd.cncf.notary.signature",
            "application/vnd.cncf.notary.signature",
            vec![("application/jose+json", b"{}".to_vec(), Default::default())],
            Default::default(),
        )
        .await;

    let index = pusher
        .get_referrers_index("team/app", &image.digest)
        .await
        .expect("sha256-<hex> index");
    assert_eq!(index["mediaType"], OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index:#}");
    assert_eq!(entries[0]["digest"], first.as_str());
    assert_eq!(entries[0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(entries[0]["annotations"]["org.example.kind"], "sbom");
    assert_eq!(entries[1]["digest"], second.as_str());

    let referrer = pusher
        .get_manifest("team/app", &first)
        .await
        .expect("referrer manifest stored");
    let referrer = referrer.json();
    assert_eq!(referrer["subject"]["digest"], image.digest.as_str());
    assert_eq!(referrer["artifactType"], "application/vnd.example.sbom");

    // No referrers API here: clients must fall back to the tag schema.
    let status = get_status(&pusher, &format!("/v2/team/app/referrers/{}", image.digest)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cosign_signature_has_cosigns_layout_and_appends() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 1).await;
    let key = CosignKey::p256();

    let signed = cosign::sign_image(&registry, "team/app", &image, &key).await;
    let expected_payload = format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"{}/team/app\"}},\"image\":{{\"docker-manifest-digest\":\"{}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}",
        registry.addr(),
        image.digest
    );
    assert_eq!(
        String::from_utf8(signed.payload.clone()).unwrap(),
        expected_payload
    );
    assert_eq!(signed.manifest.tag, image.cosign_signature_tag());

    let fetched = pusher
        .get_manifest("team/app", &image.cosign_signature_tag())
        .await
        .expect(".sig manifest");
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    let manifest = fetched.json();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], SIMPLESIGNING);
    let blob = pusher
        .get_blob("team/app", layer["digest"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(blob, signed.payload);
    let stored_signature = BASE64
        .decode(layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap())
        .unwrap();
    assert_eq!(stored_signature, signed.signature);

    // What the registry holds verifies with openssl, independently of both signer and signet.
    let out = openssl_verify(&key, &blob, &stored_signature);
    assert_eq!(out.trim(), "Verified OK");

    // A second signature (another key, a payload naming another digest) is appended.
    let other_key = CosignKey::generate(KeyKind::Ed25519);
    let elsewhere = format!("sha256:{}", "ab".repeat(32));
    let foreign = cosign::simple_signing_payload(&registry.repo_ref("team/app"), &elsewhere);
    let second =
        cosign::sign_payload(&registry, "team/app", &image, &other_key, foreign.clone()).await;
    assert_eq!(second.manifest.layers.len(), 2);
    let manifest = pusher
        .get_manifest("team/app", &image.cosign_signature_tag())
        .await
        .unwrap()
        .json();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["digest"], sha256_digest(&signed.payload).as_str());
    assert_eq!(layers[1]["digest"], sha256_digest(&foreign).as_str());
    let config = pusher
        .get_blob("team/app", manifest["config"]["digest"].as_str().unwrap())
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

/// Runs openssl on (payload, signature, public key) in a temp dir; returns stdout+stderr.
fn openssl_verify(key: &CosignKey, payload: &[u8], signature: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("pub.pem"), key.public_key_pem()).unwrap();
    std::fs::write(path("sig.der"), signature).unwrap();
    std::fs::write(path("payload"), payload).unwrap();
    let output = match key.kind().openssl_digest() {
        Some(digest) => Command::new("openssl")
            .args(["dgst", digest, "-verify"])
            .arg(path("pub.pem"))
            .arg("-signature")
            .arg(path("sig.der"))
            .arg(path("payload"))
            .output(),
        None => Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(path("pub.pem"))
            .arg("-sigfile")
            .arg(path("sig.der"))
            .arg("-in")
            .arg(path("payload"))
            .output(),
    }
    .expect("run openssl (scripts/install-test-deps.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn signer_cross_checks_with_openssl_for_every_key_kind() {
    let payload = cosign::simple_signing_payload(
        "127.0.0.1:5000/team/app",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    for kind in [
        KeyKind::P256,
        KeyKind::P384,
        KeyKind::P384Sha256,
        KeyKind::Ed25519,
        KeyKind::Rsa2048,
    ] {
        let key = CosignKey::generate(kind);
        assert!(
            key.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        let signature = key.sign(&payload);
        let out = openssl_verify(&key, &payload, &signature);
        assert!(
            out.contains("Verified OK") || out.contains("Signature Verified Successfully"),
            "{kind:?}: {out}"
        );

        let mut tampered = payload.clone();
        tampered[10] ^= 1;
        let out = openssl_verify(&key, &tampered, &signature);
        assert!(
            !out.contains("Verified OK") && !out.contains("Verified Successfully"),
            "{kind:?} accepted a tampered payload: {out}"
        );

        let layer = SignatureLayer::signed(payload.clone(), &key);
        assert_eq!(layer.media_type, SIMPLESIGNING);
        let out = openssl_verify(&key, &payload, &layer.signature().unwrap());
        assert!(out.contains("Verified"), "{kind:?}: {out}");
    }
    assert_ne!(
        CosignKey::rsa().public_key_der(),
        CosignKey::rsa_other().public_key_der()
    );
    assert_eq!(
        CosignKey::rsa().public_key_der(),
        CosignKey::generate(KeyKind::Rsa2048).public_key_der(),
        "RSA keys are cached per binary"
    );
}

#[tokio::test]
async fn tls_htpasswd_registry_requires_credentials() {
    let registry = TestRegistry::builder()
        .test_tls()
        .htpasswd("alice", "s3cret")
        .start();
    assert!(registry.base_url().starts_with("https://127.0.0.1:"));
    assert!(registry.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));
    let pusher = registry.pusher();

    let anonymous = pusher.clone().anonymous();
    assert_eq!(
        get_status(&anonymous, "/v2/").await,
        StatusCode::UNAUTHORIZED
    );
    let wrong = pusher.clone().with_credentials("alice", "wrong");
    assert_eq!(get_status(&wrong, "/v2/").await, StatusCode::UNAUTHORIZED);
    assert_eq!(get_status(&pusher, "/v2/").await, StatusCode::OK);

    let image = pusher.push_image("team/app", "v1", 1).await;
    let fetched = pusher.get_manifest("team/app", "v1").await.unwrap();
    assert_eq!(fetched.digest(), image.digest);
    let status = anonymous
        .request(Method::GET, "/v2/team/app/manifests/v1")
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A client that does not trust the test CA fails the handshake.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(
            crate::support::registry::TestTls::generate()
                .ca_pem
                .as_bytes(),
        )
        .unwrap()])
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{}/v2/", registry.base_url()))
        .send()
        .await
        .expect_err("unknown CA");
    assert!(err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn two_registries_can_serve_one_storage() {
    let plain = TestRegistry::start();
    let image = plain.pusher().push_image("team/app", "v1", 5).await;
    let tls = TestRegistry::builder()
        .test_tls()
        .storage_dir(plain.storage_dir())
        .start();
    let fetched = tls.pusher().get_manifest("team/app", "v1").await.unwrap();
    assert_eq!(fetched.digest(), image.digest);
}

#[test]
fn admission_fixtures_load_and_images_can_be_replaced() {
    let names = fixtures::review_names();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let review = fixtures::load_review(name);
        assert_eq!(review["kind"], "AdmissionReview", "{name}");
        assert_eq!(fixtures::review_bytes(name).first(), Some(&b'{'));
    }

    let mut review = fixtures::load_review("pod-update-image");
    let replaced = fixtures::replace_image(&mut review, "nginx:1.27", "127.0.0.1:1/team/app:v1");
    assert_eq!(replaced, 1, "oldObject holds nginx:1.27");
    assert_eq!(
        review["request"]["oldObject"]["spec"]["containers"][0]["image"],
        "127.0.0.1:1/team/app:v1"
    );

    let review = fixtures::load_review("pod-create-init-digest-tag.json");
    let images = fixtures::images_in(&review);
    let found: Vec<&str> = images.iter().map(|(_, image)| image.as_str()).collect();
    assert!(found.contains(&"busybox"), "{found:?}");
    assert!(found.contains(&"localhost:5000/x/y:1"), "{found:?}");
    let (pointer, _) = &images[0];
    let review = fixtures::with_images(review.clone(), &[(pointer.as_str(), "example.com/new:1")]);
    assert_eq!(review.pointer(pointer).unwrap(), "example.com/new:1");
}

/// Run only by [`a_missing_registry_binary_fails_with_the_install_hint`], in a child process.
#[test]
#[ignore = "runs in a child process with a missing registry binary"]
fn start_registry_in_child() {
    let _registry = TestRegistry::start();
}

#[test]
fn a_missing_registry_binary_fails_with_the_install_hint() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "harness::start_registry_in_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(
            crate::support::registry::BINARY_ENV,
            "/nonexistent/docker-registry",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a missing registry must fail, not pass"
    );
    assert!(
        stderr.contains("run scripts/install-test-deps.sh"),
        "{stderr}"
    );
}

#[tokio::test]
async fn notation_layout_pushes_with_a_rebuilt_referrers_index() {
    let Some(dir) = layout::notation_layout("e2e-valid-multiple-signatures") else {
        return;
    };
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let pushed = layout::push_oci_layout(&pusher, "notation/multi", &dir).await;
    let subject = pushed.subject("v1");
    assert_eq!(
        subject.digest,
        "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    );
    let fetched = pusher.get_manifest("notation/multi", "v1").await.unwrap();
    assert_eq!(fetched.digest(), subject.digest);

    // The layout's own index lists one signature (stale); the rebuilt one lists both.
    let index = pusher
        .get_referrers_index("notation/multi", &subject.digest)
        .await
        .unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{index:#}");
    for digest in &pushed.referrers {
        assert!(listed.contains(&digest.as_str()), "{digest} in {listed:?}");
    }
    for entry in index["manifests"].as_array().unwrap() {
        assert_eq!(
            entry["artifactType"],
            "application/vnd.cncf.notary.signature"
        );
    }
}

#[tokio::test]
async fn token_auth_registry_runs_the_bearer_challenge_flow() {
    let registry = TestRegistry::builder().token_auth("bob", "hunter2").start();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 1).await;

    // Anonymous: 401 with a Bearer challenge naming our token server and the scope.
    let client = registry.client();
    let url = format!("{}/v2/team/app/manifests/v1", registry.base_url());
    let response = client
        .get(&url)
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let token_server = registry.token_server().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&token_server.realm()), "{challenge}");
    assert!(
        challenge.contains("scope=\"repository:team/app:pull\""),
        "{challenge}"
    );

    // The token request with the right credentials gets a token the registry accepts.
    let token_url = format!(
        "{}?service={}&scope=repository%3Ateam%2Fapp%3Apull",
        token_server.realm(),
        crate::support::token::SERVICE
    );
    let denied = client
        .get(&token_url)
        .basic_auth("bob", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = client
        .get(&token_url)
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["token"].as_str().unwrap();
    let response = client
        .get(&url)
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256_digest(&bytes), image.digest);

    // A pull-only token does not allow a push.
    let response = client
        .post(format!(
            "{}/v2/team/app/blobs/uploads/",
            registry.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let requests = token_server.requests();
    assert_eq!(requests.len(), 2);
    assert!(!requests[0].granted && requests[1].granted);
    assert_eq!(requests[1].scopes, ["repository:team/app:pull"]);
}

#[tokio::test]
async fn fake_servers_hang_and_lie_on_request() {
    use crate::support::fault::{FaultServer, Reply};
    use std::time::Duration;

    let hole = FaultServer::black_hole();
    let err = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .get(format!("http://{}/v2/", hole.addr()))
        .send()
        .await
        .expect_err("a black hole never answers");
    assert!(err.is_timeout(), "{err:?}");

    let liar = FaultServer::start(|request| {
        if request.path.starts_with("/v2/team/app/manifests/") {
            Reply::status(200)
                .header("Content-Type", OCI_MANIFEST)
                .header("Docker-Content-Digest", &sha256_digest(b"something else"))
                .body(&b"{\"schemaVersion\":2}"[..])
        } else {
            Reply::status(429).header("Retry-After", "1")
        }
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{}/v2/team/app/manifests/v1", liar.addr()))
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let claimed = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().await.unwrap();
    assert_ne!(claimed, sha256_digest(&body), "the liar lies");
    let response = client
        .get(format!("http://{}/v2/", liar.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let seen = liar.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("Accept"), Some(MANIFEST_ACCEPT));
}
