//! Per-host state of the registry client, against a lying registry
//! (`support::fault`): one repository's answer (a 404 from the referrers API, a long
//! `Retry-After`) must not change how every other repository on the host is treated, while a
//! registry that really has no referrers API still costs no extra round trip per image.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::image::{Digest, ImageRef};
use signet::metrics::Metrics;
use signet::reason::Reason;
use signet::registry::{
    HttpRegistry, Limits, Registry, RegistryConfig, RegistryError, with_deadline,
};

use crate::support::fault::{FaultServer, Reply, Request};
use crate::support::oci::sha256_digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn client(server: &FaultServer) -> HttpRegistry {
    let config = RegistryConfig {
        insecure: vec![server.addr()],
        limits: Limits::default(),
        ..RegistryConfig::default()
    };
    HttpRegistry::new(config, Arc::new(Metrics::new())).expect("client")
}

fn image(server: &FaultServer, rest: &str) -> ImageRef {
    format!("{}/{rest}", server.addr())
        .parse()
        .expect("image ref")
}

async fn within<T>(
    f: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    let at = Instant::now() + Duration::from_secs(3);
    match tokio::time::timeout_at(at.into(), with_deadline(at, f)).await {
        Ok(r) => r,
        Err(_) => Err(RegistryError::new(Reason::DeadlineExceeded, "deadline")),
    }
}

fn subject() -> Digest {
    format!("sha256:{:064x}", 7).parse().expect("digest")
}

fn referrers_index(count: usize) -> Vec<u8> {
    let entries: Vec<String> = (0..count)
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

fn api_calls(server: &FaultServer, repo: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|s| s.path.starts_with(&format!("/v2/{repo}/referrers/")))
        .count()
}

fn plain_404() -> Reply {
    Reply::with(404, &[("Content-Type", "text/plain")], "404 page not found")
}

/// A registry with the referrers API where one repository's path answers a plain 404 (a
/// hostile tenant, or a proxy routing that path elsewhere). Other repositories keep the API:
/// their signatures are listed only there (no tag-schema index).
#[tokio::test]
async fn one_repositorys_referrers_404_does_not_hide_other_repositories_referrers() {
    let listed = referrers_index(2);
    let server = FaultServer::start(move |req: &Request| {
        if req.path.starts_with("/v2/evil/referrers/") {
            plain_404()
        } else if req.path.contains("/referrers/") {
            Reply::with(200, &[("Content-Type", OCI_INDEX)], listed.clone())
        } else {
            Reply::status(404)
        }
    });
    let c = client(&server);
    let evil = within(c.referrers(&image(&server, "evil"), &subject())).await;
    assert_eq!(evil.expect("no referrers").len(), 0);
    for repo in ["team/app", "team/db"] {
        let r = within(c.referrers(&image(&server, repo), &subject())).await;
        assert_eq!(r.expect("listed by the API").len(), 2, "{repo}");
    }
    // The 404 is still remembered for the repository that sent it.
    let _ = within(c.referrers(&image(&server, "evil"), &subject())).await;
    assert_eq!(
        api_calls(&server, "evil"),
        1,
        "remembered for its repository"
    );
}

/// A 404 that says the repository or manifest is unknown (an OCI error body) is about that
/// repository, not about the API: nothing is remembered.
#[tokio::test]
async fn a_name_unknown_404_is_not_taken_for_a_missing_api() {
    let listed = referrers_index(1);
    let server = FaultServer::start(move |req: &Request| {
        if req.path.starts_with("/v2/gone/referrers/") {
            Reply::with(
                404,
                &[("Content-Type", "application/json")],
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
            )
        } else if req.path.contains("/referrers/") {
            Reply::with(200, &[("Content-Type", OCI_INDEX)], listed.clone())
        } else {
            Reply::status(404)
        }
    });
    let c = client(&server);
    for _ in 0..2 {
        let r = within(c.referrers(&image(&server, "gone"), &subject())).await;
        assert_eq!(r.expect("nothing").len(), 0);
    }
    assert_eq!(api_calls(&server, "gone"), 2, "not remembered");
    let r = within(c.referrers(&image(&server, "team/app"), &subject())).await;
    assert_eq!(r.expect("listed").len(), 1);
}

/// A registry without the API (docker-registry's plain 404 everywhere): after the first probe,
/// signed images in other repositories cost no API round trip, as before.
#[tokio::test]
async fn a_host_without_the_api_is_still_probed_once() {
    let index = referrers_index(2);
    let index_digest = sha256_digest(&index);
    let tag = format!("sha256-{:064x}", 7);
    let server = FaultServer::start(move |req: &Request| {
        if req.path.contains("/referrers/") {
            plain_404()
        } else if req.path.ends_with(&tag) {
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
    let c = client(&server);
    for repo in ["a", "b", "c/d", "a"] {
        let r = within(c.referrers(&image(&server, repo), &subject())).await;
        assert_eq!(r.expect("tag schema").len(), 2, "{repo}");
    }
    let all: usize = server
        .requests()
        .iter()
        .filter(|s| s.path.contains("/referrers/"))
        .count();
    assert_eq!(all, 1, "one API probe for the host");
    assert_eq!(
        server.requests().len(),
        5,
        "one probe and one tag-schema index per image"
    );
}

fn manifest_reply(seed: u32) -> Reply {
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{seed:064x}","size":2}},"layers":[]}}"#
    );
    let digest = sha256_digest(body.as_bytes());
    Reply::with(
        200,
        &[
            ("Content-Type", OCI_MANIFEST),
            ("Docker-Content-Digest", digest.as_str()),
        ],
        body.into_bytes(),
    )
}

/// One repository answering 429 with an hour's `Retry-After` keeps signet away from that
/// repository, not from the whole host.
#[tokio::test]
async fn a_long_retry_after_from_one_repository_does_not_bar_the_host() {
    let server = FaultServer::start(|req: &Request| {
        if req.path.starts_with("/v2/slow/") {
            Reply::with(429, &[("Retry-After", "3600")], "")
        } else {
            manifest_reply(1)
        }
    });
    let c = client(&server);
    let r = within(c.resolve(&image(&server, "slow:v1"))).await;
    assert_eq!(r.expect_err("throttled").reason, Reason::Throttled);
    let r = within(c.resolve(&image(&server, "team/app:v1"))).await;
    assert!(r.is_ok(), "another repository is not throttled: {r:?}");
    let before = server.requests().len();
    let r = within(c.resolve(&image(&server, "slow:v2"))).await;
    assert_eq!(r.expect_err("throttled").reason, Reason::Throttled);
    assert_eq!(
        server.requests().len(),
        before,
        "the throttled repository is left alone"
    );
}

/// Long `Retry-After`s from two repositories are the host asking for less: the host is then
/// left alone too (briefly).
#[tokio::test]
async fn long_retry_afters_from_two_repositories_bar_the_host() {
    let server = FaultServer::start(|req: &Request| {
        if req.path.starts_with("/v2/ok/") {
            manifest_reply(1)
        } else {
            Reply::with(429, &[("Retry-After", "30")], "")
        }
    });
    let c = client(&server);
    for repo in ["a", "b"] {
        let r = within(c.resolve(&image(&server, &format!("{repo}:v1")))).await;
        assert_eq!(r.expect_err("throttled").reason, Reason::Throttled);
    }
    let before = server.requests().len();
    let r = within(c.resolve(&image(&server, "ok:v1"))).await;
    assert_eq!(r.expect_err("host barred").reason, Reason::Throttled);
    assert_eq!(
        server.requests().len(),
        before,
        "nothing sent while the host is barred"
    );
}

/// Per-host settings written with another spelling of the host (`LocalHost:PORT`) apply to
/// images written with any spelling of it: plain HTTP, and the credentials, reach the registry.
#[tokio::test]
async fn host_keyed_settings_apply_to_every_spelling_of_the_host() {
    use signet::registry::Credentials;
    let server = FaultServer::start(|req: &Request| match req.header("authorization") {
        Some("Basic YWxpY2U6czNjcmV0") => manifest_reply(1),
        _ => Reply::with(401, &[("WWW-Authenticate", "Basic realm=\"r\"")], ""),
    });
    let port = server.port();
    let config = RegistryConfig {
        insecure: vec![format!("LocalHost:{port}")],
        credentials: [(
            format!("LOCALHOST:{port}"),
            Credentials {
                username: "alice".into(),
                password: "s3cret".into(),
            },
        )]
        .into_iter()
        .collect(),
        ..RegistryConfig::default()
    };
    let c = HttpRegistry::new(config, Arc::new(Metrics::new())).expect("client");
    for spelling in [format!("localhost:{port}"), format!("LocalHost:{port}")] {
        let image: ImageRef = format!("{spelling}/a:v1").parse().expect("image");
        let r = within(c.resolve(&image)).await;
        assert!(r.is_ok(), "{spelling}: {r:?}");
    }
}
