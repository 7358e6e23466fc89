//! The revocation fetcher against a small local CRL/OCSP responder: what reaches the Notation
//! verifier, and what does not (timeouts, non-HTTP URLs, oversized answers, errors).

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::metrics::Metrics;
use signet::registry::ssrf::DenyList;
use signet::revocation::HttpRevocation;
use signet::verify::notation::{RevocationLocation, RevocationSource, fetch_revocation};

use crate::support::fault::{FaultServer, Reply};

#[tokio::test]
async fn crls_are_fetched_and_ocsp_requests_posted_and_cached() {
    let responder = FaultServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/ca.crl") => Reply::status(200).body(b"crl-der".to_vec()),
        ("POST", "/ocsp") if req.header("content-type") == Some("application/ocsp-request") => {
            Reply::status(200).body([b"ocsp-for-".as_slice(), &req.body].concat())
        }
        _ => Reply::status(404),
    });
    let base = format!("http://{}", responder.addr());
    let metrics = Arc::new(Metrics::new());
    let fetcher = HttpRevocation::new(DenyList::default())
        .unwrap()
        .with_metrics(metrics.clone());
    assert_eq!(
        fetcher.fetch_crl(&format!("{base}/ca.crl")).await.unwrap(),
        b"crl-der"
    );
    let answer = fetcher
        .post_ocsp(&format!("{base}/ocsp"), b"req1")
        .await
        .unwrap();
    assert_eq!(answer, b"ocsp-for-req1");
    // Cached: asking again does not reach the responder.
    fetcher.fetch_crl(&format!("{base}/ca.crl")).await.unwrap();
    assert_eq!(responder.requests().len(), 2);
    // A failing responder is an error, not an answer.
    assert!(
        fetcher
            .fetch_crl(&format!("{base}/missing.crl"))
            .await
            .is_err()
    );
    // Requests that reached a server are counted by kind and result; cache hits are not.
    let count = |kind: &str, result: &str| {
        metrics
            .revocation_requests
            .with_label_values(&[kind, result])
            .get()
    };
    assert_eq!(count("crl", "ok"), 1);
    assert_eq!(count("ocsp", "ok"), 1);
    assert_eq!(count("crl", "http_error"), 1);
}

/// A CRL signed by a throwaway CA, current until `next_update`.
fn crl_until(next_update: std::time::SystemTime) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let issuer = rcgen::Issuer::from_params(&ca, &key);
    rcgen::CertificateRevocationListParams {
        this_update: (std::time::SystemTime::now() - Duration::from_secs(3600)).into(),
        next_update: next_update.into(),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap()
    .der()
    .to_vec()
}

/// The cache keeps an answer no longer than the answer itself is current: a stale CRL would
/// otherwise make every check "unknown" until the entry expired.
#[tokio::test]
async fn cached_answers_do_not_outlive_their_next_update() {
    let now = std::time::SystemTime::now();
    let (fresh, stale) = (
        crl_until(now + Duration::from_secs(86_400)),
        crl_until(now - Duration::from_secs(60)),
    );
    let responder = FaultServer::start(move |req| match req.path.as_str() {
        "/fresh.crl" => Reply::status(200).body(fresh.clone()),
        "/stale.crl" => Reply::status(200).body(stale.clone()),
        _ => Reply::status(404),
    });
    let base = format!("http://{}", responder.addr());
    let fetcher = HttpRevocation::new(DenyList::default()).unwrap();
    for _ in 0..2 {
        fetcher
            .fetch_crl(&format!("{base}/fresh.crl"))
            .await
            .unwrap();
        fetcher
            .fetch_crl(&format!("{base}/stale.crl"))
            .await
            .unwrap();
    }
    let asked: Vec<String> = responder.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(asked, ["/fresh.crl", "/stale.crl", "/stale.crl"]);
}

/// Which answers are definitive is the verifier's business (unit-tested with real OCSP
/// responses); here, neither a failing responder nor an answer that is not a valid response
/// about the certificate stops the fetcher from falling back to the CRLs.
#[tokio::test]
async fn crls_are_the_fallback_when_ocsp_gives_no_usable_answer() {
    let responder = FaultServer::start(|req| match req.path.as_str() {
        "/ocsp-down" => Reply::status(503),
        "/ocsp" => Reply::status(200).body(b"not an OCSP response".to_vec()),
        "/leaf.crl" => Reply::status(200).body(b"leaf-crl".to_vec()),
        "/intermediate.crl" => Reply::status(200).body(b"intermediate-crl".to_vec()),
        _ => Reply::status(404),
    });
    let base = format!("http://{}", responder.addr());
    let fetcher = HttpRevocation::new(DenyList::default()).unwrap();
    let location = |name: &str, ocsp: &str, crl: &str| RevocationLocation {
        certificate: format!("CN={name}"),
        crl_urls: vec![format!("{base}{crl}")],
        ocsp_urls: vec![format!("{base}{ocsp}")],
        ocsp_request: Some(name.as_bytes().to_vec()),
        certificate_der: Vec::new(),
        issuer_der: Vec::new(),
    };
    let garbage = location("leaf", "/ocsp", "/leaf.crl");
    let down = location("intermediate", "/ocsp-down", "/intermediate.crl");
    let data = fetch_revocation(&fetcher, &[garbage, down]).await;
    assert_eq!(data.ocsp, vec![b"not an OCSP response".to_vec()]);
    assert_eq!(
        data.crls,
        vec![b"leaf-crl".to_vec(), b"intermediate-crl".to_vec()]
    );
}

#[tokio::test]
async fn a_hanging_responder_times_out_within_the_specs_limits() {
    let hole = FaultServer::black_hole();
    let metrics = Arc::new(Metrics::new());
    let fetcher = HttpRevocation::new(DenyList::default())
        .unwrap()
        .with_metrics(metrics.clone());
    let started = Instant::now();
    assert!(
        fetcher
            .post_ocsp(&format!("http://{}/ocsp", hole.addr()), b"r")
            .await
            .is_err()
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "OCSP waited {took:?} (limit 2 s)"
    );
    let timeouts = metrics
        .revocation_requests
        .with_label_values(&["ocsp", "timeout"]);
    assert_eq!(timeouts.get(), 1);
}

/// Certificates are asked about concurrently: two hanging responders cost one time limit
/// (2 s), not two, out of the review's deadline.
#[tokio::test]
async fn hanging_responders_are_waited_for_at_once() {
    let holes = [FaultServer::black_hole(), FaultServer::black_hole()];
    let fetcher = HttpRevocation::new(DenyList::default()).unwrap();
    let locations: Vec<RevocationLocation> = holes
        .iter()
        .enumerate()
        .map(|(i, hole)| RevocationLocation {
            certificate: format!("CN=cert {i}"),
            crl_urls: Vec::new(),
            ocsp_urls: vec![format!("http://{}/ocsp", hole.addr())],
            ocsp_request: Some(vec![i as u8]),
            certificate_der: Vec::new(),
            issuer_der: Vec::new(),
        })
        .collect();
    let started = Instant::now();
    let data = fetch_revocation(&fetcher, &locations).await;
    let took = started.elapsed();
    assert!(data.ocsp.is_empty() && data.crls.is_empty());
    assert!(
        took < Duration::from_millis(3500),
        "two hanging responders took {took:?}: asked one after the other"
    );
}

#[tokio::test]
async fn only_http_urls_and_bounded_answers() {
    let fetcher = HttpRevocation::new(DenyList::default()).unwrap();
    let err = fetcher
        .fetch_crl("https://127.0.0.1:1/x.crl")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only http://"), "{err}");
    let err = fetcher
        .fetch_crl("file:///etc/passwd")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only http://"), "{err}");
    let big = FaultServer::start(|_| Reply::status(200).body(vec![0u8; (1 << 20) + 1]));
    let err = fetcher
        .post_ocsp(&format!("http://{}/ocsp", big.addr()), b"r")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than"), "{err}");
}

#[tokio::test]
async fn revocation_urls_in_the_deny_list_are_never_fetched() {
    let metrics = Arc::new(Metrics::new());
    let fetcher = HttpRevocation::new(DenyList::default())
        .unwrap()
        .with_metrics(metrics.clone());
    let err = fetcher
        .fetch_crl("http://169.254.169.254/latest/meta-data")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("deny-list"), "{err}");
    let refused = metrics
        .revocation_requests
        .with_label_values(&["crl", "refused"]);
    assert_eq!(refused.get(), 1);
}
