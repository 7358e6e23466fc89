//! Servers in front of or beside the registry: a counting (and throttling) proxy, a
//! synthetic registry that signs any image on request, and a round-robin TCP front for two
//! replicas.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::support;
use crate::support::cosign::{self, CosignKey};
use crate::support::oci::sha256_digest;
use crate::support::registry::TestRegistry;

#[derive(Default)]
pub struct ProxyCounts {
    pub total: AtomicU64,
    pub throttled: AtomicU64,
}

pub struct Proxy {
    pub host: String,
    pub counts: Arc<ProxyCounts>,
}

impl Proxy {
    pub fn total(&self) -> u64 {
        self.counts.total.load(Ordering::Relaxed)
    }
    pub fn throttled(&self) -> u64 {
        self.counts.throttled.load(Ordering::Relaxed)
    }
}

/// A docker-registry of its own with a counting proxy in front: each of (c)'s signing settings
/// other than the Cosign key has one, since a policy covers a whole host and every policy
/// matching an image must pass.
pub struct OwnRegistry {
    pub registry: TestRegistry,
    pub counted: Proxy,
}

impl OwnRegistry {
    pub async fn start() -> anyhow::Result<OwnRegistry> {
        let registry = TestRegistry::start();
        let counted = start_proxy(registry.base_url(), 0).await?;
        Ok(OwnRegistry { registry, counted })
    }

    /// The policy names (`{setting}-direct`, `{setting}-counted`) and their hosts: the
    /// registry itself and the counting proxy.
    pub fn hosts(&self, setting: &str) -> [(String, String); 2] {
        [
            (format!("{setting}-direct"), self.registry.addr()),
            (format!("{setting}-counted"), self.counted.host.clone()),
        ]
    }
}

/// A plain-HTTP reverse proxy to `upstream` that counts requests and answers `per_mille` of
/// them `429 Too Many Requests` with `Retry-After: 1` (a fixed pseudo-random sequence).
pub async fn start_proxy(upstream: String, per_mille: u64) -> anyhow::Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    let counts = Arc::new(ProxyCounts::default());
    let client = reqwest::Client::builder().no_proxy().build()?;
    let c = counts.clone();
    tokio::spawn(async move {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (client, counts, upstream) = (client.clone(), c.clone(), upstream.clone());
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (client, counts, upstream) =
                        (client.clone(), counts.clone(), upstream.clone());
                    async move { forward(&client, &counts, &upstream, per_mille, req).await }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Proxy { host, counts })
}

pub async fn forward(
    client: &reqwest::Client,
    counts: &ProxyCounts,
    upstream: &str,
    per_mille: u64,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let n = counts.total.fetch_add(1, Ordering::Relaxed);
    // splitmix64 of the request number: a fixed, evenly spread sequence.
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z % 1000 < per_mille {
        counts.throttled.fetch_add(1, Ordering::Relaxed);
        let mut resp = Response::new(Full::new(Bytes::from_static(
            b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}",
        )));
        *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        resp.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let url = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(_) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(resp);
        }
    };
    let mut back = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
            back = back.header(name, value);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    Ok(back
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

/// A registry that makes up a signed image for every tag: the manifest of `repo:tag` is
/// synthetic, its `.sig` manifest is signed on request with `key`, and the payload blob is kept
/// only until signet fetches it. Only for filling the verdict cache (g).
pub async fn start_synthetic_registry(key: CosignKey) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let host = listener.local_addr()?.to_string();
    let blobs: Arc<Mutex<HashMap<String, Bytes>>> = Arc::default();
    let key = Arc::new(key);
    let h = host.clone();
    tokio::spawn(async move {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (blobs, key, host) = (blobs.clone(), key.clone(), h.clone());
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = synthetic(&host, &key, &blobs, req.method(), req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(host)
}

pub fn synthetic(
    host: &str,
    key: &CosignKey,
    blobs: &Mutex<HashMap<String, Bytes>>,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    let not_found = || {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        let blob = blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        return match blob {
            Some(b) => Response::new(Full::new(b)),
            None => not_found(),
        };
    }
    let Some((repo, reference)) = rest.rsplit_once("/manifests/") else {
        return Response::new(Full::new(Bytes::from_static(b"{}")));
    };
    let manifest = if let Some(hex) = reference
        .strip_prefix("sha256-")
        .and_then(|r| r.strip_suffix(".sig"))
    {
        let payload =
            cosign::simple_signing_payload(&format!("{host}/{repo}"), &format!("sha256:{hex}"));
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
        let payload_digest = sha256_digest(&payload);
        let size = payload.len();
        blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(payload_digest.clone(), Bytes::from(payload));
        json!({
            "schemaVersion": 2,
            "mediaType": support::oci::OCI_MANIFEST,
            "config": {"mediaType": support::oci::OCI_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [{
                "mediaType": cosign::SIMPLESIGNING,
                "digest": payload_digest,
                "size": size,
                "annotations": {cosign::SIGNATURE_ANNOTATION: signature},
            }],
        })
    } else {
        let config = format!("synthetic {repo}:{reference}");
        json!({
            "schemaVersion": 2,
            "mediaType": support::oci::OCI_MANIFEST,
            "config": {"mediaType": support::oci::OCI_CONFIG, "digest": sha256_digest(config.as_bytes()), "size": config.len()},
            "layers": [],
        })
    };
    let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
    let digest = sha256_digest(&bytes);
    let len = bytes.len();
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(bytes)
    };
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(support::oci::OCI_MANIFEST),
    );
    h.insert(
        "docker-content-digest",
        http::HeaderValue::from_str(&digest).expect("digest header"),
    );
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

/// Connections the round-robin front handed to each replica.
pub struct Front {
    pub addr: SocketAddr,
    pub handed: Arc<[AtomicU64; 2]>,
}

/// A TCP forwarder on 127.0.0.1 handing each new connection to the next of `replicas` in turn
/// (as a Service's virtual IP spreads connections); TLS passes through untouched.
pub async fn start_front(replicas: [SocketAddr; 2]) -> anyhow::Result<Front> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handed: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let counts = handed.clone();
    tokio::spawn(async move {
        let mut next = 0usize;
        loop {
            let Ok((mut down, _)) = listener.accept().await else {
                continue;
            };
            let which = next % 2;
            next += 1;
            counts[which].fetch_add(1, Ordering::Relaxed);
            let upstream = replicas[which];
            tokio::spawn(async move {
                let _ = down.set_nodelay(true);
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    Ok(Front { addr, handed })
}
