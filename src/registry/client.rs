//! [`HttpRegistry`]: the OCI distribution API over `reqwest`, with the limits of
//! [`super::Limits`], Basic and Bearer authentication, and per-host concurrency bounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;

use super::{
    Descriptor, Limits, MANIFEST_ACCEPT, Manifest, ManifestBody, OCI_INDEX, Registry,
    RegistryError, Resolved,
};
use crate::image::{Digest, ImageRef};
use crate::metrics::Metrics;
use crate::reason::Reason;

/// How long to remember that a host has no referrers API (it answered 404), so later lookups
/// go straight to the tag schema and save a round trip.
const NO_REFERRERS_API_TTL: Duration = Duration::from_secs(600);
/// The longest `Retry-After` signet waits for inside one request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);
const MAX_CONCURRENT_PER_HOST: usize = 32;
const MAX_REDIRECTS: usize = 3;

/// Username and password for one registry host. The password never reaches `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Hosts (`host` or `host:port`, exact) reached over plain HTTP. Everything else is HTTPS.
    pub insecure: Vec<String>,
    /// Extra PEM CA certificates trusted for registry TLS, besides the system roots.
    pub ca_pem: Vec<Vec<u8>>,
    /// Credentials by exact registry host.
    pub credentials: HashMap<String, Credentials>,
    pub limits: Limits,
}

impl RegistryConfig {
    /// Reads the `auths` of a docker `config.json`. `credHelpers` and `credsStore` cannot be
    /// run here (no helper binaries in the image); they are reported so the caller can warn.
    pub fn docker_config(
        text: &str,
    ) -> Result<(HashMap<String, Credentials>, Vec<String>), String> {
        use base64::Engine;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct DockerConfig {
            #[serde(default)]
            auths: HashMap<String, AuthEntry>,
            #[serde(default)]
            cred_helpers: HashMap<String, String>,
            #[serde(default)]
            creds_store: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct AuthEntry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        let cfg: DockerConfig =
            serde_json::from_str(text).map_err(|e| format!("not a docker config.json: {e}"))?;
        let mut creds = HashMap::new();
        for (host, entry) in cfg.auths {
            let host = normalise_config_host(&host);
            let c = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| format!("auths[{host}].auth is not base64: {e}"))?;
                    let raw = String::from_utf8(raw)
                        .map_err(|_| format!("auths[{host}].auth is not UTF-8"))?;
                    let (u, p) = raw
                        .split_once(':')
                        .ok_or_else(|| format!("auths[{host}].auth is not user:password"))?;
                    Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                }
                (None, Some(username), Some(password)) => Credentials { username, password },
                _ => continue,
            };
            creds.insert(host, c);
        }
        let mut ignored: Vec<String> = cfg.cred_helpers.into_keys().collect();
        if let Some(store) = cfg.creds_store {
            ignored.push(format!("credsStore {store}"));
        }
        Ok((creds, ignored))
    }
}

/// `https://index.docker.io/v1/` and friends become the host signet uses in references.
fn normalise_config_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// The registry client.
pub struct HttpRegistry {
    http: reqwest::Client,
    config: RegistryConfig,
    metrics: Arc<Metrics>,
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    no_referrers_api: Mutex<HashMap<String, Instant>>,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("insecure", &self.config.insecure)
            .finish_non_exhaustive()
    }
}

struct Bearer {
    realm: String,
    service: Option<String>,
}

impl HttpRegistry {
    pub fn new(config: RegistryConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.limits.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(redirect_policy());
        for pem in &config.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("registry CA bundle: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpRegistry {
            http,
            config,
            metrics,
            tokens: Mutex::new(HashMap::new()),
            no_referrers_api: Mutex::new(HashMap::new()),
            per_host: Mutex::new(HashMap::new()),
        })
    }

    fn base_url(&self, registry: &str) -> String {
        let host = match registry {
            "docker.io" => "registry-1.docker.io",
            h => h,
        };
        let scheme = if self.config.insecure.iter().any(|i| i == registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut map = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_CONCURRENT_PER_HOST)))
            .clone()
    }

    fn cached_token(&self, host: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&(host.to_string(), scope.to_string()))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Sends one request with authentication, one retry for a Bearer challenge and one for a
    /// short `Retry-After`; records metrics. Redirects are followed by reqwest, which drops
    /// `Authorization` when the host changes.
    async fn send(
        &self,
        operation: &'static str,
        image: &ImageRef,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let host = image.registry();
        let url = format!("{}{}", self.base_url(host), path);
        let scope = format!("repository:{}:pull", image.repository());
        let permit = self.semaphore(host);
        let _permit = permit
            .acquire()
            .await
            .map_err(|_| RegistryError::new(Reason::Internal, "registry client shut down"))?;
        let mut challenged = false;
        let mut throttled = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(self.config.limits.request_timeout);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(token) = self.cached_token(host, &scope) {
                req = req.bearer_auth(token);
            } else if let Some(c) = self.config.credentials.get(host) {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
            let started = Instant::now();
            let result = req.send().await;
            let status_label = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(_) => "error".into(),
            };
            self.metrics
                .registry_requests
                .with_label_values(&[operation, status_label.as_str()])
                .inc();
            self.metrics
                .registry_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
            let resp = result
                .map_err(|e| transport_error(host, &e, self.config.limits.request_timeout))?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let Some(bearer) = parse_bearer(resp.headers()) else {
                        return Err(RegistryError::new(
                            Reason::Unauthorized,
                            format!(
                                "{host} requires authentication (401) and no usable credentials are configured"
                            ),
                        ));
                    };
                    self.fetch_token(host, &scope, &bearer).await?;
                    continue;
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE if !throttled => {
                    throttled = true;
                    let wait = retry_after(resp.headers()).unwrap_or(Duration::from_millis(200));
                    if wait > MAX_RETRY_AFTER {
                        return Err(status_error(host, resp.status()));
                    }
                    let jitter = Duration::from_millis(rand::random_range(0..50));
                    tokio::time::sleep(wait + jitter).await;
                    continue;
                }
                _ => return Ok(resp),
            }
        }
    }

    /// The Bearer token flow: ask the realm for a pull token for this repository, with the
    /// host's credentials when configured, and cache it until it expires.
    async fn fetch_token(
        &self,
        host: &str,
        scope: &str,
        bearer: &Bearer,
    ) -> Result<(), RegistryError> {
        let mut req = self
            .http
            .get(&bearer.realm)
            .timeout(self.config.limits.request_timeout)
            .query(&[("scope", scope)]);
        if let Some(s) = &bearer.service {
            req = req.query(&[("service", s)]);
        }
        if let Some(c) = self.config.credentials.get(host) {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(host, &e, self.config.limits.request_timeout))?;
        self.metrics
            .registry_requests
            .with_label_values(&["token", resp.status().as_str()])
            .inc();
        if !resp.status().is_success() {
            return Err(RegistryError::new(
                Reason::Unauthorized,
                format!(
                    "the token service of {host} refused a pull token ({})",
                    resp.status()
                ),
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body = read_capped(resp, 64 << 10, host).await?;
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::new(
                Reason::Unauthorized,
                format!("the token service of {host} sent an unreadable answer: {e}"),
            )
        })?;
        let token = t.token.or(t.access_token).ok_or_else(|| {
            RegistryError::new(
                Reason::Unauthorized,
                format!("the token service of {host} sent no token"),
            )
        })?;
        // Expire a little early so a token is never used at the edge of its lifetime.
        let ttl = Duration::from_secs(t.expires_in.unwrap_or(60).clamp(10, 3600).saturating_sub(5));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, exp)| *exp > Instant::now());
        tokens.insert(
            (host.to_string(), scope.to_string()),
            (token, Instant::now() + ttl),
        );
        Ok(())
    }

    fn referrers_api_known_missing(&self, host: &str) -> bool {
        let map = self
            .no_referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(host)
            .is_some_and(|t| t.elapsed() < NO_REFERRERS_API_TTL)
    }

    fn mark_no_referrers_api(&self, host: &str) {
        let mut map = self
            .no_referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.insert(host.to_string(), Instant::now());
    }

    fn index_entries(
        &self,
        body: &ManifestBody,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let max = self.config.limits.max_referrers;
        if body.manifests.len() > max {
            return Err(RegistryError::new(
                Reason::TooManyReferrers,
                format!(
                    "{} has {} referrers, more than the limit of {max}",
                    digest.short(),
                    body.manifests.len()
                ),
            ));
        }
        Ok(body.manifests.clone())
    }
}

fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

fn transport_error(host: &str, e: &reqwest::Error, timeout: Duration) -> RegistryError {
    if e.is_timeout() {
        RegistryError::new(
            Reason::RegistryUnreachable,
            format!("{host} did not answer within {}s", timeout.as_secs_f32()),
        )
    } else if e.is_redirect() {
        RegistryError::new(
            Reason::RegistryUnreachable,
            format!("{host} redirected too many times"),
        )
    } else if e.is_connect() {
        RegistryError::new(
            Reason::RegistryUnreachable,
            format!("cannot connect to {host}"),
        )
    } else {
        // reqwest's error chain can name the URL; keep the message to the host.
        RegistryError::new(
            Reason::RegistryUnreachable,
            format!("request to {host} failed"),
        )
    }
}

fn status_error(host: &str, status: StatusCode) -> RegistryError {
    let reason = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Reason::Unauthorized,
        StatusCode::NOT_FOUND => Reason::NotFound,
        StatusCode::TOO_MANY_REQUESTS => Reason::Throttled,
        _ => Reason::RegistryUnreachable,
    };
    RegistryError::new(reason, format!("{host} answered {status}"))
}

fn parse_bearer(headers: &HeaderMap) -> Option<Bearer> {
    let value = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let rest = value
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| value.trim().strip_prefix("bearer "))?;
    let mut realm = None;
    let mut service = None;
    for part in split_params(rest) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    let realm = realm?;
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return None;
    }
    Some(Bearer { realm, service })
}

/// Splits `a="x,y",b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Reads a body, failing as soon as it exceeds `cap` (before buffering more).
async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
    host: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = || {
        RegistryError::new(
            Reason::TooLarge,
            format!("a response from {host} exceeds {cap} bytes"),
        )
    };
    if resp.content_length().is_some_and(|l| l > cap) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| {
        RegistryError::new(
            Reason::RegistryUnreachable,
            format!("{host} broke off a response"),
        )
    })? {
        if (buf.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[async_trait::async_trait]
impl Registry for HttpRegistry {
    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        let host = image.registry();
        let path = format!("/v2/{}/manifests/{}", image.repository(), image.reference());
        let resp = self
            .send("resolve", image, Method::HEAD, &path, Some(MANIFEST_ACCEPT))
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::new(
                    Reason::NotFound,
                    format!("{} not found in {host}", image.reference()),
                ));
            }
            s => return Err(status_error(host, s)),
        }
        let headers = resp.headers();
        let media_type = header_str(headers, CONTENT_TYPE.as_str()).unwrap_or_default();
        // The header, not `resp.content_length()`: reqwest reports the (empty) body's length,
        // 0, for every HEAD (seanmonstar/reqwest#1814), which forced a GET per resolve.
        let size = header_str(headers, CONTENT_LENGTH.as_str())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let claimed = header_str(headers, "docker-content-digest");
        match (image.digest(), claimed) {
            (Some(d), Some(c)) if c != d.as_str() => Err(RegistryError::new(
                Reason::DigestMismatch,
                format!("{host} answered {c} for {d}"),
            )),
            (Some(_), _) | (None, Some(_)) if size > 0 && !media_type.is_empty() => {
                let digest = match image.digest() {
                    Some(d) => d.clone(),
                    None => claimed_digest(headers, host)?,
                };
                Ok(Resolved {
                    digest,
                    media_type,
                    size,
                })
            }
            // No digest header or no size: fetch the manifest and hash it ourselves.
            _ => {
                let m = self
                    .manifest(image, image.reference())
                    .await?
                    .ok_or_else(|| {
                        RegistryError::new(
                            Reason::NotFound,
                            format!("{} not found in {host}", image.reference()),
                        )
                    })?;
                Ok(Resolved {
                    size: m.bytes.len() as u64,
                    digest: m.digest,
                    media_type: m.media_type,
                })
            }
        }
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let host = image.registry();
        let path = format!("/v2/{}/manifests/{}", image.repository(), reference);
        let resp = self
            .send("manifest", image, Method::GET, &path, Some(MANIFEST_ACCEPT))
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(status_error(host, s)),
        }
        let media_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let claimed = header_str(resp.headers(), "docker-content-digest");
        let bytes = read_capped(resp, self.config.limits.max_manifest_bytes, host).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(want) => {
                if !want.matches(&bytes) {
                    return Err(RegistryError::new(
                        Reason::DigestMismatch,
                        format!("{host} sent a manifest that does not hash to {want}"),
                    ));
                }
                want
            }
            Err(_) => {
                let computed = Digest::sha256_of(&bytes);
                if let Some(c) = claimed.as_deref().and_then(|c| c.parse::<Digest>().ok()) {
                    if !c.matches(&bytes) {
                        return Err(RegistryError::new(
                            Reason::DigestMismatch,
                            format!(
                                "{host} claims {c} for {reference}, but the manifest hashes to {computed}"
                            ),
                        ));
                    }
                }
                computed
            }
        };
        let body: ManifestBody = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::new(
                Reason::Malformed,
                format!("manifest {} from {host} is not valid: {e}", digest.short()),
            )
        })?;
        let media_type = body.media_type.clone().unwrap_or(media_type);
        Ok(Some(Manifest {
            digest,
            media_type,
            bytes,
            body,
        }))
    }

    async fn blob(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let host = image.registry();
        let cap = self.config.limits.max_blob_bytes;
        if descriptor.size > cap {
            return Err(RegistryError::new(
                Reason::TooLarge,
                format!(
                    "blob {} is {} bytes, more than the limit of {cap}",
                    descriptor.digest.short(),
                    descriptor.size
                ),
            ));
        }
        let path = format!("/v2/{}/blobs/{}", image.repository(), descriptor.digest);
        let resp = self.send("blob", image, Method::GET, &path, None).await?;
        if !resp.status().is_success() {
            return Err(status_error(host, resp.status()));
        }
        // Never read more than the descriptor promised.
        let bytes = read_capped(resp, descriptor.size.min(cap), host).await?;
        if !descriptor.digest.matches(&bytes) {
            return Err(RegistryError::new(
                Reason::DigestMismatch,
                format!(
                    "{host} sent a blob that does not hash to {}",
                    descriptor.digest
                ),
            ));
        }
        Ok(bytes)
    }

    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let host = image.registry();
        if !self.referrers_api_known_missing(host) {
            let path = format!("/v2/{}/referrers/{}", image.repository(), digest);
            let resp = self
                .send("referrers", image, Method::GET, &path, Some(OCI_INDEX))
                .await?;
            if resp.status().is_success() {
                let bytes = read_capped(resp, self.config.limits.max_manifest_bytes, host).await?;
                let body: ManifestBody = serde_json::from_slice(&bytes).map_err(|e| {
                    RegistryError::new(
                        Reason::Malformed,
                        format!("the referrers list from {host} is not valid: {e}"),
                    )
                })?;
                return self.index_entries(&body, digest);
            }
            if resp.status() != StatusCode::NOT_FOUND {
                return Err(status_error(host, resp.status()));
            }
            // A registry with the API answers 200 even for no referrers: 404 means no API.
            self.mark_no_referrers_api(host);
        }
        match self.manifest(image, &digest.tag_form()).await? {
            Some(index) => self.index_entries(&index.body, digest),
            None => Ok(Vec::new()),
        }
    }

    fn limits(&self) -> Limits {
        self.config.limits
    }
}

fn claimed_digest(headers: &HeaderMap, host: &str) -> Result<Digest, RegistryError> {
    header_str(headers, "docker-content-digest")
        .and_then(|c| c.parse::<Digest>().ok())
        .ok_or_else(|| {
            RegistryError::new(
                Reason::Malformed,
                format!("{host} sent an invalid Docker-Content-Digest"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a,b:pull""#
                .parse()
                .unwrap(),
        );
        let b = parse_bearer(&h).unwrap();
        assert_eq!(b.realm, "https://auth.example.com/token");
        assert_eq!(b.service.as_deref(), Some("registry.example.com"));
        h.insert(WWW_AUTHENTICATE, "Basic realm=\"x\"".parse().unwrap());
        assert!(parse_bearer(&h).is_none());
        h.insert(
            WWW_AUTHENTICATE,
            "Bearer realm=\"file:///etc/passwd\"".parse().unwrap(),
        );
        assert!(parse_bearer(&h).is_none(), "only http(s) realms");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn docker_config_auths() {
        let text = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"r.example.com:5000":{"username":"u","password":"p"}},"credHelpers":{"gcr.io":"gcloud"}}"#;
        let (creds, ignored) = RegistryConfig::docker_config(text).unwrap();
        assert_eq!(creds["docker.io"].username, "user");
        assert_eq!(creds["docker.io"].password, "pass");
        assert_eq!(creds["r.example.com:5000"].username, "u");
        assert_eq!(ignored, vec!["gcr.io".to_string()]);
        assert!(!format!("{:?}", creds["docker.io"]).contains("pass"));
        assert!(RegistryConfig::docker_config("{").is_err());
    }
}
