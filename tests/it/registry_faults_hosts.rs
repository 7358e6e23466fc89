//! The registry client against a misbehaving registry (`support::fault`), continued: which
//! hosts it contacts and what it sends them. Token realms on other hosts get no credentials,
//! redirects are bounded and drop credentials across origins, denied addresses and plain HTTP
//! to secure registries are never contacted.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use signet::image::ImageRef;
use signet::metrics::Metrics;
use signet::reason::Reason;
use signet::registry::{DenyList, HttpRegistry, Limits, Registry, RegistryConfig};

use crate::registry_faults::{
    Client, blob_descriptor, client, client_with, image, manifest, manifest_reply, metric, reason,
    within,
};
use crate::support::fault::{FaultServer, Reply, Request};
use crate::support::oci::sha256_digest;

// S3: a realm on another host gets no credentials; the registry's own host name does.
#[tokio::test]
async fn token_realm_on_another_host_gets_no_credentials() {
    let token = FaultServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::with(
            200,
            &[("Content-Type", "application/json")],
            r#"{"token":"t0k","expires_in":300}"#,
        )
    });
    let realm = token.url("/token");
    let body = manifest(4);
    let server = FaultServer::start(move |req: &Request| {
        if req.header("authorization") == Some("Bearer t0k") {
            manifest_reply(&body)
        } else {
            let challenge = format!(r#"Bearer realm="{realm}",service="reg""#);
            Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
        }
    });
    let c = client_with(
        &[&server, &token],
        &[(&server, "alice", "s3cret")],
        DenyList::default(),
        Limits::default(),
    );
    let img = image(&server, "team/app:v1");
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert!(r.is_ok(), "anonymous token still works: {r:?}");
    let asked = token.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].header("authorization"),
        None,
        "no credentials to another host"
    );
    assert!(
        asked[0]
            .path
            .contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{}",
        asked[0].path
    );
    assert!(asked[0].path.contains("service=reg"));
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"token\",status=\"200\"}"
        ),
        1.0
    );

    // The token is cached: a second lookup costs one request, with the token.
    let before = server.requests().len();
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert!(r.is_ok());
    assert_eq!(server.requests().len(), before + 1);
    assert_eq!(token.requests().len(), 1);
}

#[tokio::test]
async fn token_realm_on_the_registry_host_gets_the_credentials() {
    let token = FaultServer::start(|_| Reply::with(200, &[], r#"{"access_token":"t1"}"#));
    let realm = token.url("/token");
    let body = manifest(5);
    let server = FaultServer::start(move |req: &Request| {
        if req.header("authorization") == Some("Bearer t1") {
            manifest_reply(&body)
        } else {
            let challenge = format!(r#"Bearer realm="{realm}""#);
            Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
        }
    });
    let c = client_with(
        &[&server, &token],
        &[(&server, "alice", "s3cret")],
        DenyList::default(),
        Limits::default(),
    );
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    // 127.0.0.1 on another port: same host name, same operator.
    assert_eq!(
        token.requests()[0].header("authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
    // The first registry request carried Basic credentials, to the registry itself.
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
}

// S3: realms that are not acceptable are refused, never contacted.
#[tokio::test]
async fn unusable_challenges_are_unauthorized() {
    let decoy = FaultServer::start(|_| Reply::with(200, &[], r#"{"token":"x"}"#));
    let cases = [
        "Basic realm=\"registry\"".to_string(),
        format!("Bearer realm=\"http://user:pw@{}/token\"", decoy.addr()),
        "Bearer realm=\"file:///etc/passwd\"".to_string(),
        "Bearer service=\"x\"".to_string(),
    ];
    for challenge in cases {
        let c2 = challenge.clone();
        let server =
            FaultServer::start(move |_| Reply::with(401, &[("WWW-Authenticate", c2.as_str())], ""));
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::Unauthorized, "{challenge}: {r:?}");
    }
    assert!(decoy.requests().is_empty(), "no realm was contacted");
    // A token service that refuses.
    let token = FaultServer::start(|_| Reply::status(403));
    let realm = token.url("/token");
    let server = FaultServer::start(move |_| {
        let challenge = format!(r#"Bearer realm="{realm}""#);
        Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
    });
    let c = client_with(
        &[&server, &token],
        &[],
        DenyList::default(),
        Limits::default(),
    );
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::Unauthorized, "{r:?}");
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"token\",status=\"403\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn redirect_loop_is_bounded() {
    let server = FaultServer::start(|req: &Request| {
        let next = format!("{}x", req.path);
        Reply::with(307, &[("Location", next.as_str())], "")
    });
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    let e = r.expect_err("loop");
    assert_eq!(e.reason, Reason::RegistryUnreachable);
    assert!(e.detail.contains("redirected more than"), "{}", e.detail);
    assert_eq!(server.requests().len(), 4, "the request and three hops");
}

// S4: a redirect to another host (127.0.0.2) or another port carries no Authorization.
#[tokio::test]
async fn redirect_to_another_host_or_port_drops_credentials() {
    let blob = b"signature payload".to_vec();
    let digest = sha256_digest(&blob);
    for ip in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST] {
        let b = blob.clone();
        let storage = FaultServer::start_on(ip, move |_| Reply::with(200, &[], b.clone()));
        let location = storage.url("/bucket/object");
        let server =
            FaultServer::start(move |_| Reply::with(307, &[("Location", location.as_str())], ""));
        let c = client_with(
            &[&server, &storage],
            &[(&server, "alice", "s3cret")],
            DenyList::default(),
            Limits::default(),
        );
        let d = blob_descriptor(&digest, blob.len() as u64);
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.blob(&image(&server, "a"), &d),
        )
        .await;
        assert_eq!(
            r.expect("blob through the redirect").as_ref(),
            blob.as_slice()
        );
        assert!(
            server.requests()[0].header("authorization").is_some(),
            "the registry got them"
        );
        let at_storage = storage.requests();
        assert_eq!(at_storage.len(), 1);
        assert_eq!(
            at_storage[0].header("authorization"),
            None,
            "{ip}: credentials crossed a redirect"
        );
    }
}

// S1/S4: a redirect to a denied address is refused before connecting.
#[tokio::test]
async fn redirect_to_a_denied_address_is_refused() {
    let internal = FaultServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| Reply::status(200));
    let targets = [
        internal.url("/x"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::ffff:169.254.169.254]/".to_string(),
    ];
    for target in targets {
        let t = target.clone();
        let server = FaultServer::start(move |_| Reply::with(302, &[("Location", t.as_str())], ""));
        let c = client_with(
            &[&server],
            &[],
            DenyList::with(["127.0.0.2/32".parse().expect("cidr")]),
            Limits::default(),
        );
        let (r, took) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        let e = r.expect_err("denied");
        assert_eq!(e.reason, Reason::RegistryUnreachable);
        assert!(e.detail.contains("deny-list"), "{target}: {}", e.detail);
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    assert!(
        internal.first_bytes().is_empty(),
        "no connection reached the internal host"
    );
}

// S1: the deny-list applies to IP literals, names (at resolution) and metadata addresses.
#[tokio::test]
async fn denied_addresses_are_never_contacted() {
    let internal = FaultServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| Reply::status(200));
    let deny = DenyList::with(["127.0.0.2/32".parse().expect("cidr")]);
    let c = client_with(&[&internal], &[], deny, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&internal, "a:v1")),
    )
    .await;
    let e = r.expect_err("denied");
    assert_eq!(e.reason, Reason::RegistryUnreachable);
    assert!(
        e.detail
            .contains("127.0.0.2 is in the registry deny-list (127.0.0.2/32)"),
        "{}",
        e.detail
    );
    assert!(internal.first_bytes().is_empty());
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"resolve\",status=\"error\"}"
        ),
        1.0
    );

    // The cloud metadata address, refused by the default list before any connection (the
    // error says so: nothing is sent there).
    let c = Client {
        registry: HttpRegistry::new(RegistryConfig::default(), Arc::new(Metrics::new()))
            .expect("client"),
        metrics: Arc::new(Metrics::new()),
    };
    for r in ["169.254.169.254/latest:v1", "169.254.169.254:80/a/b:v1"] {
        let img: ImageRef = r.parse().expect("ref");
        let (res, took) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
        let e = res.expect_err("denied");
        assert!(e.detail.contains("deny-list"), "{r}: {}", e.detail);
        assert!(took < Duration::from_millis(100), "{took:?}");
    }

    // A name is checked once resolved: localhost → 127.0.0.1 (and ::1), both denied here.
    let local = FaultServer::start(|_| Reply::status(200));
    let port = local.port();
    let deny = DenyList::with([
        "127.0.0.0/8".parse().expect("cidr"),
        "::1/128".parse().expect("cidr"),
    ]);
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![format!("localhost:{port}")],
        deny,
        ..RegistryConfig::default()
    };
    let registry = HttpRegistry::new(config, metrics).expect("client");
    let img: ImageRef = format!("localhost:{port}/a:v1").parse().expect("ref");
    let (res, _) = within(Duration::from_secs(3), registry.resolve(&img)).await;
    let e = res.expect_err("denied at resolution");
    assert!(e.detail.contains("deny-list"), "{}", e.detail);
    assert!(
        local.first_bytes().is_empty(),
        "no connection to a denied resolved address"
    );
}

// A registry that is not listed as insecure is never spoken to in plain HTTP.
#[tokio::test]
async fn secure_registries_are_never_contacted_over_plain_http() {
    let server = FaultServer::start(|_| manifest_reply(&manifest(6)));
    let c = client_with(&[], &[], DenyList::default(), Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(server.requests().is_empty(), "no HTTP request");
    assert!(
        server.first_bytes().iter().all(|b| *b == 0x16),
        "only TLS handshakes: {:?}",
        server.first_bytes()
    );
}
