//! The registry client against a misbehaving registry (`support::faulty`): every fault of the
//! security checklist §1.3 (R1–R13) and the SSRF and redirect rules of §1.4 (S1, S3, S4). Each
//! test asserts the outcome and its [`Reason`], that the answer came before the review
//! deadline, and, where a fault could cost memory, that the process's RSS stayed bounded.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signet::image::{Digest, ImageRef};
use signet::metrics::Metrics;
use signet::reason::Reason;
use signet::registry::{
    Credentials, DenyList, Descriptor, HttpRegistry, Limits, Registry, RegistryConfig,
    RegistryError, with_deadline,
};

use crate::support::faulty::{FaultyServer, Reply, Seen, rss_bytes};
use crate::support::oci::sha256_digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A small but valid OCI image manifest; `seed` makes distinct ones.
fn manifest(seed: u32) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":2}},"layers":[]}}"#,
        seed
    )
    .into_bytes()
}

fn manifest_reply(body: &[u8]) -> Reply {
    let digest = sha256_digest(body);
    Reply::with(
        200,
        &[
            ("Content-Type", OCI_MANIFEST),
            ("Docker-Content-Digest", digest.as_str()),
        ],
        body.to_vec(),
    )
}

struct Client {
    registry: HttpRegistry,
    metrics: Arc<Metrics>,
}

fn limits(request_timeout: Duration) -> Limits {
    Limits {
        request_timeout,
        ..Limits::default()
    }
}

/// A client that reaches `insecure` hosts over plain HTTP with `credentials` per host.
fn client_with(
    insecure: &[&FaultyServer],
    credentials: &[(&FaultyServer, &str, &str)],
    deny: DenyList,
    limits: Limits,
) -> Client {
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: insecure.iter().map(|s| s.host()).collect(),
        credentials: credentials
            .iter()
            .map(|(s, u, p)| {
                (
                    s.host(),
                    Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    },
                )
            })
            .collect(),
        deny,
        limits,
        ..RegistryConfig::default()
    };
    Client {
        registry: HttpRegistry::new(config, metrics.clone()).expect("client"),
        metrics,
    }
}

fn client(server: &FaultyServer, limits: Limits) -> Client {
    client_with(&[server], &[], DenyList::default(), limits)
}

fn image(server: &FaultyServer, rest: &str) -> ImageRef {
    format!("{}/{rest}", server.host())
        .parse()
        .expect("image ref")
}

/// Runs `f` as the engine does: inside the review deadline, cancelled at it. Returns the
/// result (a `DeadlineExceeded` error when cancelled) and asserts it came before the deadline
/// plus a small scheduling margin.
async fn within<T>(
    deadline: Duration,
    f: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> (Result<T, RegistryError>, Duration) {
    let started = Instant::now();
    let at = started + deadline;
    let r = match tokio::time::timeout_at(at.into(), with_deadline(at, f)).await {
        Ok(r) => r,
        Err(_) => Err(RegistryError::new(Reason::DeadlineExceeded, "deadline")),
    };
    let took = started.elapsed();
    assert!(
        took < deadline + Duration::from_millis(300),
        "answered after {took:?}, deadline {deadline:?}"
    );
    (r, took)
}

fn reason<T: std::fmt::Debug>(r: &Result<T, RegistryError>) -> Reason {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.reason,
    }
}

fn metric(c: &Client, line_prefix: &str) -> f64 {
    c.metrics
        .encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn blob_descriptor(digest: &str, size: u64) -> Descriptor {
    serde_json::from_value(serde_json::json!({
        "mediaType": "application/octet-stream",
        "digest": digest,
        "size": size,
    }))
    .expect("descriptor")
}

// R1: accepts, reads the request, never answers.
#[tokio::test]
async fn hang_after_accept_fails_within_the_request_timeout() {
    let server = FaultyServer::start(|_| Reply::Hang).await;
    let c = client(&server, limits(Duration::from_millis(500)));
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(server.seen().len(), 1, "a timeout is not retried");
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"resolve\",status=\"timeout\"}"
        ),
        1.0
    );
}

// R1 with the deadline shorter than the per-request timeout: the deadline wins.
#[tokio::test]
async fn hang_is_cut_at_the_review_deadline() {
    let server = FaultyServer::start(|_| Reply::Hang).await;
    let c = client(&server, limits(Duration::from_secs(30)));
    let (r, took) = within(
        Duration::from_millis(800),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::DeadlineExceeded, "{r:?}");
    assert!(took < Duration::from_millis(1100), "{took:?}");
}

// R2: one byte every 100 ms beats an idle timeout but not a total one.
#[tokio::test]
async fn trickled_manifest_fails_at_the_request_timeout() {
    let body = manifest(1);
    let digest = sha256_digest(&body);
    let server = FaultyServer::start(move |_| Reply::Trickle {
        headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        body: body.clone(),
        every: Duration::from_millis(100),
    })
    .await;
    let c = client(&server, limits(Duration::from_millis(700)));
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.manifest(&image(&server, "a"), &digest),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(took < Duration::from_millis(1200), "{took:?}");
}

// R3: nothing listens.
#[tokio::test]
async fn connection_refused_fails_fast_without_retries() {
    let server = FaultyServer::start(|_| Reply::status(200)).await;
    let host = server.host();
    let c = client(&server, Limits::default());
    drop(server);
    let img: ImageRef = format!("{host}/a:v1").parse().expect("ref");
    let (r, took) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(took < Duration::from_millis(300), "{took:?}");
}

// R4: 500 is not transient; 502/503/504 are retried at most twice, with backoff.
#[tokio::test]
async fn server_errors_are_retried_boundedly() {
    for status in [500u16, 502, 503, 504] {
        let server = FaultyServer::start(move |_| Reply::status(status)).await;
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::RegistryUnreachable, "{status}: {r:?}");
        let expected = if status == 500 { 1 } else { 3 };
        assert_eq!(server.seen().len(), expected, "attempts for {status}");
        assert_eq!(
            metric(
                &c,
                &format!(
                    "signet_registry_requests_total{{operation=\"resolve\",status=\"{status}\"}}"
                )
            ),
            expected as f64
        );
    }
}

#[tokio::test]
async fn transient_503_then_success() {
    let body = manifest(2);
    let want = sha256_digest(&body);
    let n = AtomicUsize::new(0);
    let server = FaultyServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::status(503)
        } else {
            manifest_reply(&body)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(r.expect("third attempt succeeds").digest.as_str(), want);
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"resolve\",status=\"503\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"resolve\",status=\"200\"}"
        ),
        1.0
    );
}

// A connection broken before the answer is retried (GET/HEAD are idempotent).
#[tokio::test]
async fn broken_connection_then_success() {
    let body = manifest(11);
    let n = AtomicUsize::new(0);
    let server = FaultyServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Close
        } else {
            manifest_reply(&body)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(server.seen().len(), 2);
    assert_eq!(
        metric(
            &c,
            "signet_registry_requests_total{operation=\"resolve\",status=\"error\"}"
        ),
        1.0
    );
    // No compression is negotiated, so no decompression bomb can arrive.
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.header("accept-encoding").is_none())
    );
}

// R5: a Retry-After too long to wait is remembered for the host (at most 60 s): later
// requests fail at once as throttled, without adding load.
#[tokio::test]
async fn a_long_retry_after_keeps_signet_away_from_the_host() {
    let server = FaultyServer::start(|_| Reply::with(429, &[("Retry-After", "30")], "")).await;
    let c = client(&server, Limits::default());
    for _ in 0..3 {
        let (r, took) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::Throttled, "{r:?}");
        assert!(took < Duration::from_millis(300));
    }
    assert_eq!(server.seen().len(), 1, "the registry was asked once");
}

// Retries never sleep past the deadline: with 250 ms left, a 503 is final.
#[tokio::test]
async fn no_retry_when_the_deadline_leaves_no_room() {
    let server = FaultyServer::start(|_| Reply::with(503, &[("Retry-After", "1")], "")).await;
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_millis(600),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert_eq!(server.seen().len(), 1);
    assert!(
        took < Duration::from_millis(300),
        "failed at once: {took:?}"
    );
}

// R5: 429 with Retry-After in seconds, as an HTTP date, absent, garbage and too long.
#[tokio::test]
async fn throttling_honours_retry_after_inside_the_deadline() {
    let body = manifest(3);
    let n = AtomicUsize::new(0);
    let b = body.clone();
    let server = FaultyServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::with(429, &[("Retry-After", "1")], "")
        } else {
            manifest_reply(&b)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(took >= Duration::from_secs(1), "waited as told: {took:?}");

    // An HTTP date two seconds ahead is within the 2 s cap.
    let n = AtomicUsize::new(0);
    let b = body.clone();
    let server = FaultyServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(1));
            Reply::with(429, &[("Retry-After", at.as_str())], "")
        } else {
            manifest_reply(&b)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(4),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");

    for retry_after in [None, Some("soon")] {
        let server = FaultyServer::start(move |_| match retry_after {
            Some(v) => Reply::with(429, &[("Retry-After", v)], ""),
            None => Reply::status(429),
        })
        .await;
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::Throttled, "{retry_after:?}: {r:?}");
        // One attempt and five retries of a request that only ever meets 429s.
        assert_eq!(
            server.seen().len(),
            6,
            "bounded retries for {retry_after:?}"
        );
        // Regression: a short Retry-After used to bar every other request to the host for
        // its duration, so one unlucky request failed the images of concurrent reviews.
        let _ = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "b:v1")),
        )
        .await;
        assert!(
            server.seen().len() > 6,
            "the next request must reach the registry ({retry_after:?})"
        );
    }

    // An hour: throttled at once, no sleep.
    let server = FaultyServer::start(|_| Reply::with(429, &[("Retry-After", "3600")], "")).await;
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::Throttled);
    assert!(r.unwrap_err().detail.contains("429"));
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(server.seen().len(), 1);

    // One second, but only 500 ms left: throttled at once.
    let server = FaultyServer::start(|_| Reply::with(429, &[("Retry-After", "1")], "")).await;
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_millis(500),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::Throttled);
    assert!(took < Duration::from_millis(300), "{took:?}");
}

// S3: a realm on another host gets no credentials; the registry's own host name does.
#[tokio::test]
async fn token_realm_on_another_host_gets_no_credentials() {
    let token = FaultyServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::with(
            200,
            &[("Content-Type", "application/json")],
            r#"{"token":"t0k","expires_in":300}"#,
        )
    })
    .await;
    let realm = token.url("/token");
    let body = manifest(4);
    let server = FaultyServer::start(move |req: &Seen| {
        if req.header("authorization") == Some("Bearer t0k") {
            manifest_reply(&body)
        } else {
            let challenge = format!(r#"Bearer realm="{realm}",service="reg""#);
            Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
        }
    })
    .await;
    let c = client_with(
        &[&server, &token],
        &[(&server, "alice", "s3cret")],
        DenyList::default(),
        Limits::default(),
    );
    let img = image(&server, "team/app:v1");
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert!(r.is_ok(), "anonymous token still works: {r:?}");
    let asked = token.seen();
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
    let before = server.seen().len();
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert!(r.is_ok());
    assert_eq!(server.seen().len(), before + 1);
    assert_eq!(token.seen().len(), 1);
}

#[tokio::test]
async fn token_realm_on_the_registry_host_gets_the_credentials() {
    let token = FaultyServer::start(|_| Reply::with(200, &[], r#"{"access_token":"t1"}"#)).await;
    let realm = token.url("/token");
    let body = manifest(5);
    let server = FaultyServer::start(move |req: &Seen| {
        if req.header("authorization") == Some("Bearer t1") {
            manifest_reply(&body)
        } else {
            let challenge = format!(r#"Bearer realm="{realm}""#);
            Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
        }
    })
    .await;
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
        token.seen()[0].header("authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
    // The first registry request carried Basic credentials, to the registry itself.
    assert_eq!(
        server.seen()[0].header("authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
}

// S3: realms that are not acceptable are refused, never contacted.
#[tokio::test]
async fn unusable_challenges_are_unauthorized() {
    let decoy = FaultyServer::start(|_| Reply::with(200, &[], r#"{"token":"x"}"#)).await;
    let cases = [
        "Basic realm=\"registry\"".to_string(),
        format!("Bearer realm=\"http://user:pw@{}/token\"", decoy.host()),
        "Bearer realm=\"file:///etc/passwd\"".to_string(),
        "Bearer service=\"x\"".to_string(),
    ];
    for challenge in cases {
        let c2 = challenge.clone();
        let server = FaultyServer::start(move |_| {
            Reply::with(401, &[("WWW-Authenticate", c2.as_str())], "")
        })
        .await;
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::Unauthorized, "{challenge}: {r:?}");
    }
    assert!(decoy.seen().is_empty(), "no realm was contacted");
    // A token service that refuses.
    let token = FaultyServer::start(|_| Reply::status(403)).await;
    let realm = token.url("/token");
    let server = FaultyServer::start(move |_| {
        let challenge = format!(r#"Bearer realm="{realm}""#);
        Reply::with(401, &[("WWW-Authenticate", challenge.as_str())], "")
    })
    .await;
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
    let server = FaultyServer::start(|req: &Seen| {
        let next = format!("{}x", req.path);
        Reply::with(307, &[("Location", next.as_str())], "")
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    let e = r.expect_err("loop");
    assert_eq!(e.reason, Reason::RegistryUnreachable);
    assert!(e.detail.contains("redirected more than"), "{}", e.detail);
    assert_eq!(server.seen().len(), 4, "the request and three hops");
}

// S4: a redirect to another host (127.0.0.2) or another port carries no Authorization.
#[tokio::test]
async fn redirect_to_another_host_or_port_drops_credentials() {
    let blob = b"signature payload".to_vec();
    let digest = sha256_digest(&blob);
    for ip in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST] {
        let b = blob.clone();
        let storage = FaultyServer::start_on(ip, move |_| Reply::with(200, &[], b.clone())).await;
        let location = storage.url("/bucket/object");
        let server =
            FaultyServer::start(move |_| Reply::with(307, &[("Location", location.as_str())], ""))
                .await;
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
            server.seen()[0].header("authorization").is_some(),
            "the registry got them"
        );
        let at_storage = storage.seen();
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
    let internal =
        FaultyServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| Reply::status(200)).await;
    let targets = [
        internal.url("/x"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::ffff:169.254.169.254]/".to_string(),
    ];
    for target in targets {
        let t = target.clone();
        let server =
            FaultyServer::start(move |_| Reply::with(302, &[("Location", t.as_str())], "")).await;
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
    let internal =
        FaultyServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| Reply::status(200)).await;
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
    let local = FaultyServer::start(|_| Reply::status(200)).await;
    let port = local.addr.port();
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
    let server = FaultyServer::start(|_| manifest_reply(&manifest(6))).await;
    let c = client_with(&[], &[], DenyList::default(), Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(server.seen().is_empty(), "no HTTP request");
    assert!(
        server.first_bytes().iter().all(|b| *b == 0x16),
        "only TLS handshakes: {:?}",
        server.first_bytes()
    );
}

// R6: never trust Docker-Content-Digest, never accept bytes for the wrong digest.
#[tokio::test]
async fn digest_lies_are_digest_mismatches() {
    let body = manifest(7);
    let other = sha256_digest(&manifest(8));
    let b = body.clone();
    let o = other.clone();
    let server = FaultyServer::start(move |_| {
        Reply::with(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", o.as_str()),
            ],
            b.clone(),
        )
    })
    .await;
    let c = client(&server, Limits::default());
    // By tag: the header names another digest than the body's.
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.manifest(&image(&server, "a"), "v1"),
    )
    .await;
    assert_eq!(reason(&r), Reason::DigestMismatch, "{r:?}");
    // By digest: the body is not the requested digest.
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.manifest(&image(&server, "a"), &other),
    )
    .await;
    assert_eq!(reason(&r), Reason::DigestMismatch, "{r:?}");
    // A blob whose bytes are not its digest.
    let d = blob_descriptor(&other, body.len() as u64);
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::DigestMismatch, "{r:?}");
    // Resolving a digest reference whose HEAD names another digest.
    let img = image(&server, &format!("a@{}", sha256_digest(&body)));
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    assert_eq!(reason(&r), Reason::DigestMismatch, "{r:?}");
}

// R13: a tag that flips between two manifests. Whatever the tag said, bytes fetched by digest
// must hash to that digest: the flip cannot substitute content.
#[tokio::test]
async fn flipping_tag_cannot_substitute_content() {
    let a = manifest(9);
    let b = manifest(10);
    let n = AtomicUsize::new(0);
    let (a2, b2) = (a.clone(), b.clone());
    let server = FaultyServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            manifest_reply(&a2)
        } else {
            manifest_reply(&b2)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let img = image(&server, "a:latest");
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    let resolved = r.expect("resolves");
    assert_eq!(resolved.digest.as_str(), sha256_digest(&a));
    assert_eq!(server.seen().len(), 1, "one lookup per resolution");
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.manifest(&img, resolved.digest.as_str()),
    )
    .await;
    assert_eq!(
        reason(&r),
        Reason::DigestMismatch,
        "flipped content is refused: {r:?}"
    );
}

// R7/R8: lying lengths and huge bodies stop at the cap while streaming; RSS stays flat.
#[tokio::test]
async fn lying_content_length_is_caught() {
    let body = b"0123456789".repeat(10);
    let digest = sha256_digest(&body);
    // Claims more than the cap: refused before reading.
    let server =
        FaultyServer::start(|_| Reply::with(200, &[("Content-Length", "999999999")], "x")).await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.manifest(&image(&server, "a"), "v1"),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
    // Claims less than it sends: the extra bytes are not part of the body, the digest fails.
    let b = body.clone();
    let server =
        FaultyServer::start(move |_| Reply::with(200, &[("Content-Length", "10")], b.clone()))
            .await;
    let c = client(&server, Limits::default());
    let d = blob_descriptor(&digest, body.len() as u64);
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::DigestMismatch, "{r:?}");
    // Claims more than it sends, then closes: broken off.
    let b = body.clone();
    let server = FaultyServer::start(move |_| {
        Reply::with(
            200,
            &[("Content-Length", "100"), ("Connection", "close")],
            b[..50].to_vec(),
        )
    })
    .await;
    let c = client(&server, limits(Duration::from_secs(1)));
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    // Claims more than the descriptor's size: refused before reading.
    let server =
        FaultyServer::start(|_| Reply::with(200, &[("Content-Length", "5000")], "x")).await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
}

#[tokio::test]
async fn gigabyte_blob_and_endless_manifest_stay_bounded() {
    const GIB: u64 = 1 << 30;
    let server = FaultyServer::start(|_| Reply::Stream {
        headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        total: GIB,
    })
    .await;
    let c = client(&server, Limits::default());
    let before = rss_bytes();
    // The descriptor says 1 KiB; 1 GiB streams.
    let d = blob_descriptor(&format!("sha256:{:064x}", 1), 1024);
    let (r, took) = within(
        Duration::from_secs(5),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A manifest with no length: cut at the 4 MiB cap.
    let (r, _) = within(
        Duration::from_secs(5),
        c.registry.manifest(&image(&server, "a"), "v1"),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);

    // The descriptor says 1 GiB: refused before any request.
    let seen = server.seen().len();
    let d = blob_descriptor(&format!("sha256:{:064x}", 1), GIB);
    let (r, _) = within(
        Duration::from_secs(5),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
    assert_eq!(server.seen().len(), seen, "not fetched");
}

fn referrers_index(count: usize, start: usize) -> Vec<u8> {
    let entries: Vec<String> = (start..start + count)
        .map(|i| {
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{i:064x}","size":500,"artifactType":"application/vnd.cncf.notary.signature"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

// R10: 10,000 referrers in one answer, endless pages, and a page link to another host.
#[tokio::test]
async fn referrer_lists_are_bounded() {
    let subject: Digest = format!("sha256:{:064x}", 42).parse().expect("digest");
    let big = referrers_index(10_000, 0);
    let server =
        FaultyServer::start(move |_| Reply::with(200, &[("Content-Type", OCI_INDEX)], big.clone()))
            .await;
    let c = client(&server, Limits::default());
    let before = rss_bytes();
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooManyReferrers, "{r:?}");
    assert!(rss_bytes().saturating_sub(before) < 64 << 20);

    // Endless pages of 20: stops once the total passes max_referrers (50), on page 3.
    let n = AtomicUsize::new(0);
    let server = FaultyServer::start(move |req: &Seen| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let next = format!(
            "<{}?page={}>; rel=\"next\"",
            req.path.split('?').next().unwrap_or_default(),
            i + 1
        );
        Reply::with(
            200,
            &[("Content-Type", OCI_INDEX), ("Link", next.as_str())],
            referrers_index(20, i * 20),
        )
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooManyReferrers, "{r:?}");
    assert_eq!(server.seen().len(), 3);

    // Two pages within the limit are joined.
    let n = AtomicUsize::new(0);
    let server = FaultyServer::start(move |req: &Seen| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        if i == 0 {
            let next = format!("<{}?last=x>; rel=\"next\"", req.path);
            Reply::with(200, &[("Link", next.as_str())], referrers_index(20, 0))
        } else {
            Reply::with(200, &[], referrers_index(5, 20))
        }
    })
    .await;
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert_eq!(r.expect("two pages").len(), 25);

    // A next page on another host is not followed.
    let other = FaultyServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::with(200, &[], referrers_index(1, 0))
    })
    .await;
    let next = format!("<{}>; rel=\"next\"", other.url("/v2/a/referrers/x"));
    let server = FaultyServer::start(move |_| {
        Reply::with(200, &[("Link", next.as_str())], referrers_index(1, 0))
    })
    .await;
    let c = client_with(
        &[&server, &other],
        &[],
        DenyList::default(),
        Limits::default(),
    );
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    assert!(other.seen().is_empty());
}

// R11: no referrers API (404): the tag schema, and the 404 is remembered.
#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    let subject: Digest = format!("sha256:{:064x}", 43).parse().expect("digest");
    let index = referrers_index(2, 0);
    let index_digest = sha256_digest(&index);
    let server = FaultyServer::start(move |req: &Seen| {
        if req.path.contains("/referrers/") {
            Reply::with(404, &[("Content-Type", "text/plain")], "404 page not found")
        } else if req.path.ends_with(&format!("sha256-{:064x}", 43)) {
            Reply::with(
                200,
                &[
                    ("Content-Type", OCI_INDEX),
                    ("Docker-Content-Digest", index_digest.as_str()),
                ],
                index.clone(),
            )
        } else {
            Reply::status(404)
        }
    })
    .await;
    let c = client(&server, Limits::default());
    for _ in 0..2 {
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.referrers(&image(&server, "a"), &subject),
        )
        .await;
        assert_eq!(r.expect("tag schema").len(), 2);
    }
    let api_calls = server
        .seen()
        .iter()
        .filter(|s| s.path.contains("/referrers/"))
        .count();
    assert_eq!(api_calls, 1, "the missing API is remembered");
}

/// The per-host bound covers bodies, not just requests waiting for headers: with one request
/// allowed per host, a second request waits until the first blob's body is read, so a host
/// that trickles bodies cannot have more of them in flight than the bound.
#[tokio::test]
async fn blob_bodies_are_read_under_the_host_permit() {
    let blob = vec![b'x'; 20];
    let digest = sha256_digest(&blob);
    let server = {
        let blob = blob.clone();
        FaultyServer::start(move |seen| {
            if seen.path.contains("/blobs/") {
                Reply::Trickle {
                    headers: vec![("Content-Length".into(), blob.len().to_string())],
                    body: blob.clone(),
                    every: Duration::from_millis(40),
                }
            } else {
                Reply::status(404)
            }
        })
        .await
    };
    let c = Arc::new(client(
        &server,
        Limits {
            max_concurrent_per_host: 1,
            ..Limits::default()
        },
    ));
    let img = image(&server, "a:v1");
    let slow = {
        let (c, img) = (c.clone(), img.clone());
        let d = blob_descriptor(&digest, 20);
        tokio::spawn(async move { c.registry.blob(&img, &d).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = {
        let (c, img) = (c.clone(), img.clone());
        tokio::spawn(async move { c.registry.manifest(&img, "v2").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.seen().len(),
        1,
        "the second request waits while the first body streams"
    );
    assert_eq!(slow.await.expect("task").expect("blob"), blob);
    assert!(other.await.expect("task").expect("manifest").is_none());
    assert_eq!(server.seen().len(), 2);
}
