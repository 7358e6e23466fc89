//! The registry client against a misbehaving registry (`support::fault`): hangs, trickled
//! bodies, refused connections, server errors, retries and throttling (R1–R5). The helpers here
//! are shared with `registry_faults_hosts` (token realms, redirects, the SSRF deny-list: S1,
//! S3, S4) and `registry_faults_content` (lying digests and lengths, huge bodies, endless
//! referrer lists: R6–R13). Each test asserts the outcome and its [`Reason`], that the answer
//! came before the review deadline, and, where a fault could cost memory, that the process's
//! RSS stayed bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signet::image::ImageRef;
use signet::metrics::Metrics;
use signet::reason::Reason;
use signet::registry::{
    Credentials, DenyList, Descriptor, HttpRegistry, Limits, Registry, RegistryConfig,
    RegistryError, with_deadline,
};

use crate::support::fault::{FaultServer, Reply};
use crate::support::oci::sha256_digest;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A small but valid OCI image manifest; `seed` makes distinct ones.
pub(crate) fn manifest(seed: u32) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":2}},"layers":[]}}"#,
        seed
    )
    .into_bytes()
}

pub(crate) fn manifest_reply(body: &[u8]) -> Reply {
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

pub(crate) struct Client {
    pub(crate) registry: HttpRegistry,
    pub(crate) metrics: Arc<Metrics>,
}

pub(crate) fn limits(request_timeout: Duration) -> Limits {
    Limits {
        request_timeout,
        ..Limits::default()
    }
}

/// A client that reaches `insecure` hosts over plain HTTP with `credentials` per host.
pub(crate) fn client_with(
    insecure: &[&FaultServer],
    credentials: &[(&FaultServer, &str, &str)],
    deny: DenyList,
    limits: Limits,
) -> Client {
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: insecure.iter().map(|s| s.addr()).collect(),
        credentials: credentials
            .iter()
            .map(|(s, u, p)| {
                (
                    s.addr(),
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

pub(crate) fn client(server: &FaultServer, limits: Limits) -> Client {
    client_with(&[server], &[], DenyList::default(), limits)
}

pub(crate) fn image(server: &FaultServer, rest: &str) -> ImageRef {
    format!("{}/{rest}", server.addr())
        .parse()
        .expect("image ref")
}

/// Runs `f` as the engine does: inside the review deadline, cancelled at it. Returns the
/// result (a `DeadlineExceeded` error when cancelled) and asserts it came before the deadline
/// plus a small scheduling margin.
pub(crate) async fn within<T>(
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

pub(crate) fn reason<T: std::fmt::Debug>(r: &Result<T, RegistryError>) -> Reason {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.reason,
    }
}

pub(crate) fn metric(c: &Client, line_prefix: &str) -> f64 {
    c.metrics
        .encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

pub(crate) fn blob_descriptor(digest: &str, size: u64) -> Descriptor {
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
    let server = FaultServer::start(|_| Reply::Hang);
    let c = client(&server, limits(Duration::from_millis(500)));
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(server.requests().len(), 1, "a timeout is not retried");
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
    let server = FaultServer::start(|_| Reply::Hang);
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
    let server = FaultServer::start(move |_| Reply::Trickle {
        headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        body: body.clone(),
        every: Duration::from_millis(100),
    });
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
    let server = FaultServer::start(|_| Reply::status(200));
    let host = server.addr();
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
        let server = FaultServer::start(move |_| Reply::status(status));
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::RegistryUnreachable, "{status}: {r:?}");
        let expected = if status == 500 { 1 } else { 3 };
        assert_eq!(server.requests().len(), expected, "attempts for {status}");
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
    let server = FaultServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::status(503)
        } else {
            manifest_reply(&body)
        }
    });
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
    let server = FaultServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Close
        } else {
            manifest_reply(&body)
        }
    });
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(server.requests().len(), 2);
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
            .requests()
            .iter()
            .all(|s| s.header("accept-encoding").is_none())
    );
}

// R5: a Retry-After too long to wait is remembered for the host (at most 60 s): later
// requests fail at once as throttled, without adding load.
#[tokio::test]
async fn a_long_retry_after_keeps_signet_away_from_the_host() {
    let server = FaultServer::start(|_| Reply::with(429, &[("Retry-After", "30")], ""));
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
    assert_eq!(server.requests().len(), 1, "the registry was asked once");
}

// Retries never sleep past the deadline: with 250 ms left, a 503 is final.
#[tokio::test]
async fn no_retry_when_the_deadline_leaves_no_room() {
    let server = FaultServer::start(|_| Reply::with(503, &[("Retry-After", "1")], ""));
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_millis(600),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    assert_eq!(server.requests().len(), 1);
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
    let server = FaultServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::with(429, &[("Retry-After", "1")], "")
        } else {
            manifest_reply(&b)
        }
    });
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
    let server = FaultServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(1));
            Reply::with(429, &[("Retry-After", at.as_str())], "")
        } else {
            manifest_reply(&b)
        }
    });
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(4),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");

    for retry_after in [None, Some("soon")] {
        let server = FaultServer::start(move |_| match retry_after {
            Some(v) => Reply::with(429, &[("Retry-After", v)], ""),
            None => Reply::status(429),
        });
        let c = client(&server, Limits::default());
        let (r, _) = within(
            Duration::from_secs(3),
            c.registry.resolve(&image(&server, "a:v1")),
        )
        .await;
        assert_eq!(reason(&r), Reason::Throttled, "{retry_after:?}: {r:?}");
        // One attempt and five retries of a request that only ever meets 429s.
        assert_eq!(
            server.requests().len(),
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
            server.requests().len() > 6,
            "the next request must reach the registry ({retry_after:?})"
        );
    }

    // An hour: throttled at once, no sleep.
    let server = FaultServer::start(|_| Reply::with(429, &[("Retry-After", "3600")], ""));
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_secs(3),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::Throttled);
    assert!(r.unwrap_err().detail.contains("429"));
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(server.requests().len(), 1);

    // One second, but only 500 ms left: throttled at once.
    let server = FaultServer::start(|_| Reply::with(429, &[("Retry-After", "1")], ""));
    let c = client(&server, Limits::default());
    let (r, took) = within(
        Duration::from_millis(500),
        c.registry.resolve(&image(&server, "a:v1")),
    )
    .await;
    assert_eq!(reason(&r), Reason::Throttled);
    assert!(took < Duration::from_millis(300), "{took:?}");
}
