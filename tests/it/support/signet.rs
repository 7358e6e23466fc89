//! The real signet server, in process, over HTTPS: the same `engine::serve` `signet serve`
//! runs, with its self-signed certificate, on ephemeral loopback ports.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use signet::engine;
use signet::metrics::Metrics;
use signet::registry::{Limits, RegistryConfig};
use signet::server::{Handle, ServeConfig, ServeLimits, TlsSource};
use tempfile::TempDir;

use super::registry::Endpoint;

/// A running signet.
pub struct Signet {
    handle: Option<Handle>,
    pub url: String,
    pub admin: String,
    pub metrics: Arc<Metrics>,
    pub policy_dir: PathBuf,
    ca_pem: String,
    _dir: TempDir,
}

pub use signet_testkit::policy::{cosign_policy, settings};

impl Signet {
    /// Starts signet with `policies` (YAML documents joined by `---`), reaching `registries`
    /// over plain HTTP (or HTTPS with their CA).
    pub async fn start(policies: &str, registries: &[&dyn Endpoint]) -> Signet {
        Self::start_with(policies, registries, Limits::default()).await
    }

    pub async fn start_with(
        policies: &str,
        registries: &[&dyn Endpoint],
        limits: Limits,
    ) -> Signet {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).expect("policy dir");
        std::fs::write(policy_dir.join("policies.yaml"), policies).expect("write policies");
        Self::start_dir(dir, policy_dir, registries, limits).await
    }

    /// Like [`Signet::start`], with the HTTP revocation fetcher `signet serve` gives the engine
    /// (same deny list as the registry client), so Notation chains that name CRL or OCSP
    /// locations are checked against them. [`Signet::start`] has none: such chains then have
    /// an unknown revocation status, and no test reaches the network by accident.
    pub async fn start_with_revocation(policies: &str, registries: &[&dyn Endpoint]) -> Signet {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).expect("policy dir");
        std::fs::write(policy_dir.join("policies.yaml"), policies).expect("write policies");
        Self::launch(
            dir,
            policy_dir,
            registries,
            Limits::default(),
            true,
            ServeLimits::default(),
        )
        .await
    }

    /// Starts signet with `policies`, no registries, and these serving limits.
    pub async fn start_limited(policies: &str, serve_limits: ServeLimits) -> Signet {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).expect("policy dir");
        std::fs::write(policy_dir.join("policies.yaml"), policies).expect("write policies");
        Self::launch(dir, policy_dir, &[], Limits::default(), false, serve_limits).await
    }

    /// Starts signet on a prepared policy directory (inside `dir`, which it keeps alive).
    pub async fn start_dir(
        dir: TempDir,
        policy_dir: PathBuf,
        registries: &[&dyn Endpoint],
        limits: Limits,
    ) -> Signet {
        Self::launch(
            dir,
            policy_dir,
            registries,
            limits,
            false,
            ServeLimits::default(),
        )
        .await
    }

    async fn launch(
        dir: TempDir,
        policy_dir: PathBuf,
        registries: &[&dyn Endpoint],
        limits: Limits,
        revocation: bool,
        serve_limits: ServeLimits,
    ) -> Signet {
        let mut config = RegistryConfig {
            limits,
            ..RegistryConfig::default()
        };
        for r in registries {
            match r.ca_pem() {
                Some(ca) => config.ca_pem.push(ca.as_bytes().to_vec()),
                None => config.insecure.push(r.addr()),
            }
        }
        Self::launch_with(dir, policy_dir, config, revocation, serve_limits).await
    }

    /// Starts signet on `policies` with this registry configuration (its `azure` part too:
    /// then the policies may name Key Vault material, and signet starts not ready until that
    /// is fetched).
    pub async fn start_configured(policies: &str, config: RegistryConfig) -> Signet {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).expect("policy dir");
        std::fs::write(policy_dir.join("policies.yaml"), policies).expect("write policies");
        Self::launch_with(dir, policy_dir, config, false, ServeLimits::default()).await
    }

    async fn launch_with(
        dir: TempDir,
        policy_dir: PathBuf,
        config: RegistryConfig,
        revocation: bool,
        serve_limits: ServeLimits,
    ) -> Signet {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // `engine::serve` would start not ready; a test wants the loader's errors instead
        // (Key Vault material cannot load before signet fetched it).
        if config.azure.is_none()
            && let Err(e) = signet::policy::load_dir(&policy_dir)
        {
            panic!("test policies do not load: {e:?}");
        }
        let metrics = Arc::new(Metrics::new());
        let ca_out = dir.path().join("ca.pem");
        let serve = ServeConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsSource::SelfSigned {
                ca_out: ca_out.clone(),
            },
            policies: Some(policy_dir.clone()),
            no_match_override: None,
            policy_poll: Duration::from_millis(200),
            tls_poll: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(2),
            limits: serve_limits,
            material: Default::default(),
            pull_secrets: false,
        };
        let options = engine::Options {
            revocation,
            ..test_options()
        };
        let handle = engine::serve(serve, config, metrics.clone(), options)
            .await
            .expect("signet starts");
        let ca_pem = std::fs::read_to_string(&ca_out).expect("CA written");
        Signet {
            url: format!("https://localhost:{}/validate", handle.webhook_addr.port()),
            admin: format!("http://{}", handle.admin_addr),
            metrics,
            policy_dir,
            ca_pem,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// The CA of signet's serving certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The webhook's address (its certificate names `localhost`).
    pub fn webhook_addr(&self) -> std::net::SocketAddr {
        self.handle
            .as_ref()
            .map(|h| h.webhook_addr)
            .expect("signet is running")
    }

    pub fn ca_path(&self) -> &Path {
        self._dir.path()
    }

    /// An HTTPS client trusting signet's CA; `http2` selects HTTP/2 through ALPN.
    pub fn client(&self, http2: bool) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA");
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30));
        b = if http2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        };
        b.build().expect("client")
    }

    /// Like [`Signet::review`], and prints how long the review took and how many registry
    /// requests it cost, as `MEASURE <what>: …` (a figure for bench/README.md, never asserted).
    pub async fn measured_review(&self, what: &str, body: &Value) -> Value {
        let before = self.registry_requests();
        let started = std::time::Instant::now();
        let v = self.review(body).await;
        eprintln!(
            "MEASURE {what}: {:.2} ms, {} registry requests",
            started.elapsed().as_secs_f64() * 1e3,
            self.registry_requests() - before
        );
        v
    }

    /// POSTs a review with `?timeout=10s` over HTTP/1.1 and returns the response review.
    pub async fn review(&self, body: &Value) -> Value {
        self.review_with(body, "timeout=10s", false).await
    }

    pub async fn review_with(&self, body: &Value, query: &str, http2: bool) -> Value {
        let (status, text) = self
            .post(&serde_json::to_vec(body).expect("json"), query, http2)
            .await;
        assert_eq!(status, 200, "signet answered {status}: {text}");
        serde_json::from_str(&text).expect("response is JSON")
    }

    /// POSTs raw bytes; returns the status and body.
    /// Posts `body` to the pinning route (`/mutate`) and returns the AdmissionReview answer.
    pub async fn mutate(&self, body: &Value) -> Value {
        let resp = self
            .client(false)
            .post(self.url.replace("/validate", "/mutate") + "?timeout=10s")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .expect("signet answers");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("response is JSON")
    }

    pub async fn post(&self, body: &[u8], query: &str, http2: bool) -> (u16, String) {
        let resp = self
            .client(http2)
            .post(format!("{}?{query}", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("signet answers");
        let status = resp.status().as_u16();
        if http2 {
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        }
        (status, resp.text().await.expect("body"))
    }

    /// GET on the admin port.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .expect("admin answers");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    /// The value of one metric line (exact name with labels), 0 when absent.
    pub fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics
            .encode()
            .lines()
            .find_map(|l| {
                l.strip_prefix(line_prefix)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Registry requests made so far, all operations.
    pub fn registry_requests(&self) -> f64 {
        self.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("signet_registry_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// The engine options tests build with: production's, without the revocation fetcher (no test
/// reaches the network by accident; [`Signet::start_with_revocation`] turns it on). Misses are
/// verified on a verification runtime, as `signet serve` does, one shared by every test.
pub fn test_options() -> engine::Options {
    static VERIFICATION: OnceLock<signet::runtime::Verification> = OnceLock::new();
    let verification =
        VERIFICATION.get_or_init(|| signet::runtime::verification().expect("verification runtime"));
    engine::Options {
        revocation: false,
        verification: verification.handle(),
        ..engine::Options::default()
    }
}

/// The engine `signet serve` builds with the policy document `policy`, reaching `hosts` over
/// plain HTTP, and its metrics.
pub fn engine_over_http(
    hosts: &[String],
    policy: &str,
    options: engine::Options,
) -> (signet::decision::Engine, Arc<Metrics>) {
    let set = signet::policy::load_str(Path::new("policies.yaml"), policy).expect("policy loads");
    let metrics = Arc::new(Metrics::new());
    let config = RegistryConfig {
        insecure: hosts.to_vec(),
        ..RegistryConfig::default()
    };
    let engine = engine::build(config, set, metrics.clone(), options).expect("engine");
    (engine, metrics)
}
