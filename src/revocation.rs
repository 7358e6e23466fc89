//! The HTTP fetcher of revocation answers: the network side of
//! `verify::notation::RevocationSource` (the checks themselves are
//! `verify::notation::revocation_check`). CRLs over HTTP GET and OCSP over HTTP POST for
//! Notation signing chains, as the Notary Project specification prescribes (`http://` only),
//! with its time limits (2 s per OCSP responder, 5 s per CRL), a size cap, and a short cache
//! so that a burst of reviews does not ask a responder once each.
//!
//! The verifier (`verify::notation`) stays pure: it names the URLs and judges the answers;
//! this adapter does the I/O. A failed fetch is simply absent, which the verifier reports as
//! "revocation status unknown", the specification's rule.
//!
//! Must not import `decision`, `policy` or the registry client: it shares only the registry's SSRF
//! deny-list.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use moka::Expiry;
use moka::future::Cache;

use crate::metrics::Metrics;
use crate::registry::ssrf::{Denied, DenyList, FilteringResolver};
use crate::verify::notation::{Fetch, RevocationSource, fresh_until};

const OCSP_TIMEOUT: Duration = Duration::from_secs(2);
const CRL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CRL_BYTES: usize = 32 << 20;
const MAX_OCSP_BYTES: usize = 1 << 20;
/// Answers are reused this long. OCSP responses and CRLs carry their own validity, which the
/// verifier checks; the cache only spares responders during bursts.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Answers are kept [`CACHE_TTL`], but never past their own nextUpdate: a cached CRL that
/// has gone stale would make every check "unknown" until the entry expired.
struct AnswerExpiry;

impl Expiry<(String, Vec<u8>), Vec<u8>> for AnswerExpiry {
    fn expire_after_create(
        &self,
        (_, ocsp_request): &(String, Vec<u8>),
        answer: &Vec<u8>,
        _: Instant,
    ) -> Option<Duration> {
        let left = fresh_until(answer, !ocsp_request.is_empty()).map(|t| {
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        Some(left.map_or(CACHE_TTL, |l| l.min(CACHE_TTL)))
    }
}

/// The error of a URL that does not parse.
type UrlError = <reqwest::Url as std::str::FromStr>::Err;

/// Why the fetcher cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the revocation HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// Why one revocation answer was not fetched. The verifier only sees it missing (status
/// unknown); the fetcher logs it and counts it under [`FetchError::label`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}: only http:// revocation URLs are used")]
    NotHttp(String),
    #[error("{url}: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: UrlError,
    },
    #[error("{url}: {source}")]
    Denied {
        url: String,
        #[source]
        source: Denied,
    },
    #[error("{0}: resolves to an address of the deny-list")]
    DeniedOnConnect(String),
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{0}: unreachable")]
    Unreachable(String),
    #[error("{0}: broke off")]
    BrokeOff(String),
    #[error("{url}: answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url}: larger than {cap} bytes")]
    TooLarge { url: String, cap: usize },
}

impl FetchError {
    /// The `result` label of `signet_revocation_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::NotHttp(_)
            | FetchError::BadUrl { .. }
            | FetchError::Denied { .. }
            | FetchError::DeniedOnConnect(_) => "refused",
            FetchError::Timeout(_) => "timeout",
            FetchError::Unreachable(_) | FetchError::BrokeOff(_) => "unreachable",
            FetchError::Status { .. } => "http_error",
            FetchError::TooLarge { .. } => "too_large",
        }
    }
}

/// The HTTP revocation fetcher.
pub struct HttpRevocation {
    http: reqwest::Client,
    deny: Arc<DenyList>,
    cache: Cache<(String, Vec<u8>), Vec<u8>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for HttpRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpRevocation")
    }
}

impl HttpRevocation {
    /// A fetcher that, like the registry client, never connects to an address in `deny`
    /// (certificates name their CRL and OCSP URLs, and certificates come from registries).
    pub fn new(deny: DenyList) -> Result<Self, BuildError> {
        let deny = Arc::new(deny);
        let http = reqwest::Client::builder()
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .dns_resolver(Arc::new(FilteringResolver::new(deny.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BuildError)?;
        Ok(HttpRevocation {
            http,
            deny,
            cache: Cache::builder()
                .max_capacity(1024)
                .expire_after(AnswerExpiry)
                .build(),
            metrics: None,
        })
    }

    /// Counts requests in `signet_revocation_requests_total{kind,result}` and times them in
    /// `signet_revocation_request_duration_seconds{kind}`: a responder outage denies every
    /// Notation image under strict, so it must be visible.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    async fn fetch(&self, url: &str, ocsp_request: Option<&[u8]>) -> Result<Vec<u8>, FetchError> {
        let kind = if ocsp_request.is_some() {
            "ocsp"
        } else {
            "crl"
        };
        if let Err(e) = self.allowed(url) {
            self.record(kind, "refused", None);
            tracing::warn!(kind, error = %e, "revocation URL refused");
            return Err(e);
        }
        let key = (
            url.to_string(),
            ocsp_request.map(<[u8]>::to_vec).unwrap_or_default(),
        );
        self.cache
            .try_get_with(key, async {
                let started = Instant::now();
                let result = self.download(url, ocsp_request).await;
                let label = result.as_ref().map_or_else(FetchError::label, |_| "ok");
                self.record(kind, label, Some(started.elapsed()));
                result.inspect_err(|e| {
                    tracing::warn!(kind, error = %e, "revocation request failed");
                })
            })
            .await
            .map_err(|e: Arc<FetchError>| (*e).clone())
    }

    /// Only `http://` URLs, never to an address of the deny-list.
    fn allowed(&self, url: &str) -> Result<(), FetchError> {
        if !url.starts_with("http://") {
            return Err(FetchError::NotHttp(url.to_string()));
        }
        // IP-literal hosts skip the resolver: check them here.
        let parsed = reqwest::Url::parse(url).map_err(|source| FetchError::BadUrl {
            url: url.to_string(),
            source,
        })?;
        self.deny
            .check_url(&parsed)
            .map_err(|source| FetchError::Denied {
                url: url.to_string(),
                source,
            })
    }

    /// One GET (CRL) or POST (OCSP), bounded in time and size.
    async fn download(
        &self,
        url: &str,
        ocsp_request: Option<&[u8]>,
    ) -> Result<Vec<u8>, FetchError> {
        let at = || url.to_string();
        let (req, timeout, cap) = match ocsp_request {
            Some(body) => (
                self.http
                    .post(url)
                    .header("content-type", "application/ocsp-request")
                    .body(body.to_vec()),
                OCSP_TIMEOUT,
                MAX_OCSP_BYTES,
            ),
            None => (self.http.get(url), CRL_TIMEOUT, MAX_CRL_BYTES),
        };
        let mut resp = req.timeout(timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout(at())
            } else if crate::registry::ssrf::denied_in(&e).is_some() {
                FetchError::DeniedOnConnect(at())
            } else {
                FetchError::Unreachable(at())
            }
        })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: at(),
                status: resp.status(),
            });
        }
        let mut buf = BytesMut::new();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(FetchError::Timeout(at())),
                Err(_) => return Err(FetchError::BrokeOff(at())),
            };
            if buf.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge { url: at(), cap });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.to_vec())
    }

    fn record(&self, kind: &str, result: &str, took: Option<Duration>) {
        let Some(m) = &self.metrics else { return };
        m.revocation_requests
            .with_label_values(&[kind, result])
            .inc();
        if let Some(took) = took {
            m.revocation_duration
                .with_label_values(&[kind])
                .observe(took.as_secs_f64());
        }
    }
}

impl RevocationSource for HttpRevocation {
    fn fetch_crl<'a>(&'a self, url: &'a str) -> Fetch<'a> {
        Box::pin(async move { Ok(self.fetch(url, None).await?) })
    }

    fn post_ocsp<'a>(&'a self, url: &'a str, request: &'a [u8]) -> Fetch<'a> {
        Box::pin(async move { Ok(self.fetch(url, Some(request)).await?) })
    }
}
