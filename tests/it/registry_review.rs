//! Registry faults seen from a decision: the real engine (`decision::Engine`, which wraps every
//! registry call in the review deadline) over `HttpRegistry` and the misbehaving server. Each
//! fault must deny the image under `onError: deny`, name the reason in plain words in the deny
//! line, and answer before the review deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::decision::{ImageUse, Verdict};
use signet::engine;
use signet::metrics::Metrics;
use signet::registry::{DenyList, Limits, RegistryConfig};

use crate::support::cosign::CosignKey;
use crate::support::fault::{FaultServer, Reply, Request};
use crate::support::signet::{cosign_policy, test_options};

/// One scripted fault.
type Handler = Box<dyn Fn(&Request) -> Reply + Send + Sync>;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn decide(
    server: &FaultServer,
    image: &str,
    deny: DenyList,
    deadline: Duration,
) -> (Verdict, Arc<Metrics>) {
    let key = CosignKey::p256();
    let policy = cosign_policy(
        "prod",
        &format!("{}/**", server.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let set = signet::policy::load_str(Path::new("policies.yaml"), &policy).expect("policy loads");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: vec![server.addr()],
        deny,
        limits: Limits {
            request_timeout: Duration::from_secs(30),
            ..Limits::default()
        },
        ..RegistryConfig::default()
    };
    let engine = engine::build(config, set, metrics.clone(), test_options()).expect("engine");
    let started = Instant::now();
    let verdict = engine
        .decide(
            &[ImageUse {
                image: format!("{}/{image}", server.addr()),
                containers: vec!["app".into()],
            }],
            None,
            started + deadline,
        )
        .await;
    let took = started.elapsed();
    assert!(
        took < deadline + Duration::from_millis(300),
        "answered after {took:?}"
    );
    (verdict, metrics)
}

fn assert_denied_for(v: &Verdict, words: &str) {
    assert!(!v.allowed, "{v:#?}");
    let text = v.denials.join("\n");
    assert!(text.contains(words), "expected {words:?} in: {text}");
}

#[tokio::test]
async fn registry_faults_deny_with_the_reason_before_the_deadline() {
    let other = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(&str, Handler, &str)> = vec![
        (
            "throttled",
            Box::new(|_: &Request| Reply::with(429, &[("Retry-After", "3600")], "")),
            "throttling",
        ),
        (
            "unreachable",
            Box::new(|_: &Request| Reply::status(503)),
            "unreachable",
        ),
        (
            "unauthorized",
            Box::new(|_: &Request| {
                Reply::with(401, &[("WWW-Authenticate", "Basic realm=\"r\"")], "")
            }),
            "refused access",
        ),
        (
            "not found",
            Box::new(|_: &Request| Reply::status(404)),
            "not found",
        ),
        (
            "too large",
            Box::new(|_: &Request| Reply::Stream {
                headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
                total: 1 << 30,
            }),
            "larger than allowed",
        ),
        (
            "digest mismatch",
            Box::new(move |_: &Request| {
                Reply::with(
                    200,
                    &[
                        ("Content-Type", OCI_MANIFEST),
                        ("Docker-Content-Digest", other.as_str()),
                    ],
                    "{}",
                )
            }),
            "does not match its digest",
        ),
        ("deadline", Box::new(|_: &Request| Reply::Hang), "deadline"),
    ];
    for (name, handler, words) in cases {
        let server = FaultServer::start(handler);
        let image = if name == "digest mismatch" {
            format!("team/app@sha256:{}", "1".repeat(64))
        } else {
            "team/app:v1".to_string()
        };
        let (v, metrics) = decide(
            &server,
            &image,
            DenyList::default(),
            Duration::from_millis(1500),
        )
        .await;
        assert_denied_for(&v, words);
        let label = match name {
            "throttled" => "throttled",
            "unreachable" => "registry_unreachable",
            "unauthorized" => "unauthorized",
            "not found" => "not_found",
            "too large" => "too_large",
            "digest mismatch" => "digest_mismatch",
            _ => "deadline_exceeded",
        };
        let line = format!(
            "signet_verifications_total{{reason=\"{label}\",result=\"error\",verifier=\"cosign\"}} 1"
        );
        let text = metrics.encode();
        assert!(text.contains(&line), "{name}: no {line} in\n{text}");
    }
}

#[tokio::test]
async fn a_denied_registry_address_is_denied_with_the_reason() {
    let internal = FaultServer::start_on(std::net::Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::status(200)
    });
    let deny = DenyList::with(["127.0.0.2/32".parse().expect("cidr")]);
    let (v, _) = decide(&internal, "team/app:v1", deny, Duration::from_secs(2)).await;
    assert_denied_for(&v, "unreachable");
    assert!(
        v.denials.join("\n").contains("deny-list"),
        "{:?}",
        v.denials
    );
    assert!(
        internal.first_bytes().is_empty(),
        "nothing reached the denied address"
    );
}
