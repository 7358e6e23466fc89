//! The registry client against a misbehaving registry (`support::fault`), continued: what a
//! registry sends. Lying digests and lengths, flipping tags, huge bodies and endless referrer
//! lists are caught, with the process's RSS bounded.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use signet::image::Digest;
use signet::reason::Reason;
use signet::registry::{DenyList, Limits, Registry};

use crate::registry_faults::{
    OCI_INDEX, OCI_MANIFEST, blob_descriptor, client, client_with, image, limits, manifest,
    manifest_reply, reason, within,
};
use crate::support::fault::{FaultServer, Reply, Request, rss_bytes};
use crate::support::oci::sha256_digest;

// R6: never trust Docker-Content-Digest, never accept bytes for the wrong digest.
#[tokio::test]
async fn digest_lies_are_digest_mismatches() {
    let body = manifest(7);
    let other = sha256_digest(&manifest(8));
    let b = body.clone();
    let o = other.clone();
    let server = FaultServer::start(move |_| {
        Reply::with(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", o.as_str()),
            ],
            b.clone(),
        )
    });
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
    let server = FaultServer::start(move |_| {
        if n.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            manifest_reply(&a2)
        } else {
            manifest_reply(&b2)
        }
    });
    let c = client(&server, Limits::default());
    let img = image(&server, "a:latest");
    let (r, _) = within(Duration::from_secs(3), c.registry.resolve(&img)).await;
    let resolved = r.expect("resolves");
    assert_eq!(resolved.digest.as_str(), sha256_digest(&a));
    assert_eq!(server.requests().len(), 1, "one lookup per resolution");
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
    let server = FaultServer::start(|_| Reply::with(200, &[("Content-Length", "999999999")], "x"));
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
        FaultServer::start(move |_| Reply::with(200, &[("Content-Length", "10")], b.clone()));
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
    let server = FaultServer::start(move |_| {
        Reply::with(
            200,
            &[("Content-Length", "100"), ("Connection", "close")],
            b[..50].to_vec(),
        )
    });
    let c = client(&server, limits(Duration::from_secs(1)));
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::RegistryUnreachable, "{r:?}");
    // Claims more than the descriptor's size: refused before reading.
    let server = FaultServer::start(|_| Reply::with(200, &[("Content-Length", "5000")], "x"));
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
    let server = FaultServer::start(|_| Reply::Stream {
        headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
        total: GIB,
    });
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
    let seen = server.requests().len();
    let d = blob_descriptor(&format!("sha256:{:064x}", 1), GIB);
    let (r, _) = within(
        Duration::from_secs(5),
        c.registry.blob(&image(&server, "a"), &d),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooLarge, "{r:?}");
    assert_eq!(server.requests().len(), seen, "not fetched");
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
        FaultServer::start(move |_| Reply::with(200, &[("Content-Type", OCI_INDEX)], big.clone()));
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
    let server = FaultServer::start(move |req: &Request| {
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
    });
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert_eq!(reason(&r), Reason::TooManyReferrers, "{r:?}");
    assert_eq!(server.requests().len(), 3);

    // Two pages within the limit are joined.
    let n = AtomicUsize::new(0);
    let server = FaultServer::start(move |req: &Request| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        if i == 0 {
            let next = format!("<{}?last=x>; rel=\"next\"", req.path);
            Reply::with(200, &[("Link", next.as_str())], referrers_index(20, 0))
        } else {
            Reply::with(200, &[], referrers_index(5, 20))
        }
    });
    let c = client(&server, Limits::default());
    let (r, _) = within(
        Duration::from_secs(3),
        c.registry.referrers(&image(&server, "a"), &subject),
    )
    .await;
    assert_eq!(r.expect("two pages").len(), 25);

    // A next page on another host is not followed.
    let other = FaultServer::start_on(Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::with(200, &[], referrers_index(1, 0))
    });
    let next = format!("<{}>; rel=\"next\"", other.url("/v2/a/referrers/x"));
    let server = FaultServer::start(move |_| {
        Reply::with(200, &[("Link", next.as_str())], referrers_index(1, 0))
    });
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
    assert!(other.requests().is_empty());
}

// R11: no referrers API (404): the tag schema, and the 404 is remembered.
#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    let subject: Digest = format!("sha256:{:064x}", 43).parse().expect("digest");
    let index = referrers_index(2, 0);
    let index_digest = sha256_digest(&index);
    let server = FaultServer::start(move |req: &Request| {
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
    });
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
        .requests()
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
        FaultServer::start(move |seen| {
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
        server.requests().len(),
        1,
        "the second request waits while the first body streams"
    );
    assert_eq!(slow.await.expect("task").expect("blob"), blob);
    assert!(other.await.expect("task").expect("manifest").is_none());
    assert_eq!(server.requests().len(), 2);
}
