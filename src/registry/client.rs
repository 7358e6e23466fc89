//! [`HttpRegistry`]: the OCI distribution API over `reqwest`, with the limits of
//! [`super::Limits`], Basic and Bearer authentication ([`super::auth`]), egress rules
//! ([`super::ssrf`]), per-host concurrency bounds, and retries that never outlive the review
//! deadline ([`super::with_deadline`]).
//!
//! Every HTTP exchange, token fetches and retries included, goes through
//! [`HttpRegistry::execute`], which records `signet_registry_requests_total{operation,status}`
//! (status: the numeric code, `timeout` or `error`) and the duration histogram.
//!
//! Like `registry`: must not import `policy`, `verify` or `decision`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{self, Bearer, ChallengeError, CredentialSource, Credentials};
use super::ssrf::{DenyList, FilteringResolver};
use super::transport::{
    backoff, header_str, is_transient, is_transient_status, link_next, read_capped,
    redirect_policy, retry_after, status_error, transport_error, url_host,
};
use super::{
    Descriptor, Limits, MANIFEST_ACCEPT, Manifest, ManifestBody, OCI_INDEX, Registry,
    RegistryError, Resolved, SetupError, remaining,
};
use crate::image::{Digest, ImageRef};
use crate::metrics::Metrics;
use crate::reason::Reason;

/// How long to remember that a host has no referrers API (it answered a 404 that is about the
/// API, not about the repository), so later lookups go straight to the tag schema and save a
/// round trip. A repository with no tag-schema index asks the API again (see
/// [`HttpRegistry::referrers`]), so one repository's 404 cannot hide the referrers of others.
const NO_REFERRERS_API_TTL: Duration = Duration::from_secs(600);
/// The most of a 404's body read to tell "no such API" from "no such repository".
const MAX_ERROR_BODY_BYTES: u64 = 4 << 10;
/// The longest `Retry-After` signet waits for inside one request; longer ones fail at once
/// as `throttled` (a webhook has seconds, not minutes).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);
/// The wait when a 429 or 503 names none.
const DEFAULT_RETRY_WAIT: Duration = Duration::from_millis(200);
/// Retries of one idempotent request after a 5xx or a broken connection (so at most three
/// attempts).
const MAX_RETRIES: u32 = 2;
/// Retries of one request after 429s with a short `Retry-After`, each inside the deadline.
const MAX_THROTTLE_RETRIES: u32 = 5;
/// A retry is only worth it if this much of the deadline is left after the wait.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(100);
/// The longest a registry's own `Retry-After` keeps signet away from the repository it was
/// about.
const MAX_THROTTLE_MEMORY: Duration = Duration::from_secs(60);
/// The longest signet keeps away from a whole host, once long `Retry-After`s came from two of
/// its repositories: a few seconds, since a single path's answers cannot be told from the
/// host's and a hostile path must not bar a shared registry for everyone.
const MAX_HOST_THROTTLE: Duration = Duration::from_secs(5);
/// Pages of a referrers list followed through `Link: rel="next"`.
const MAX_REFERRER_PAGES: usize = 10;
/// Token responses are small JSON documents.
const MAX_TOKEN_BYTES: u64 = 64 << 10;

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Hosts (`host` or `host:port`, normalised like image hosts) reached over plain HTTP.
    /// Everything else is HTTPS, and an HTTPS registry is never contacted over plain HTTP,
    /// redirects included.
    pub insecure: Vec<String>,
    /// Extra PEM CA certificates trusted for registry TLS, besides the system roots.
    pub ca_pem: Vec<Vec<u8>>,
    /// PEM CA bundles trusted for one registry only (`host` or `host:port`, normalised),
    /// besides the system roots and `ca_pem`: a private registry's CA does not vouch for other
    /// hosts. It also covers that registry's token realm and redirects (same client).
    pub registry_ca_pem: HashMap<String, Vec<u8>>,
    /// Credentials by registry host (normalised like image hosts).
    pub credentials: HashMap<String, Credentials>,
    /// Token-realm hosts allowed to receive a registry's credentials besides the registry's
    /// own host name (e.g. `registry.gitlab.com` → `gitlab.com`), by registry host.
    pub realm_hosts: HashMap<String, Vec<String>>,
    /// Address ranges never connected to (checked on resolved addresses at connect time).
    pub deny: DenyList,
    /// The Azure identity: registries it marks as ACR are read with it ([`super::acr`]).
    pub azure: Option<crate::azure::AzureConfig>,
    pub limits: Limits,
}

impl RegistryConfig {
    /// Reads the `auths` of a docker `config.json` (`auth::docker_config` parses it).
    pub fn docker_config(
        text: &str,
    ) -> Result<(HashMap<String, Credentials>, Vec<String>), SetupError> {
        auth::docker_config(text)
    }
}

/// The HTTP clients for one trust configuration.
struct Clients {
    /// Registry requests: redirects followed under [`redirect_policy`].
    http: reqwest::Client,
    /// Token requests: no redirects at all.
    token: reqwest::Client,
}

/// Cached Bearer tokens, by (registry host, scope, credentials identity).
type TokenKey = (String, String, Option<String>);

/// The registry client.
pub struct HttpRegistry {
    default_clients: Clients,
    /// Clients that also trust a registry's own CA, by normalised registry host.
    per_registry: HashMap<String, Clients>,
    config: RegistryConfig,
    credentials: Arc<dyn CredentialSource>,
    deny: Arc<DenyList>,
    metrics: Arc<Metrics>,
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
    /// When a referrers-API 404 was seen: by `(host, None)` for the host, `(host, Some(repo))`
    /// for one repository.
    no_referrers_api: Mutex<HashMap<(String, Option<String>), Instant>>,
    /// Repositories (and, briefly, hosts) that answered 429 with a `Retry-After` too long to
    /// wait inside a review: until then every request to them fails at once as `throttled`,
    /// for all reviews, instead of adding load to a registry that asked for less.
    throttled_until: Mutex<Throttles>,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Azure Container Registries reached with the workload identity ([`super::acr`]).
    acr: Option<Arc<super::acr::Acr>>,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("insecure", &self.config.insecure)
            .finish_non_exhaustive()
    }
}

impl HttpRegistry {
    pub fn new(config: RegistryConfig, metrics: Arc<Metrics>) -> Result<Self, SetupError> {
        let config = normalise_hosts(config)?;
        let deny = Arc::new(config.deny.clone());
        let insecure: Arc<HashSet<String>> = Arc::new(config.insecure.iter().cloned().collect());
        let build = |redirect: reqwest::redirect::Policy, extra_ca: Option<&Vec<u8>>| {
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(config.limits.request_timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                // A proxy would resolve registry names itself, out of reach of the
                // connect-time deny-list: registries are reached directly.
                .no_proxy()
                .dns_resolver(Arc::new(FilteringResolver::new(deny.clone())))
                .redirect(redirect);
            for pem in config.ca_pem.iter().chain(extra_ca) {
                for cert in
                    reqwest::Certificate::from_pem_bundle(pem).map_err(SetupError::CaBundle)?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            builder.build().map_err(SetupError::Client)
        };
        let clients = |extra_ca: Option<&Vec<u8>>| -> Result<Clients, SetupError> {
            Ok(Clients {
                http: build(redirect_policy(deny.clone(), insecure.clone()), extra_ca)?,
                token: build(reqwest::redirect::Policy::none(), extra_ca)?,
            })
        };
        let default_clients = clients(None)?;
        let mut per_registry = HashMap::new();
        for (host, pem) in &config.registry_ca_pem {
            per_registry.insert(host.clone(), clients(Some(pem))?);
        }
        Ok(HttpRegistry {
            default_clients,
            per_registry,
            credentials: Arc::new(config.credentials.clone()),
            deny,
            config,
            metrics,
            tokens: Mutex::new(HashMap::new()),
            no_referrers_api: Mutex::new(HashMap::new()),
            throttled_until: Mutex::new(Throttles::default()),
            per_host: Mutex::new(HashMap::new()),
            acr: None,
        })
    }

    /// Reaches the registries `acr` covers with the Azure workload identity, where no static
    /// credentials exist for them.
    pub fn with_acr(mut self, acr: Arc<super::acr::Acr>) -> Self {
        self.acr = Some(acr);
        self
    }

    /// The no-redirect client for token requests to `host`.
    pub(super) fn token_client(&self, host: &str) -> &reqwest::Client {
        &self
            .per_registry
            .get(host)
            .unwrap_or(&self.default_clients)
            .token
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.config.insecure.iter().any(|i| i == registry)
    }

    fn base_url(&self, registry: &str) -> String {
        let host = match registry {
            "docker.io" => "registry-1.docker.io",
            h => h,
        };
        let scheme = if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    fn url(&self, registry: &str, path: &str) -> String {
        format!("{}{path}", self.base_url(registry))
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut map = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.limits.max_concurrent_per_host.max(1),
                ))
            })
            .clone()
    }

    fn cached_token(&self, key: &TokenKey) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// The time one attempt may take: the per-request timeout, cut to what is left of the
    /// review deadline (then `true`: a timeout is the deadline's). `None` when the deadline
    /// has passed.
    fn attempt_timeout(&self) -> Option<(Duration, bool)> {
        let t = self.config.limits.request_timeout;
        match remaining() {
            Some(r) if r.is_zero() => None,
            Some(r) if r < t => Some((r, true)),
            _ => Some((t, false)),
        }
    }

    /// One HTTP exchange, counted in the metrics whatever its outcome. IP-literal hosts are
    /// checked against the deny-list here, before any connection (names are checked by the
    /// resolver). A failure says whether it is transient (worth a retry of a GET or HEAD).
    pub(super) async fn execute(
        &self,
        operation: &'static str,
        host: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, (RegistryError, bool)> {
        let started = Instant::now();
        let record = |status: &str| {
            self.metrics
                .registry_requests
                .with_label_values(&[operation, status])
                .inc();
            self.metrics
                .registry_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
        };
        let Some((timeout, deadline_bound)) = self.attempt_timeout() else {
            record("timeout");
            return Err((deadline_error(host), false));
        };
        let req = req.timeout(timeout).build().map_err(|_| {
            (
                RegistryError::new(Reason::Internal, "cannot build a registry request"),
                false,
            )
        })?;
        if let Err(denied) = self.deny.check_url(req.url()) {
            record("error");
            return Err((
                RegistryError::new(
                    Reason::RegistryUnreachable,
                    format!("{host} is not allowed: {denied}"),
                ),
                false,
            ));
        }
        let clients = self.per_registry.get(host).unwrap_or(&self.default_clients);
        let client = if operation == "token" {
            &clients.token
        } else {
            &clients.http
        };
        match client.execute(req).await {
            Ok(resp) => {
                record(resp.status().as_str());
                Ok(resp)
            }
            Err(e) => {
                record(if e.is_timeout() { "timeout" } else { "error" });
                if e.is_timeout() && deadline_bound {
                    return Err((deadline_error(host), false));
                }
                Err((transport_error(host, &e, timeout), is_transient(&e)))
            }
        }
    }

    /// Sleeps `wait` before a retry if that leaves time for the retry inside the deadline;
    /// otherwise returns `false` and the caller fails now, with the real reason rather than a
    /// later "deadline exceeded".
    async fn wait_for_retry(&self, host: &str, why: &str, wait: Duration) -> bool {
        if remaining().is_some_and(|r| wait + MIN_ATTEMPT_TIME > r) {
            return false;
        }
        tracing::debug!(
            registry = host,
            why,
            wait_ms = wait.as_millis() as u64,
            "retrying a registry request"
        );
        tokio::time::sleep(wait).await;
        true
    }

    /// Sends one idempotent (GET/HEAD) request with authentication. Handles one Bearer
    /// challenge; retries 502/503/504 and broken connections with jittered backoff (at most
    /// [`MAX_RETRIES`] times), and 429 after its `Retry-After` (at most [`MAX_RETRY_AFTER`],
    /// at most [`MAX_THROTTLE_RETRIES`] times), always only while the review deadline leaves
    /// room. Redirects are followed by reqwest under
    /// [`redirect_policy`]; it drops `Authorization` when host, port or scheme change.
    ///
    /// The answer comes with the host's concurrency permit: the caller reads the body under it,
    /// so the per-host bound covers bodies in flight, not just requests waiting for headers.
    /// Drop it before any further request to the same host.
    async fn send(
        &self,
        operation: &'static str,
        image: &ImageRef,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<(reqwest::Response, OwnedSemaphorePermit), RegistryError> {
        let host = image.registry();
        let scope = format!("repository:{}:pull", image.repository());
        let workload = super::workload_credentials();
        let creds = super::pull_secrets::choose(workload.as_deref(), &*self.credentials, host);
        let token_key: TokenKey = (
            host.to_string(),
            scope.clone(),
            creds.as_ref().map(Credentials::identity),
        );
        if let Some(left) = self.throttled_for(host, image.repository()) {
            return Err(throttled(host, left));
        }
        let permit = self
            .semaphore(host)
            .acquire_owned()
            .await
            .map_err(|_| RegistryError::new(Reason::Internal, "registry client shut down"))?;
        let mut challenged = false;
        let mut retries = 0;
        let mut throttle_retries = 0;
        loop {
            // Which client sends it is decided in `execute`; the builder only holds the request.
            let mut req = self.default_clients.http.request(method.clone(), url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(token) = self.cached_token(&token_key) {
                req = req.bearer_auth(token);
            } else if let Some(c) = &creds {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
            let resp = match self.execute(operation, host, req).await {
                Ok(resp) => resp,
                Err((e, transient)) if transient && retries < MAX_RETRIES => {
                    retries += 1;
                    if !self
                        .wait_for_retry(host, "connection broken", backoff(retries - 1))
                        .await
                    {
                        return Err(e);
                    }
                    continue;
                }
                Err((e, _)) => return Err(e),
            };
            let status = resp.status();
            match status {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let bearer = auth::parse_bearer(resp.headers(), |realm| {
                        self.is_insecure(host) || self.is_insecure(&url_host(realm))
                    })
                    .map_err(|why| {
                        let from_workload = workload.as_deref().and_then(|w| w.source_of(host));
                        let hint = match (&why, creds.is_some(), from_workload) {
                            (ChallengeError::NotBearer(_), true, Some(secret)) => {
                                format!(" (the credentials of {secret} were not accepted)")
                            }
                            (ChallengeError::NotBearer(_), true, None) => {
                                " (the configured credentials were not accepted)".into()
                            }
                            (ChallengeError::NotBearer(_), false, _) => {
                                " (no credentials are configured for it)".into()
                            }
                            (ChallengeError::Unusable(_), _, _) => String::new(),
                        };
                        RegistryError::new(
                            Reason::Unauthorized,
                            format!("{host} answered 401: {why}{hint}"),
                        )
                    })?;
                    self.fetch_token(host, &token_key, creds.as_ref(), &bearer)
                        .await?;
                    continue;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(resp.headers()).unwrap_or(DEFAULT_RETRY_WAIT);
                    if wait > MAX_RETRY_AFTER {
                        // Only a wait too long for a review keeps signet away from the
                        // repository (and maybe the host): a short one is this request's to
                        // wait out, not every request's.
                        self.throttle(host, image.repository(), wait);
                        return Err(throttled(host, wait));
                    }
                    // A registry that throttles a fraction of requests answers a retry with
                    // another 429 now and then: 429s get more retries than other failures,
                    // still bounded, and each only while the review deadline leaves room.
                    if throttle_retries >= MAX_THROTTLE_RETRIES {
                        return Err(throttled(host, wait));
                    }
                    throttle_retries += 1;
                    let wait = wait + Duration::from_millis(rand::random_range(0..50));
                    if !self.wait_for_retry(host, "429", wait).await {
                        return Err(throttled(host, wait));
                    }
                }
                s if is_transient_status(s) && retries < MAX_RETRIES => {
                    let wait = match retry_after(resp.headers()) {
                        Some(w) if w <= MAX_RETRY_AFTER => w,
                        Some(_) => return Err(status_error(host, s)),
                        None => backoff(retries),
                    };
                    retries += 1;
                    if !self.wait_for_retry(host, s.as_str(), wait).await {
                        return Err(status_error(host, s));
                    }
                }
                _ => return Ok((resp, permit)),
            }
        }
    }

    /// The Bearer token flow: ask the realm for a pull token for this repository and cache it
    /// until shortly before it expires. Credentials go along only when the realm may receive
    /// them ([`auth::realm_may_receive_credentials`]); otherwise the request is anonymous.
    async fn fetch_token(
        &self,
        host: &str,
        key: &TokenKey,
        creds: Option<&Credentials>,
        bearer: &Bearer,
    ) -> Result<(), RegistryError> {
        let mut url = bearer.realm.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("scope", &key.1);
            if let Some(s) = &bearer.service {
                q.append_pair("service", s);
            }
        }
        // An ACR without static credentials answers with the workload identity, and only to
        // a realm that may receive the registry's credentials.
        let acr = match (&self.acr, creds) {
            (Some(acr), None)
                if acr.covers(host)
                    && auth::realm_may_receive_credentials(
                        host,
                        &bearer.realm,
                        &self.config.realm_hosts,
                    ) =>
            {
                Some((acr, self.acr_credentials(acr, host, bearer).await?))
            }
            _ => None,
        };
        let creds = creds.or(acr.as_ref().map(|(_, c)| c));
        let mut req = self.default_clients.token.get(url.clone());
        if let Some(c) = creds {
            if auth::realm_may_receive_credentials(host, &url, &self.config.realm_hosts) {
                req = req.basic_auth(&c.username, Some(&c.password));
            } else {
                tracing::warn!(
                    registry = host,
                    realm_host = url.host_str().unwrap_or_default(),
                    "token realm is on another host: asking it anonymously"
                );
            }
        }
        let resp = self.execute("token", host, req).await.map_err(|(e, _)| e)?;
        if !resp.status().is_success() {
            if let Some((acr, _)) = acr {
                acr.forget(host);
            }
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
        let body = read_capped(resp, MAX_TOKEN_BYTES, host).await?;
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            RegistryError::new(
                Reason::Unauthorized,
                format!("the token service of {host} sent an unreadable answer"),
            )
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RegistryError::new(
                    Reason::Unauthorized,
                    format!("the token service of {host} sent no token"),
                )
            })?;
        // The spec's default lifetime is 60 s. Expire a little early so a token is never used
        // at the edge of its lifetime, and cap how long a token is trusted.
        let ttl = Duration::from_secs(t.expires_in.unwrap_or(60).clamp(10, 3600).saturating_sub(5));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, exp)| *exp > Instant::now());
        tokens.insert(key.clone(), (token, Instant::now() + ttl));
        Ok(())
    }

    /// How much longer `host`, or its repository `repo`, asked to be left alone, if it did.
    fn throttled_for(&self, host: &str, repo: &str) -> Option<Duration> {
        let t = self
            .throttled_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let left = |until: Option<&Instant>| until.map(|u| u.saturating_duration_since(now));
        let repo_left = left(t.repos.get(&(host.to_string(), repo.to_string())));
        let host_left = left(t.hosts.get(host));
        repo_left.max(host_left).filter(|l| !l.is_zero())
    }

    /// Remembers a `Retry-After` too long to wait: for the repository it answered about (at
    /// most [`MAX_THROTTLE_MEMORY`]), and for the whole host (at most [`MAX_HOST_THROTTLE`])
    /// only once two repositories of the host have asked: one path's answer is that path's.
    fn throttle(&self, host: &str, repo: &str, wait: Duration) {
        let mut t = self
            .throttled_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        t.repos.retain(|_, until| *until > now);
        t.hosts.retain(|_, until| *until > now);
        t.repos.insert(
            (host.to_string(), repo.to_string()),
            now + wait.min(MAX_THROTTLE_MEMORY),
        );
        let asking = t.repos.keys().filter(|(h, _)| h == host).count();
        if asking >= 2 {
            t.hosts
                .insert(host.to_string(), now + wait.min(MAX_HOST_THROTTLE));
        }
    }

    /// Whether a missing referrers API is remembered for `repo`, and for its host.
    fn referrers_api_known_missing(&self, host: &str, repo: &str) -> (bool, bool) {
        let map = self
            .no_referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let fresh = |key: &(String, Option<String>)| {
            map.get(key)
                .is_some_and(|t| t.elapsed() < NO_REFERRERS_API_TTL)
        };
        (
            fresh(&(host.to_string(), Some(repo.to_string()))),
            fresh(&(host.to_string(), None)),
        )
    }

    /// Remembers a missing referrers API for `repo` and, when `host_too`, for its host.
    fn mark_no_referrers_api(&self, host: &str, repo: &str, host_too: bool) {
        let mut map = self
            .no_referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.retain(|_, t| t.elapsed() < NO_REFERRERS_API_TTL);
        let now = Instant::now();
        map.insert((host.to_string(), Some(repo.to_string())), now);
        if host_too {
            map.insert((host.to_string(), None), now);
        }
    }

    /// The host answered the API after all: forget that it had none.
    fn forget_no_referrers_api(&self, host: &str) {
        let mut map = self
            .no_referrers_api
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.remove(&(host.to_string(), None));
    }

    fn too_many_referrers(&self, digest: &Digest, count: usize) -> RegistryError {
        RegistryError::new(
            Reason::TooManyReferrers,
            format!(
                "{} has {}{count} referrers, more than the limit of {}",
                digest.short(),
                if count > self.config.limits.max_referrers {
                    "at least "
                } else {
                    ""
                },
                self.config.limits.max_referrers
            ),
        )
    }

    fn index_entries(
        &self,
        body: &ManifestBody,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        if body.manifests.len() > self.config.limits.max_referrers {
            return Err(self.too_many_referrers(digest, body.manifests.len()));
        }
        Ok(body.manifests.clone())
    }

    /// The referrers API, following `Link: rel="next"` pages on the same origin, at most
    /// [`MAX_REFERRER_PAGES`] pages and `max_referrers` entries in total.
    async fn referrers_api(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<ReferrersApi, RegistryError> {
        let host = image.registry();
        let first = format!(
            "{}/v2/{}/referrers/{}",
            self.base_url(host),
            image.repository(),
            digest
        );
        let mut url = Url::parse(&first)
            .map_err(|_| RegistryError::new(Reason::InvalidReference, "bad registry URL"))?;
        let mut entries = Vec::new();
        for page in 0..MAX_REFERRER_PAGES {
            let (resp, _permit) = self
                .send(
                    "referrers",
                    image,
                    Method::GET,
                    url.as_str(),
                    Some(OCI_INDEX),
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND && page == 0 {
                // A registry with the API answers 200 even for no referrers. Its 404 names an
                // unknown repository or manifest in an OCI error body; any other 404 (the
                // plain-text one of a router with no such route) means no API.
                let body = read_capped(resp, MAX_ERROR_BODY_BYTES, host)
                    .await
                    .unwrap_or_default();
                return Ok(if names_unknown_content(&body) {
                    ReferrersApi::UnknownHere
                } else {
                    ReferrersApi::Missing
                });
            }
            if !resp.status().is_success() {
                return Err(status_error(host, resp.status()));
            }
            let next = link_next(resp.headers());
            let bytes = read_capped(resp, self.config.limits.max_manifest_bytes, host).await?;
            let body: ManifestBody = serde_json::from_slice(&bytes).map_err(|_| {
                RegistryError::new(
                    Reason::Malformed,
                    format!("the referrers list from {host} is not valid"),
                )
            })?;
            entries.extend(body.manifests);
            if entries.len() > self.config.limits.max_referrers {
                return Err(self.too_many_referrers(digest, entries.len()));
            }
            let Some(next) = next else {
                return Ok(ReferrersApi::Listed(entries));
            };
            let next_url = url.join(&next).map_err(|_| {
                RegistryError::new(
                    Reason::Malformed,
                    format!("{host} sent an invalid referrers Link"),
                )
            })?;
            if next_url.origin() != url.origin() {
                return Err(RegistryError::new(
                    Reason::Malformed,
                    format!("{host} links its referrers list to another host"),
                ));
            }
            url = next_url;
        }
        Err(RegistryError::new(
            Reason::TooManyReferrers,
            format!(
                "{host} lists the referrers of {} in more than {MAX_REFERRER_PAGES} pages",
                digest.short()
            ),
        ))
    }
}

/// Re-keys every per-host setting by the normalised host ([`crate::image::normalize_host`]),
/// the form image references carry: `LocalHost:5000`, `REGISTRY.example.com:443` and
/// `index.docker.io` name the same endpoints as `localhost:5000`, `registry.example.com` and
/// `docker.io`. An insecure `host:443` is refused: `:443` normalises away, and a plain-HTTP
/// `host` means port 80.
fn normalise_hosts(mut config: RegistryConfig) -> Result<RegistryConfig, SetupError> {
    let norm = |what: &'static str, host: &str| {
        crate::image::normalize_host(host).map_err(|source| SetupError::Host {
            what,
            host: host.to_string(),
            source,
        })
    };
    let mut insecure = Vec::new();
    for host in &config.insecure {
        let n = norm("insecure registry", host)?;
        let port_443 = host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.trim_start_matches('0') == "443");
        if port_443 {
            return Err(SetupError::InsecureOnHttpsPort(host.clone()));
        }
        insecure.push(n);
    }
    config.insecure = insecure;
    config.registry_ca_pem = std::mem::take(&mut config.registry_ca_pem)
        .into_iter()
        .map(|(h, pem)| Ok((norm("registry CA host", &h)?, pem)))
        .collect::<Result<_, SetupError>>()?;
    config.realm_hosts = std::mem::take(&mut config.realm_hosts)
        .into_iter()
        .map(|(h, realms)| Ok((norm("token realm registry", &h)?, realms)))
        .collect::<Result<_, SetupError>>()?;
    // Credentials come from a docker config, whose odd keys are kept rather than fatal.
    config.credentials = std::mem::take(&mut config.credentials)
        .into_iter()
        .map(|(h, c)| (crate::image::normalize_host(&h).unwrap_or(h), c))
        .collect();
    Ok(config)
}

/// What the referrers API said about one subject.
enum ReferrersApi {
    /// The list (possibly empty).
    Listed(Vec<Descriptor>),
    /// A 404 about the API: the registry has none.
    Missing,
    /// A 404 naming an unknown repository or manifest: about this repository only.
    UnknownHere,
}

/// Whether a 404's body is an OCI error naming an unknown repository or manifest.
fn names_unknown_content(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: String,
    }
    serde_json::from_slice::<Errors>(body).is_ok_and(|e| {
        e.errors
            .iter()
            .any(|e| e.code == "NAME_UNKNOWN" || e.code == "MANIFEST_UNKNOWN")
    })
}

/// Long `Retry-After`s remembered: by (host, repository), and by host.
#[derive(Default)]
struct Throttles {
    repos: HashMap<(String, String), Instant>,
    hosts: HashMap<String, Instant>,
}

fn throttled(host: &str, wait: Duration) -> RegistryError {
    RegistryError::new(
        Reason::Throttled,
        format!(
            "{host} is throttling requests (429, retry after {}s)",
            wait.as_secs()
        ),
    )
}

fn deadline_error(host: &str) -> RegistryError {
    RegistryError::new(
        Reason::DeadlineExceeded,
        format!("{host} did not answer before the review deadline"),
    )
}

#[async_trait::async_trait]
impl Registry for HttpRegistry {
    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        let host = image.registry();
        let path = format!("/v2/{}/manifests/{}", image.repository(), image.reference());
        // No body to read: the permit goes at once (the fallback below asks again).
        let (resp, _) = self
            .send(
                "resolve",
                image,
                Method::HEAD,
                &self.url(host, &path),
                Some(MANIFEST_ACCEPT),
            )
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
        // The header, not `resp.content_length()`: that is the body's size hint, and a HEAD
        // response has no body, so it is always 0 and every resolve fell back to a GET.
        let size = header_str(headers, CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse::<u64>().ok())
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
        let (resp, _permit) = self
            .send(
                "manifest",
                image,
                Method::GET,
                &self.url(host, &path),
                Some(MANIFEST_ACCEPT),
            )
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
                if let Some(c) = claimed.as_deref().and_then(|c| c.parse::<Digest>().ok())
                    && !c.matches(&bytes)
                {
                    return Err(RegistryError::new(
                        Reason::DigestMismatch,
                        format!(
                            "{host} claims {c} for {reference}, but the manifest hashes to {computed}"
                        ),
                    ));
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
        let (resp, _permit) = self
            .send("blob", image, Method::GET, &self.url(host, &path), None)
            .await?;
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
        let repo = image.repository();
        let (repo_known, host_known) = self.referrers_api_known_missing(host, repo);
        if !repo_known && !host_known {
            match self.referrers_api(image, digest).await? {
                ReferrersApi::Listed(entries) => return Ok(entries),
                ReferrersApi::Missing => self.mark_no_referrers_api(host, repo, true),
                ReferrersApi::UnknownHere => {}
            }
        }
        match self.manifest(image, &digest.tag_form()).await? {
            Some(index) => self.index_entries(&index.body, digest),
            // Only the host's memory said "no API", and this repository has no tag-schema
            // index: ask the API here after all. A signed image on a registry without the API
            // has its index and never gets here; one repository's 404 (a hostile path on a
            // shared host) must not hide the referrers of every other repository.
            None if host_known && !repo_known => match self.referrers_api(image, digest).await? {
                ReferrersApi::Listed(entries) => {
                    self.forget_no_referrers_api(host);
                    Ok(entries)
                }
                ReferrersApi::Missing => {
                    self.mark_no_referrers_api(host, repo, false);
                    Ok(Vec::new())
                }
                ReferrersApi::UnknownHere => Ok(Vec::new()),
            },
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

    fn client(config: RegistryConfig) -> Result<HttpRegistry, SetupError> {
        HttpRegistry::new(config, Arc::new(Metrics::new()))
    }

    /// An hour's `Retry-After` keeps signet from the repository for at most a minute, and from
    /// the host (after two repositories asked) for at most a few seconds.
    #[test]
    fn remembered_retry_afters_are_capped() {
        let r = client(RegistryConfig::default()).unwrap();
        let hour = Duration::from_secs(3600);
        r.throttle("r.example.com", "a", hour);
        assert!(
            r.throttled_for("r.example.com", "b").is_none(),
            "one repository"
        );
        let a = r.throttled_for("r.example.com", "a").unwrap();
        assert!(a > MAX_HOST_THROTTLE && a <= MAX_THROTTLE_MEMORY, "{a:?}");
        r.throttle("r.example.com", "b", hour);
        let c = r.throttled_for("r.example.com", "c").unwrap();
        assert!(c <= MAX_HOST_THROTTLE, "{c:?}");
        assert!(r.throttled_for("other.example.com", "a").is_none());
    }

    #[test]
    fn a_404_naming_unknown_content_is_about_the_repository() {
        assert!(names_unknown_content(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#
        ));
        assert!(names_unknown_content(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#
        ));
        assert!(!names_unknown_content(b"404 page not found"));
        assert!(!names_unknown_content(
            br#"{"errors":[{"code":"UNSUPPORTED"}]}"#
        ));
        assert!(!names_unknown_content(
            br#"{"schemaVersion":2,"manifests":[]}"#
        ));
    }

    /// Settings keyed by host are normalised like image hosts, so `--insecure-registry
    /// LocalHost:5000` still applies to `localhost:5000/app`, and credentials written for
    /// `REGISTRY.example.com:443` to `registry.example.com/app`.
    #[test]
    fn host_keyed_settings_are_normalised_like_image_hosts() {
        let mut credentials = HashMap::new();
        credentials.insert(
            "REGISTRY.example.com:443".to_string(),
            Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        let r = client(RegistryConfig {
            insecure: vec!["LocalHost:5000".into()],
            credentials,
            ..RegistryConfig::default()
        })
        .unwrap();
        let image: ImageRef = "localhost:5000/app".parse().unwrap();
        assert!(r.is_insecure(image.registry()));
        assert_eq!(r.base_url(image.registry()), "http://localhost:5000");
        let image: ImageRef = "Registry.Example.com:443/app".parse().unwrap();
        assert_eq!(r.base_url(image.registry()), "https://registry.example.com");
        assert!(r.credentials.credentials(image.registry()).is_some());
        let hub: ImageRef = "registry-1.docker.io/library/nginx".parse().unwrap();
        assert_eq!(r.base_url(hub.registry()), "https://registry-1.docker.io");
        // Plain HTTP on the HTTPS port cannot be told apart from the HTTPS host once the
        // port is normalised away: refused rather than silently moved to port 80.
        let err = client(RegistryConfig {
            insecure: vec!["registry.example.com:443".into()],
            ..RegistryConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("443"), "{err}");
        assert!(
            client(RegistryConfig {
                insecure: vec!["not a host".into()],
                ..RegistryConfig::default()
            })
            .is_err()
        );
    }
}
