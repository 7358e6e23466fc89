//! A small OCI distribution client for tests: pushes blobs, manifests, images, indexes and
//! referrers to a [`TestRegistry`] and reads them back. It is deliberately independent of
//! signet's `registry` module (plain reqwest), so the two cannot share a bug.
//!
//! Referrers: `docker-registry` has no referrers API, so [`Pusher::push_referrer`] also
//! creates or merges the OCI 1.1 referrers tag schema index, tagged `sha256-<hex>` after the
//! subject digest. Every manifest read sends [`MANIFEST_ACCEPT`] (without it the registry
//! answers 404 for OCI manifests).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::registry::TestRegistry;
use crate::token::TokenMinter;

/// The exact `Accept` list every manifest GET/HEAD must send (distribution answers 404 for an OCI manifest otherwise).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content (`{}`), as OCI 1.1 defines it.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Annotations of a manifest, layer or descriptor (sorted, so JSON output is deterministic).
pub type Annotations = BTreeMap<String, String>;

/// `annotations(&[("k", "v")])`.
pub fn annotations(pairs: &[(&str, &str)]) -> Annotations {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, bytes))
    )
}

/// The referrers tag schema tag for a subject digest: `sha256:abc…` → `sha256-abc…`.
pub fn referrers_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

/// The repository named in a distribution API URL (`.../v2/<repo>/manifests/...`).
fn repo_in_url(url: &str) -> Option<&str> {
    let path = url.split_once("/v2/")?.1;
    ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| path.find(marker))
        .min()
        .map(|end| &path[..end])
}

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Annotations,
    /// `{"os": ..., "architecture": ...}` for index entries.
    pub platform: Option<Value>,
}

impl Descriptor {
    /// A descriptor of `bytes` with this media type.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: Annotations::new(),
            platform: None,
        }
    }

    /// The descriptor as OCI JSON (optional fields only when set).
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        });
        if let Some(artifact_type) = &self.artifact_type {
            value["artifactType"] = json!(artifact_type);
        }
        if !self.annotations.is_empty() {
            value["annotations"] = json!(self.annotations);
        }
        if let Some(platform) = &self.platform {
            value["platform"] = platform.clone();
        }
        value
    }
}

/// A manifest (image or index) that is in the registry.
#[derive(Clone, Debug)]
pub struct PushedImage {
    pub repo: String,
    /// The tag it was pushed under, if any.
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The exact manifest bytes (the digest is their SHA-256).
    pub manifest: Vec<u8>,
    /// `{"os": ..., "architecture": ...}` for platform images meant for an index.
    pub platform: Option<Value>,
    /// For an index: its platform images, in index order.
    pub children: Vec<PushedImage>,
}

impl PushedImage {
    /// Its descriptor (with platform when set), e.g. for an index or a `subject`.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            artifact_type: None,
            annotations: Annotations::new(),
            platform: self.platform.clone(),
        }
    }

    /// `HOST/REPO@sha256:…`.
    pub fn reference_by_digest(&self, registry_host: &str) -> String {
        format!("{registry_host}/{}@{}", self.repo, self.digest)
    }

    /// `HOST/REPO:TAG` (panics when pushed without a tag).
    pub fn reference_by_tag(&self, registry_host: &str) -> String {
        let tag = self.tag.as_deref().expect("image was pushed without a tag");
        format!("{registry_host}/{}:{tag}", self.repo)
    }

    /// The `.sig` tag Cosign uses for signatures of this manifest: `sha256-<hex>.sig`.
    pub fn cosign_signature_tag(&self) -> String {
        format!("{}.sig", referrers_tag(&self.digest))
    }
}

/// A manifest as read back from the registry.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The response `Content-Type`.
    pub media_type: String,
    /// `Docker-Content-Digest` as the registry sent it.
    pub header_digest: Option<String>,
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// SHA-256 of the bytes received.
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("manifest is JSON")
    }
}

/// Pushes to and reads from one [`TestRegistry`] over the distribution API.
#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    base_url: String,
    host: String,
    credentials: Option<(String, String)>,
    /// For token-auth registries: mint a token per request instead of Basic auth.
    minter: Option<Arc<TokenMinter>>,
}

impl Pusher {
    /// A pusher for this registry, with its credentials when it requires them.
    pub fn new(registry: &TestRegistry) -> Pusher {
        Pusher {
            client: registry.client(),
            base_url: registry.base_url(),
            host: registry.addr(),
            credentials: registry
                .credentials()
                .map(|(user, password)| (user.to_owned(), password.to_owned())),
            minter: registry.token_server().map(|server| server.minter()),
        }
    }

    /// A pusher for a plain-HTTP registry at `host` (`HOST:PORT`) that needs no credentials,
    /// such as a `docker-registry` on loopback (the `signet-dev` tool's registries).
    pub fn plain_http(host: &str) -> Pusher {
        Pusher {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("build reqwest client"),
            base_url: format!("http://{host}"),
            host: host.to_owned(),
            credentials: None,
            minter: None,
        }
    }

    /// The same pusher without credentials (to see the registry's 401).
    pub fn anonymous(mut self) -> Pusher {
        self.credentials = None;
        self
    }

    /// The same pusher with other credentials.
    pub fn with_credentials(mut self, user: &str, password: &str) -> Pusher {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A request to `path` (starting with `/v2/`) or to an absolute URL, with credentials.
    pub fn request(&self, method: reqwest::Method, path_or_url: &str) -> reqwest::RequestBuilder {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base_url)
        };
        let request = self.client.request(method, url.as_str());
        match (&self.credentials, &self.minter) {
            // The test pusher skips the challenge dance: it signs its own token for the
            // repository in the path (signet's client must do the real flow).
            (Some((user, _)), Some(minter)) => {
                request.bearer_auth(minter.mint_for_repo(user, repo_in_url(&url)))
            }
            (Some((user, password)), None) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        }
    }

    /// Uploads a blob (monolithic: POST, then PUT with the digest) and returns its descriptor
    /// with `application/octet-stream`; callers set the media type they mean.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Descriptor {
        let descriptor = Descriptor::of("application/octet-stream", bytes);
        let response = self
            .request(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("POST blob upload");
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "start blob upload to {repo}: {}",
            response.text().await.unwrap_or_default()
        );
        let location = response
            .headers()
            .get(header::LOCATION)
            .expect("upload Location header")
            .to_str()
            .expect("Location is ASCII")
            .to_owned();
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={}", descriptor.digest);
        let response = self
            .request(reqwest::Method::PUT, &url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT blob");
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "finish blob upload to {repo}: {}",
            response.text().await.unwrap_or_default()
        );
        descriptor
    }

    /// PUTs a manifest under `reference` (tag or digest) and returns its digest, checking the
    /// registry computed the same.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
            )
            .header(header::CONTENT_TYPE, media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT manifest");
        let status = response.status();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "push manifest {repo}:{reference}: {}",
            response.text().await.unwrap_or_default()
        );
        if let Some(header_digest) = header_digest {
            assert_eq!(
                header_digest, digest,
                "registry digest of {repo}:{reference}"
            );
        }
        digest
    }

    /// GETs a manifest with [`MANIFEST_ACCEPT`]; `None` on 404.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Option<FetchedManifest> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
            )
            .header(header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .expect("GET manifest");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET manifest {repo}:{reference}: {}",
            response.status()
        );
        let header_value = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header_value("content-type").unwrap_or_default();
        let header_digest = header_value("docker-content-digest");
        let bytes = response.bytes().await.expect("manifest body").to_vec();
        Some(FetchedManifest {
            media_type,
            header_digest,
            bytes,
        })
    }

    /// Reads `repo:reference` (a tag or a digest) back as a [`PushedImage`] (no platform, no
    /// children), e.g. to sign an image pushed by another tool; `None` on 404.
    pub async fn fetch_image(&self, repo: &str, reference: &str) -> Option<PushedImage> {
        let fetched = self.get_manifest(repo, reference).await?;
        let media_type = match fetched.json()["mediaType"].as_str() {
            Some(media_type) => media_type.to_owned(),
            None => fetched.media_type.clone(),
        };
        Some(PushedImage {
            repo: repo.to_owned(),
            tag: (!reference.contains(':')).then(|| reference.to_owned()),
            digest: fetched.digest(),
            media_type,
            size: fetched.bytes.len() as u64,
            manifest: fetched.bytes,
            platform: None,
            children: Vec::new(),
        })
    }

    /// GETs a blob; `None` on 404.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("GET blob");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET blob {repo}@{digest}: {}",
            response.status()
        );
        Some(response.bytes().await.expect("blob body").to_vec())
    }

    /// Deletes a manifest by digest (the test registry has deletes enabled). Tags pointing at
    /// it disappear with it.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        let response = self
            .request(
                reqwest::Method::DELETE,
                &format!("/v2/{repo}/manifests/{digest}"),
            )
            .send()
            .await
            .expect("DELETE manifest");
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "delete {repo}@{digest}"
        );
    }

    /// Pushes a tiny OCI image (config + one layer, both distinct per `seed`) tagged `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: u64) -> PushedImage {
        self.push_platform_image(repo, Some(tag), seed, "linux", "amd64")
            .await
    }

    /// Pushes a tiny OCI image for one platform, by tag or (with `tag: None`) by digest only,
    /// as index children are. Its [`PushedImage::platform`] is set for [`Pusher::push_index`].
    pub async fn push_platform_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        seed: u64,
        os: &str,
        architecture: &str,
    ) -> PushedImage {
        let layer_bytes = format!("signet test layer {seed} {os}/{architecture}\n").into_bytes();
        let mut layer = self.push_blob(repo, &layer_bytes).await;
        layer.media_type = OCI_LAYER_TAR.to_owned();
        let config_bytes = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": os,
            "config": {"Labels": {"dev.signet.test.seed": seed.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        }))
        .expect("config JSON");
        let mut config = self.push_blob(repo, &config_bytes).await;
        config.media_type = OCI_CONFIG.to_owned();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        }))
        .expect("manifest JSON");
        let digest = sha256_digest(&manifest);
        self.push_manifest(repo, tag.unwrap_or(&digest), OCI_MANIFEST, &manifest)
            .await;
        PushedImage {
            repo: repo.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
            media_type: OCI_MANIFEST.to_owned(),
            size: manifest.len() as u64,
            manifest,
            platform: Some(json!({"architecture": architecture, "os": os})),
            children: Vec::new(),
        }
    }

    /// Pushes an OCI image index over already-pushed platform images (children must exist
    /// first or the registry answers `400 MANIFEST_BLOB_UNKNOWN`).
    pub async fn push_index(&self, repo: &str, tag: &str, children: &[PushedImage]) -> PushedImage {
        let manifests: Vec<Value> = children
            .iter()
            .map(|child| child.descriptor().to_json())
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("index JSON");
        let digest = self.push_manifest(repo, tag, OCI_INDEX, &manifest).await;
        PushedImage {
            repo: repo.to_owned(),
            tag: Some(tag.to_owned()),
            digest,
            media_type: OCI_INDEX.to_owned(),
            size: manifest.len() as u64,
            manifest,
            platform: None,
            children: children.to_vec(),
        }
    }

    /// A multi-arch image: linux/amd64 and linux/arm64 children (by digest), then the index
    /// tagged `tag`. The children are in [`PushedImage::children`].
    pub async fn push_multiarch(&self, repo: &str, tag: &str, seed: u64) -> PushedImage {
        let amd64 = self
            .push_platform_image(repo, None, seed, "linux", "amd64")
            .await;
        let arm64 = self
            .push_platform_image(repo, None, seed, "linux", "arm64")
            .await;
        self.push_index(repo, tag, &[amd64, arm64]).await
    }

    /// Pushes an OCI 1.1 referrer of `subject` (an image manifest with `subject`,
    /// `artifactType` and a `{}` config of `config_media_type`), by digest, and adds it to the
    /// `sha256-<hex>` referrers tag schema index. Returns the referrer's digest.
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &PushedImage,
        artifact_type: &str,
        config_media_type: &str,
        layers: Vec<(&str, Vec<u8>, Annotations)>,
        manifest_annotations: Annotations,
    ) -> String {
        let mut config = self.push_blob(repo, EMPTY_JSON).await;
        config.media_type = config_media_type.to_owned();
        let mut layer_descriptors = Vec::new();
        for (media_type, bytes, layer_annotations) in layers {
            let mut layer = self.push_blob(repo, &bytes).await;
            layer.media_type = media_type.to_owned();
            layer.annotations = layer_annotations;
            layer_descriptors.push(layer.to_json());
        }
        let subject_descriptor = Descriptor {
            platform: None,
            ..subject.descriptor()
        };
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.to_json(),
            "layers": layer_descriptors,
            "subject": subject_descriptor.to_json(),
        });
        if !manifest_annotations.is_empty() {
            manifest["annotations"] = json!(manifest_annotations);
        }
        let bytes = serde_json::to_vec(&manifest).expect("referrer JSON");
        self.push_referrer_manifest(repo, &bytes).await
    }

    /// Pushes ready-made referrer manifest bytes (e.g. from a Notation OCI layout; their blobs
    /// pushed already) by digest and adds them to the referrers tag index of their `subject`.
    pub async fn push_referrer_manifest(&self, repo: &str, manifest: &[u8]) -> String {
        let value: Value = serde_json::from_slice(manifest).expect("referrer manifest is JSON");
        let media_type = value["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
        let digest = sha256_digest(manifest);
        self.push_manifest(repo, &digest, media_type, manifest)
            .await;
        let subject = value["subject"]["digest"]
            .as_str()
            .expect("referrer manifest has subject.digest");
        // The referrers API reports artifactType, falling back to the config media type.
        let artifact_type = value["artifactType"]
            .as_str()
            .or_else(|| value["config"]["mediaType"].as_str())
            .map(str::to_owned);
        let annotations: Annotations = value
            .get("annotations")
            .map(|a| serde_json::from_value(a.clone()).expect("string annotations"))
            .unwrap_or_default();
        let descriptor = Descriptor {
            media_type: media_type.to_owned(),
            digest: digest.clone(),
            size: manifest.len() as u64,
            artifact_type,
            annotations,
            platform: None,
        };
        self.add_to_referrers_index(repo, subject, &descriptor)
            .await;
        digest
    }

    /// Creates or merges the referrers tag schema index `sha256-<hex>` of `subject_digest`
    /// with `referrer` (replacing an entry of the same digest). Returns the index digest.
    pub async fn add_to_referrers_index(
        &self,
        repo: &str,
        subject_digest: &str,
        referrer: &Descriptor,
    ) -> String {
        let tag = referrers_tag(subject_digest);
        let mut manifests: Vec<Value> = match self.get_manifest(repo, &tag).await {
            Some(existing) => existing.json()["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        manifests.retain(|entry| entry["digest"].as_str() != Some(referrer.digest.as_str()));
        manifests.push(referrer.to_json());
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("referrers index JSON");
        self.push_manifest(repo, &tag, OCI_INDEX, &index).await
    }

    /// The referrers tag schema index of `subject_digest`, if any.
    pub async fn get_referrers_index(&self, repo: &str, subject_digest: &str) -> Option<Value> {
        self.get_manifest(repo, &referrers_tag(subject_digest))
            .await
            .map(|m| m.json())
    }
}
