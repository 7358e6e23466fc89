//! Registry authentication against the real `docker-registry` over TLS with a test CA: Basic
//! (htpasswd bcrypt), the Bearer token flow (`auth.token` with the harness's token server), and
//! credentials from a docker `config.json` given with `--docker-config`.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use signet::config::{CommandConfig, Config};
use signet::image::ImageRef;
use signet::metrics::Metrics;
use signet::reason::Reason;
use signet::registry::{Credentials, HttpRegistry, Registry, RegistryConfig, with_deadline};

use crate::support::registry::TestRegistry;

fn client(
    registry: &TestRegistry,
    creds: Option<(&str, &str)>,
    extra_insecure: &[String],
) -> (HttpRegistry, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let mut config = RegistryConfig {
        insecure: extra_insecure.to_vec(),
        ..RegistryConfig::default()
    };
    if let Some(ca) = registry.ca_pem() {
        config.ca_pem.push(ca.as_bytes().to_vec());
    } else {
        config.insecure.push(registry.addr());
    }
    if let Some((u, p)) = creds {
        config.credentials.insert(
            registry.addr(),
            Credentials {
                username: u.into(),
                password: p.into(),
            },
        );
    }
    (
        HttpRegistry::new(config, metrics.clone()).expect("client"),
        metrics,
    )
}

fn deadline() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn basic_auth_over_tls() {
    let registry = TestRegistry::builder()
        .test_tls()
        .htpasswd("alice", "s3cret")
        .start();
    let pushed = registry.pusher().push_image("team/app", "v1", 1).await;
    let image: ImageRef = pushed
        .reference_by_tag(&registry.addr())
        .parse()
        .expect("ref");

    let (c, metrics) = client(&registry, Some(("alice", "s3cret")), &[]);
    let resolved = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect("resolves with Basic auth");
    assert_eq!(resolved.digest.as_str(), pushed.digest);
    let m = with_deadline(deadline(), c.manifest(&image, &pushed.digest))
        .await
        .expect("fetch");
    assert!(m.is_some());
    assert!(
        metrics
            .encode()
            .contains("signet_registry_requests_total{operation=\"resolve\",status=\"200\"} 1")
    );

    for creds in [None, Some(("alice", "wrong"))] {
        let (c, _) = client(&registry, creds, &[]);
        let e = with_deadline(deadline(), c.resolve(&image))
            .await
            .expect_err("refused");
        assert_eq!(e.reason, Reason::Unauthorized, "{creds:?}: {e:?}");
        assert!(!e.detail.contains("s3cret") && !e.detail.contains("wrong"));
    }

    // Without the test CA, TLS fails: unreachable, never a silent plain-HTTP fallback.
    let c = HttpRegistry::new(
        RegistryConfig {
            credentials: [(
                registry.addr(),
                Credentials {
                    username: "alice".into(),
                    password: "s3cret".into(),
                },
            )]
            .into(),
            ..RegistryConfig::default()
        },
        Arc::new(Metrics::new()),
    )
    .expect("client");
    let e = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect_err("untrusted CA");
    assert_eq!(e.reason, Reason::RegistryUnreachable);
}

#[tokio::test]
async fn bearer_token_flow_over_tls() {
    let registry = TestRegistry::builder()
        .test_tls()
        .token_auth("bob", "pw")
        .start();
    let pushed = registry.pusher().push_image("team/app", "v1", 2).await;
    let image: ImageRef = pushed
        .reference_by_tag(&registry.addr())
        .parse()
        .expect("ref");
    let token = registry.token_server().expect("token server");
    // The harness's token server speaks plain HTTP on 127.0.0.1: allowed because it is listed.
    let realm_host = token
        .realm()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_string();
    let before = token.requests().len();

    let (c, metrics) = client(
        &registry,
        Some(("bob", "pw")),
        std::slice::from_ref(&realm_host),
    );
    let resolved = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect("resolves with a token");
    assert_eq!(resolved.digest.as_str(), pushed.digest);
    // The token is cached: more requests, no more token fetches.
    with_deadline(deadline(), c.manifest(&image, &pushed.digest))
        .await
        .expect("fetch")
        .expect("present");
    with_deadline(deadline(), c.resolve(&image))
        .await
        .expect("again");
    let asked: Vec<_> = token.requests().into_iter().skip(before).collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].granted);
    assert_eq!(
        asked[0].scopes,
        vec!["repository:team/app:pull".to_string()]
    );
    assert!(
        asked[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
    let text = metrics.encode();
    assert!(
        text.contains("signet_registry_requests_total{operation=\"token\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("signet_registry_requests_total{operation=\"resolve\",status=\"401\"} 1"),
        "{text}"
    );

    // Wrong credentials: the token server refuses, the verdict is "unauthorized".
    let (c, _) = client(
        &registry,
        Some(("bob", "nope")),
        std::slice::from_ref(&realm_host),
    );
    let e = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect_err("refused");
    assert_eq!(e.reason, Reason::Unauthorized, "{e:?}");

    // A plain-HTTP realm that is not listed as insecure is not used at all.
    let before = token.requests().len();
    let (c, _) = client(&registry, Some(("bob", "pw")), &[]);
    let e = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect_err("http realm refused");
    assert_eq!(e.reason, Reason::Unauthorized);
    assert!(e.detail.contains("not https"), "{}", e.detail);
    assert_eq!(
        token.requests().len(),
        before,
        "the http realm was not contacted"
    );
}

#[tokio::test]
async fn docker_config_credentials_end_to_end() {
    let registry = TestRegistry::builder()
        .test_tls()
        .htpasswd("carol", "pa:ss")
        .start();
    let pushed = registry.pusher().push_image("team/app", "v1", 3).await;
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, registry.ca_pem().expect("ca")).expect("write ca");
    let docker = dir.path().join("config.json");
    // `auth` is base64("carol:pa:ss"): the password may contain ':'.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("carol:pa:ss");
    std::fs::write(
        &docker,
        format!(r#"{{"auths":{{"https://{}":{{"auth":"{auth}"}},"other.example.com":{{"auth":"{auth}"}}}}}}"#, registry.addr()),
    )
    .expect("write config");
    let reference = pushed.reference_by_tag(&registry.addr());
    let args = signet::cli::Args::try_parse_from([
        "signet",
        "verify",
        "--docker-config",
        docker.to_str().expect("utf-8"),
        "--registry-ca",
        ca.to_str().expect("utf-8"),
        &reference,
    ])
    .expect("flags parse");
    let config = Config::try_from(args).expect("config");
    let CommandConfig::Verify {
        registry: registry_config,
        ..
    } = config.command
    else {
        panic!("not verify");
    };
    assert_eq!(
        registry_config.credentials[&registry.addr()].username,
        "carol"
    );
    let c = HttpRegistry::new(registry_config, Arc::new(Metrics::new())).expect("client");
    let image: ImageRef = reference.parse().expect("ref");
    let resolved = with_deadline(deadline(), c.resolve(&image))
        .await
        .expect("resolves with config.json credentials");
    assert_eq!(resolved.digest.as_str(), pushed.digest);
}

#[tokio::test]
async fn a_per_registry_ca_is_trusted_for_that_registry_only() {
    // Two registries with certificates from the same CA; only the first is configured with it.
    let tls = crate::support::registry::TestTls::generate();
    let start = || {
        TestRegistry::builder()
            .tls(&tls.cert_pem, &tls.key_pem)
            .ca(&tls.ca_pem)
            .start()
    };
    let (a, b) = (start(), start());
    let img_a = a.pusher().push_image("team/app", "v1", 5).await;
    let img_b = b.pusher().push_image("team/app", "v1", 6).await;
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("write ca");
    let args = signet::cli::Args::try_parse_from([
        "signet".to_string(),
        "verify".into(),
        "--registry-ca-for".into(),
        format!("{}={}", a.addr(), ca.display()),
        "x".into(),
    ])
    .expect("flags parse");
    let CommandConfig::Verify {
        registry: config, ..
    } = Config::try_from(args).expect("config").command
    else {
        panic!("not verify");
    };
    let c = HttpRegistry::new(config, Arc::new(Metrics::new())).expect("client");
    let ref_a: ImageRef = img_a.reference_by_tag(&a.addr()).parse().expect("ref");
    let ref_b: ImageRef = img_b.reference_by_tag(&b.addr()).parse().expect("ref");
    let resolved = with_deadline(deadline(), c.resolve(&ref_a))
        .await
        .expect("trusted for a");
    assert_eq!(resolved.digest.as_str(), img_a.digest);
    let e = with_deadline(deadline(), c.resolve(&ref_b))
        .await
        .expect_err("not trusted for b");
    assert_eq!(e.reason, Reason::RegistryUnreachable);
}
