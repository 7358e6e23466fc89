//! An in-process OCI distribution registry for fast engine tests: hyper on `127.0.0.1:0`,
//! contents in memory, no process to spawn. It serves what signet's client asks for (GET/HEAD
//! of manifests by tag and digest, GET/HEAD of blobs, the referrers API, the tag list) and what
//! the kit's pushers send (blob uploads, manifest PUTs, manifest DELETE), so a
//! [`crate::oci::Pusher`] and every signer on top of it work unchanged; [`MemoryRegistry::put_blob`]
//! and [`MemoryRegistry::put_manifest`] store content directly.
//!
//! It checks what a real registry checks: a pushed blob or a manifest pushed by digest must
//! hash to that digest, a manifest's config, layers and index children must be present, names
//! and digests must be well formed.
//!
//! The referrers API (`GET /v2/<name>/referrers/<digest>`, computed from the `subject` of the
//! stored manifests) can be turned off ([`MemoryRegistry::set_referrers_api`]): it then answers
//! the plain-text 404 of a registry without the route, as `docker-registry` does, so a client
//! must fall back to the `sha256-<hex>` tag schema (which the pushers maintain either way).
//!
//! It is not `docker-registry`: tests of interoperability with a real registry (its Accept
//! quirks, auth, TLS, restarts) keep using [`crate::registry::TestRegistry`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::oci::{OCI_INDEX, Pusher, sha256_digest};

/// A manifest as stored: its bytes and the media type it was pushed with.
#[derive(Clone)]
struct Stored {
    media_type: String,
    bytes: Bytes,
}

#[derive(Default)]
struct Repo {
    blobs: HashMap<String, Bytes>,
    manifests: HashMap<String, Stored>,
    /// Sorted, as the tag list answers.
    tags: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, Repo>,
    /// Upload id → repository.
    uploads: HashMap<String, String>,
}

struct Shared {
    state: Mutex<State>,
    referrers_api: AtomicBool,
    next_upload: AtomicU64,
    /// `METHOD path` of every request, in arrival order.
    requests: Mutex<Vec<String>>,
}

/// A running in-memory registry; stops when dropped.
pub struct MemoryRegistry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MemoryRegistry {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// `NAME_INVALID`.
    Name(String),
    /// `DIGEST_INVALID`: the bytes do not hash to the digest, or it is malformed.
    Digest(String),
    /// `MANIFEST_INVALID`: not JSON, or no media type.
    Manifest(String),
    /// `MANIFEST_BLOB_UNKNOWN`: a config, layer or child is missing.
    BlobUnknown(String),
}

impl PushError {
    fn code(&self) -> (&'static str, &str) {
        match self {
            PushError::Name(m) => ("NAME_INVALID", m),
            PushError::Digest(m) => ("DIGEST_INVALID", m),
            PushError::Manifest(m) => ("MANIFEST_INVALID", m),
            PushError::BlobUnknown(m) => ("MANIFEST_BLOB_UNKNOWN", m),
        }
    }
}

impl MemoryRegistry {
    /// Starts on `127.0.0.1:0`, with the referrers API on. Its own thread and runtime: it
    /// works from sync and async tests alike.
    pub fn start() -> MemoryRegistry {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the memory registry");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            referrers_api: AtomicBool::new(true),
            next_upload: AtomicU64::new(1),
            requests: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("memory-registry".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("memory registry runtime");
                    runtime.block_on(async move {
                        let listener =
                            tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                        let accept = async {
                            loop {
                                let Ok((stream, _)) = listener.accept().await else {
                                    tokio::time::sleep(std::time::Duration::from_millis(10))
                                        .await;
                                    continue;
                                };
                                let shared = shared.clone();
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(move |req| {
                                        let shared = shared.clone();
                                        async move { Ok::<_, Infallible>(handle(req, &shared).await) }
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(
                                            hyper_util::rt::TokioIo::new(stream),
                                            service,
                                        )
                                        .await;
                                });
                            }
                        };
                        tokio::select! {
                            _ = stopped => {}
                            () = accept => {}
                        }
                    });
                    runtime.shutdown_background();
                })
                .expect("spawn the memory registry thread")
        };
        MemoryRegistry {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Starts with the referrers API off (a plain-text 404, as `docker-registry`).
    pub fn without_referrers_api() -> MemoryRegistry {
        let registry = Self::start();
        registry.set_referrers_api(false);
        registry
    }

    /// Turns the referrers API on or off.
    pub fn set_referrers_api(&self, on: bool) {
        self.shared.referrers_api.store(on, Ordering::SeqCst);
    }

    /// `127.0.0.1:PORT`: the registry host as it appears in image references.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `HOST/REPO` for image references in this registry.
    pub fn repo_ref(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr())
    }

    /// A pusher over HTTP, for the kit's signers.
    pub fn pusher(&self) -> Pusher {
        Pusher::plain_http(&self.addr())
    }

    /// `METHOD path?query` of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// Stores a blob in `repo`; returns its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        self.shared
            .store_blob(repo, &digest, Bytes::copy_from_slice(bytes))
            .expect("a blob under its own digest");
        digest
    }

    /// Stores a manifest in `repo` under `reference` (a tag, or its own digest); returns its
    /// digest. Panics with the registry's error when a real registry would refuse it.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        self.shared
            .store_manifest(repo, reference, media_type, Bytes::copy_from_slice(bytes))
            .unwrap_or_else(|e| panic!("put manifest {repo}:{reference}: {e:?}"))
    }

    /// Removes a manifest by digest, and the tags that name it.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> bool {
        self.shared.delete_manifest(repo, digest)
    }
}

fn valid_repo(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part.as_bytes()[0].is_ascii_alphanumeric()
        })
}

fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag.as_bytes()[0] != b'.'
        && tag.as_bytes()[0] != b'-'
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Shared {
    fn store_blob(&self, repo: &str, digest: &str, bytes: Bytes) -> Result<(), PushError> {
        if !valid_repo(repo) {
            return Err(PushError::Name(repo.to_owned()));
        }
        if !valid_digest(digest) || sha256_digest(&bytes) != digest {
            return Err(PushError::Digest(format!(
                "the blob does not hash to {digest}"
            )));
        }
        let mut state = self.state.lock().expect("lock");
        let repo = state.repos.entry(repo.to_owned()).or_default();
        repo.blobs.insert(digest.to_owned(), bytes);
        Ok(())
    }

    fn store_manifest(
        &self,
        repo_name: &str,
        reference: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<String, PushError> {
        if !valid_repo(repo_name) {
            return Err(PushError::Name(repo_name.to_owned()));
        }
        let digest = sha256_digest(&bytes);
        let by_digest = reference.contains(':');
        if by_digest && reference != digest {
            return Err(PushError::Digest(format!(
                "the manifest hashes to {digest}, not {reference}"
            )));
        }
        if !by_digest && !valid_tag(reference) {
            return Err(PushError::Manifest(format!("invalid tag {reference:?}")));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| PushError::Manifest(format!("not JSON: {e}")))?;
        let media_type = value["mediaType"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(content_type)
            .to_owned();
        if media_type.is_empty() {
            return Err(PushError::Manifest("no media type".into()));
        }
        let mut state = self.state.lock().expect("lock");
        let repo = state.repos.entry(repo_name.to_owned()).or_default();
        // What the manifest names must be here already: push children first.
        let mut needed: Vec<(&str, bool)> = Vec::new();
        if let Some(children) = value["manifests"].as_array() {
            needed.extend(
                children
                    .iter()
                    .filter_map(|c| c["digest"].as_str())
                    .map(|d| (d, true)),
            );
        }
        if let Some(d) = value["config"]["digest"].as_str() {
            needed.push((d, false));
        }
        if let Some(layers) = value["layers"].as_array() {
            needed.extend(
                layers
                    .iter()
                    .filter_map(|l| l["digest"].as_str())
                    .map(|d| (d, false)),
            );
        }
        for (d, manifest) in needed {
            let present = if manifest {
                repo.manifests.contains_key(d)
            } else {
                repo.blobs.contains_key(d)
            };
            if !present {
                return Err(PushError::BlobUnknown(format!("{d} is not in {repo_name}")));
            }
        }
        repo.manifests
            .insert(digest.clone(), Stored { media_type, bytes });
        if !by_digest {
            repo.tags.insert(reference.to_owned(), digest.clone());
        }
        Ok(digest)
    }

    fn delete_manifest(&self, repo: &str, digest: &str) -> bool {
        let mut state = self.state.lock().expect("lock");
        let Some(repo) = state.repos.get_mut(repo) else {
            return false;
        };
        repo.tags.retain(|_, d| d != digest);
        repo.manifests.remove(digest).is_some()
    }

    fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Stored)> {
        let state = self.state.lock().expect("lock");
        let repo = state.repos.get(repo)?;
        let digest = if reference.contains(':') {
            reference.to_owned()
        } else {
            repo.tags.get(reference)?.clone()
        };
        let stored = repo.manifests.get(&digest)?.clone();
        Some((digest, stored))
    }

    /// The referrers of `subject` in `repo`, as the API lists them.
    fn referrers(&self, repo: &str, subject: &str, artifact_type: Option<&str>) -> Vec<Value> {
        let state = self.state.lock().expect("lock");
        let Some(repo) = state.repos.get(repo) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Value)> = repo
            .manifests
            .iter()
            .filter_map(|(digest, stored)| {
                let value: Value = serde_json::from_slice(&stored.bytes).ok()?;
                if value["subject"]["digest"].as_str() != Some(subject) {
                    return None;
                }
                let kind = value["artifactType"]
                    .as_str()
                    .or_else(|| value["config"]["mediaType"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                if artifact_type.is_some_and(|t| t != kind) {
                    return None;
                }
                let mut entry = json!({
                    "mediaType": stored.media_type,
                    "digest": digest,
                    "size": stored.bytes.len(),
                    "artifactType": kind,
                });
                if let Some(a) = value.get("annotations") {
                    entry["annotations"] = a.clone();
                }
                Some((digest.clone(), entry))
            })
            .collect();
        // A stable order, whatever the map's.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, v)| v).collect()
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn respond(status: StatusCode, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response {
    let mut builder = hyper::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(Full::new(body.into()))
        .expect("a valid response")
}

/// An OCI error body, as distribution sends it.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]}).to_string();
    respond(status, &[("Content-Type", "application/json")], body)
}

/// `201 Created` for a pushed manifest or blob: where it is, and its digest.
fn created(location: &str, digest: &str) -> Response {
    respond(
        StatusCode::CREATED,
        &[("Location", location), ("Docker-Content-Digest", digest)],
        Bytes::new(),
    )
}

fn push_error(e: &PushError) -> Response {
    let (code, message) = e.code();
    error(StatusCode::BAD_REQUEST, code, message)
}

/// One route of the distribution API, from the path after `/v2/`.
enum Route<'a> {
    Base,
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
    Tags(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Route::Base);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
        return Some(Route::Uploads(name));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name, id));
    }
    let split = |marker: &str| {
        rest.rsplit_once(marker)
            .filter(|(name, reference)| !name.is_empty() && !reference.contains('/'))
    };
    if let Some((name, reference)) = split("/manifests/") {
        return Some(Route::Manifest(name, reference));
    }
    if let Some((name, digest)) = split("/blobs/") {
        return Some(Route::Blob(name, digest));
    }
    if let Some((name, digest)) = split("/referrers/") {
        return Some(Route::Referrers(name, digest));
    }
    None
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn handle(req: hyper::Request<Incoming>, shared: &Shared) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    shared.requests.lock().expect("lock").push(match &query {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    });
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return respond(StatusCode::BAD_REQUEST, &[], "unreadable body"),
    };
    let head = method == Method::HEAD;
    let not_found = || {
        respond(
            StatusCode::NOT_FOUND,
            &[("Content-Type", "text/plain")],
            "404 page not found\n",
        )
    };
    let Some(route) = route(&path) else {
        return not_found();
    };
    match (method.clone(), route) {
        (Method::GET | Method::HEAD, Route::Base) => respond(
            StatusCode::OK,
            &[("Content-Type", "application/json")],
            "{}",
        ),
        (Method::GET | Method::HEAD, Route::Manifest(repo, reference)) => {
            match shared.manifest(repo, reference) {
                Some((digest, stored)) => {
                    let length = stored.bytes.len().to_string();
                    let headers = [
                        ("Content-Type", stored.media_type.as_str()),
                        ("Docker-Content-Digest", digest.as_str()),
                        ("Content-Length", length.as_str()),
                    ];
                    let body = if head { Bytes::new() } else { stored.bytes };
                    respond(StatusCode::OK, &headers, body)
                }
                None => error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                ),
            }
        }
        (Method::PUT, Route::Manifest(repo, reference)) => {
            match shared.store_manifest(repo, reference, &content_type, body) {
                Ok(digest) => created(&format!("/v2/{repo}/manifests/{digest}"), &digest),
                Err(e) => push_error(&e),
            }
        }
        (Method::DELETE, Route::Manifest(repo, digest)) => {
            if shared.delete_manifest(repo, digest) {
                respond(StatusCode::ACCEPTED, &[], Bytes::new())
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                )
            }
        }
        (Method::GET | Method::HEAD, Route::Blob(repo, digest)) => {
            let blob = {
                let state = shared.state.lock().expect("lock");
                state
                    .repos
                    .get(repo)
                    .and_then(|r| r.blobs.get(digest))
                    .cloned()
            };
            match blob {
                Some(bytes) => {
                    let length = bytes.len().to_string();
                    let headers = [
                        ("Content-Type", "application/octet-stream"),
                        ("Docker-Content-Digest", digest),
                        ("Content-Length", length.as_str()),
                    ];
                    respond(
                        StatusCode::OK,
                        &headers,
                        if head { Bytes::new() } else { bytes },
                    )
                }
                None => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown"),
            }
        }
        (Method::POST, Route::Uploads(repo)) => {
            if !valid_repo(repo) {
                return push_error(&PushError::Name(repo.to_owned()));
            }
            let id = shared
                .next_upload
                .fetch_add(1, Ordering::Relaxed)
                .to_string();
            shared
                .state
                .lock()
                .expect("lock")
                .uploads
                .insert(id.clone(), repo.to_owned());
            let location = format!("/v2/{repo}/blobs/uploads/{id}");
            respond(
                StatusCode::ACCEPTED,
                &[("Location", location.as_str()), ("Range", "0-0")],
                Bytes::new(),
            )
        }
        (Method::PUT, Route::Upload(repo, id)) => {
            let known = shared.state.lock().expect("lock").uploads.remove(id);
            if known.as_deref() != Some(repo) {
                return error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "upload unknown",
                );
            }
            let Some(digest) = query_param(query.as_deref(), "digest") else {
                return push_error(&PushError::Digest("no digest".into()));
            };
            // `:` may arrive percent-encoded.
            let digest = digest.replace("%3A", ":").replace("%3a", ":");
            match shared.store_blob(repo, &digest, body) {
                Ok(()) => created(&format!("/v2/{repo}/blobs/{digest}"), &digest),
                Err(e) => push_error(&e),
            }
        }
        (Method::GET, Route::Referrers(repo, subject)) => {
            if !shared.referrers_api.load(Ordering::SeqCst) {
                return not_found();
            }
            if !valid_digest(subject) {
                return error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
            }
            let filter = query_param(query.as_deref(), "artifactType")
                .map(|t| t.replace("%2B", "+").replace("%2F", "/"));
            let manifests = shared.referrers(repo, subject, filter.as_deref());
            let body = json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": manifests,
            })
            .to_string();
            let mut headers = vec![("Content-Type", OCI_INDEX)];
            if filter.is_some() {
                headers.push(("OCI-Filters-Applied", "artifactType"));
            }
            respond(StatusCode::OK, &headers, body)
        }
        (Method::GET, Route::Tags(repo)) => {
            let tags: Option<Vec<String>> = {
                let state = shared.state.lock().expect("lock");
                state
                    .repos
                    .get(repo)
                    .map(|r| r.tags.keys().cloned().collect())
            };
            match tags {
                Some(tags) => respond(
                    StatusCode::OK,
                    &[("Content-Type", "application/json")],
                    json!({"name": repo, "tags": tags}).to_string(),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    "repository name not known",
                ),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the operation is unsupported",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{MANIFEST_ACCEPT, referrers_tag};

    #[tokio::test]
    async fn pushed_content_reads_back_by_tag_and_digest_and_lists_its_referrers() {
        let registry = MemoryRegistry::start();
        let pusher = registry.pusher();
        let image = pusher.push_image("team/app", "v1", 1).await;
        let by_tag = pusher.get_manifest("team/app", "v1").await.unwrap();
        assert_eq!(by_tag.bytes, image.manifest);
        assert_eq!(by_tag.header_digest.as_deref(), Some(image.digest.as_str()));
        let by_digest = pusher
            .get_manifest("team/app", &image.digest)
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, image.manifest);
        let referrer = pusher
            .push_referrer(
                "team/app",
                &image,
                "application/vnd.example.sbom",
                "application/vnd.oci.empty.v1+json",
                vec![("text/plain", b"sbom".to_vec(), Default::default())],
                Default::default(),
            )
            .await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!(
            "http://{}/v2/team/app/referrers/{}",
            registry.addr(),
            image.digest
        );
        let listed: Value = serde_json::from_slice(
            &client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(listed["manifests"][0]["digest"], referrer.as_str());
        assert_eq!(
            listed["manifests"][0]["artifactType"],
            "application/vnd.example.sbom"
        );
        // The pushers keep the tag schema too, so a client without the API finds it.
        let index = pusher
            .get_manifest("team/app", &referrers_tag(&image.digest))
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&index.bytes).contains(&referrer));

        registry.set_referrers_api(false);
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404);
        assert_eq!(response.text().await.unwrap(), "404 page not found\n");

        let head = client
            .head(format!(
                "http://{}/v2/team/app/manifests/v1",
                registry.addr()
            ))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(
            head.headers()["content-length"].to_str().unwrap(),
            image.manifest.len().to_string()
        );
        let tags = client
            .get(format!("http://{}/v2/team/app/tags/list", registry.addr()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let tags: Value = serde_json::from_slice(&tags).unwrap();
        assert_eq!(tags["tags"][1], "v1");
    }

    #[test]
    fn content_that_does_not_hash_to_its_digest_or_misses_its_blobs_is_refused() {
        let registry = MemoryRegistry::start();
        let config = registry.put_blob("a", b"{}");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [],
        })
        .to_string();
        let digest = registry.put_manifest("a", "v1", "", manifest.as_bytes());
        assert_eq!(digest, sha256_digest(manifest.as_bytes()));
        let shared = &registry.shared;
        assert!(matches!(
            shared.store_manifest("a", &sha256_digest(b"other"), "", manifest.clone().into()),
            Err(PushError::Digest(_))
        ));
        assert!(matches!(
            shared.store_blob("a", &sha256_digest(b"other"), Bytes::from_static(b"x")),
            Err(PushError::Digest(_))
        ));
        let missing = manifest.replace(&config, &sha256_digest(b"absent"));
        assert!(matches!(
            shared.store_manifest("a", "v2", "", missing.into()),
            Err(PushError::BlobUnknown(_))
        ));
        assert!(matches!(
            shared.store_manifest("Bad//Name", "v2", "", manifest.into()),
            Err(PushError::Name(_))
        ));
        assert!(registry.delete_manifest("a", &digest));
        assert!(shared.manifest("a", "v1").is_none(), "its tag went with it");
    }
}
