//! The HTTPS webhook and the plain-HTTP admin port: the only module that knows HTTP.
//!
//! `POST /validate` takes an AdmissionReview and always answers 200 with an AdmissionReview
//! (a policy outcome is never an HTTP error, since with `failurePolicy: Ignore` a 5xx admits the
//! pod); only a body that is not a review gets 400. The admin port serves `/healthz`, `/readyz`
//! (ready once a valid policy set is loaded, and no longer once draining) and `/metrics`.
//! SIGTERM/SIGINT: not ready at once, keep serving for the shutdown delay (endpoints take time
//! to drop the pod), then stop accepting and drain open connections.

pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use crate::admission::{self, Action};
use crate::decision::Engine;
use crate::metrics::Metrics;
use crate::policy::{self, NoMatch};

/// Largest AdmissionReview body accepted. An object of the API server's 3 MiB limit can come
/// with its old version, so allow for both.
pub const MAX_BODY_BYTES: usize = 7 << 20;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The API server's default webhook timeout, used when a request carries no `?timeout=`.
const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Made at start-up; the CA is written to this path.
    SelfSigned {
        ca_out: PathBuf,
    },
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: TlsSource,
    pub policies: PathBuf,
    pub no_match_override: Option<NoMatch>,
    pub policy_poll: Duration,
    pub tls_poll: Duration,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
}

/// Shared state of the running server.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// A valid policy set has been loaded.
    policies_valid: AtomicBool,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, metrics: Arc<Metrics>, policies_valid: bool) -> Self {
        AppState {
            engine,
            metrics,
            policies_valid: AtomicBool::new(policies_valid),
            draining: AtomicBool::new(false),
        }
    }

    pub fn ready(&self) -> bool {
        self.policies_valid.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
}

/// A running server: its bound addresses and how to stop it.
pub struct Handle {
    pub webhook_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The CA of the self-signed serving certificate, when one was made.
    pub ca_pem: Option<String>,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Starts the drain and waits until it is finished.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
    }

    /// Waits until the server stops (after SIGTERM/SIGINT).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Binds both ports and starts serving. Returns once listening.
pub async fn start(
    config: ServeConfig,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    policies_valid: bool,
) -> anyhow::Result<Handle> {
    let (pair, ca_pem, files) = match &config.tls {
        TlsSource::Files { cert, key } => (
            tls::read_pair(cert, key).map_err(anyhow::Error::msg)?,
            None,
            Some((cert.clone(), key.clone())),
        ),
        TlsSource::SelfSigned { ca_out } => {
            let host = std::env::var("HOSTNAME")
                .ok()
                .into_iter()
                .collect::<Vec<_>>();
            let (pair, ca) = tls::self_signed(&host).map_err(anyhow::Error::msg)?;
            std::fs::write(ca_out, &ca).map_err(|e| {
                anyhow::anyhow!(
                    "cannot write the development CA to {}: {e}",
                    ca_out.display()
                )
            })?;
            (pair, Some(ca), None)
        }
    };
    let resolver = Arc::new(tls::ReloadingResolver::new(
        tls::certified_key(&pair).map_err(anyhow::Error::msg)?,
    ));
    metrics.tls_reloads.with_label_values(&["success"]).inc();
    let tls_config = Arc::new(tls::server_config(resolver.clone()).map_err(anyhow::Error::msg)?);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);

    let webhook = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin): {e}", config.admin_listen))?;
    let webhook_addr = webhook.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let state = Arc::new(AppState::new(engine, metrics.clone(), policies_valid));
    let (shutdown, shutdown_rx) = watch::channel(false);

    let mut background = Vec::new();
    if let Some((cert, key)) = files {
        background.push(tls::spawn_reloader(
            resolver,
            cert,
            key,
            pair,
            config.tls_poll,
            metrics.clone(),
        ));
    }
    background.push(spawn_policy_reloader(
        state.clone(),
        config.policies.clone(),
        config.no_match_override,
        config.policy_poll,
    ));
    let admin_task = tokio::spawn(serve_admin(admin, state.clone(), shutdown_rx.clone()));

    let done = tokio::spawn({
        let state = state.clone();
        let mut rx = shutdown_rx.clone();
        async move {
            serve_webhook(
                webhook,
                acceptor,
                state.clone(),
                rx.clone(),
                config.drain_timeout,
            )
            .await;
            let _ = rx.changed().await;
            admin_task.abort();
            for task in background {
                task.abort();
            }
        }
    });
    // SIGTERM / SIGINT: stop being ready, wait for the shutdown delay, then drain.
    tokio::spawn({
        let state = state.clone();
        let shutdown = shutdown.clone();
        let delay = config.shutdown_delay;
        async move {
            wait_for_signal().await;
            tracing::info!(
                delay_secs = delay.as_secs_f32(),
                "shutdown signal received; draining"
            );
            state.draining.store(true, Ordering::Release);
            tokio::time::sleep(delay).await;
            let _ = shutdown.send(true);
        }
    });
    Ok(Handle {
        webhook_addr,
        admin_addr,
        ca_pem,
        state,
        shutdown,
        done,
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve_webhook(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(req, state).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
    tracing::info!("webhook server stopped");
}

async fn route(req: Request<Incoming>, state: Arc<AppState>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/validate") => validate(req, state).await,
        (_, "/validate") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `?timeout=10s` → the review deadline: the API server's timeout minus a margin for the trip
/// back, so signet answers (with `onError`) before the API server gives up on it.
pub fn review_deadline(query: Option<&str>, start: Instant) -> Instant {
    let timeout = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("timeout=")))
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_REVIEW_TIMEOUT)
        .min(Duration::from_secs(30));
    let margin = (timeout / 5).min(Duration::from_secs(1));
    start + timeout.saturating_sub(margin)
}

/// Parses the durations the API server writes (`10s`, `1m0s`, `500ms`), as Go's
/// `time.ParseDuration` spells them, without a sign. Arithmetic saturates: an absurdly large
/// value is a very long duration (the caller clamps it), never a panic.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (num, tail) = rest.split_at(num_end);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let unit_ns: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        let whole = int.bytes().fold(0u128, |acc, d| {
            acc.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        });
        // Twenty fraction digits are more than a nanosecond's worth for any unit.
        let (frac_value, frac_scale) =
            frac.bytes().take(20).fold((0u128, 1u128), |(v, scale), d| {
                (v * 10 + u128::from(d - b'0'), scale * 10)
            });
        total_ns = total_ns
            .saturating_add(whole.saturating_mul(unit_ns))
            .saturating_add(frac_value * unit_ns / frac_scale);
        rest = next;
    }
    Some(Duration::from_nanos(
        u64::try_from(total_ns).unwrap_or(u64::MAX),
    ))
}

async fn validate(req: Request<Incoming>, state: Arc<AppState>) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let deadline = review_deadline(req.uri().query(), start);
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            state
                .metrics
                .admission_reviews
                .with_label_values(&["invalid"])
                .inc();
            return if too_big {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body exceeds {MAX_BODY_BYTES} bytes\n"),
                )
            } else {
                text(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                )
            };
        }
    };
    let review = match admission::decode(&body) {
        Ok(r) => r,
        Err(e) => {
            state
                .metrics
                .admission_reviews
                .with_label_values(&["invalid"])
                .inc();
            tracing::warn!(error = %e, "rejected a body that is not an AdmissionReview");
            return text(StatusCode::BAD_REQUEST, &format!("{e}\n"));
        }
    };
    let span = tracing::info_span!(
        "review",
        uid = %review.uid(),
        namespace = review.namespace().unwrap_or(""),
        kind = %review.kind(),
        name = %review.name(),
        operation = review.operation(),
    );
    let response = async {
        let (response, decision, detail) = match &review.action {
            Action::Check(images) if !state.policies_valid.load(Ordering::Acquire) => {
                let _ = images;
                let v = crate::decision::Verdict {
                    allowed: false,
                    denials: vec!["signet has no valid policy set loaded; every image is denied until the policies are fixed".into()],
                    ..Default::default()
                };
                (admission::respond(&review, &v), "denied", v.denials.join("; "))
            }
            Action::Check(images) => {
                let v = state.engine.decide(images, review.namespace(), deadline).await;
                let decision = if !v.allowed {
                    "denied"
                } else if !v.warnings.is_empty() {
                    "warned"
                } else {
                    "allowed"
                };
                let detail = if v.allowed { v.warnings.join("; ") } else { v.denials.join("; ") };
                for (key, value) in &v.audit_annotations {
                    tracing::info!(annotation = %key, %value, "audit: image not trusted");
                }
                (admission::respond(&review, &v), decision, detail)
            }
            Action::Skip(why) => (admission::respond_action(&review), "allowed", (*why).to_string()),
            Action::Reject(why) => (admission::respond_action(&review), "denied", why.clone()),
        };
        state.metrics.admission_reviews.with_label_values(&[decision]).inc();
        let elapsed = start.elapsed();
        state.metrics.admission_duration.with_label_values(&[] as &[&str]).observe(elapsed.as_secs_f64());
        tracing::info!(decision, detail = %detail, dry_run = review.dry_run(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "admission review");
        response
    }
    .instrument(span)
    .await;
    json(StatusCode::OK, &response)
}

async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
                        (&Method::GET, "/readyz") if state.ready() => {
                            text(StatusCode::OK, "ready\n")
                        }
                        (&Method::GET, "/readyz") => {
                            text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                        }
                        (&Method::GET, "/metrics") => {
                            let mut r = text(StatusCode::OK, &state.metrics.encode());
                            r.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("text/plain; version=0.0.4"),
                            );
                            r
                        }
                        _ => text(StatusCode::NOT_FOUND, "not found\n"),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Re-reads the policy directory when its files change. A set that fails to load keeps the
/// last good one (and is logged and counted); the first good set makes the server ready.
fn spawn_policy_reloader(
    state: Arc<AppState>,
    dir: PathBuf,
    no_match: Option<NoMatch>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = fingerprint(&dir);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = fingerprint(&dir);
            if now == last {
                continue;
            }
            last = now;
            match policy::load_dir(&dir) {
                Ok(mut set) => {
                    if let Some(n) = no_match {
                        set.no_match = n;
                    }
                    let count = set.policies.len();
                    state.engine.replace_policies(set);
                    state.policies_valid.store(true, Ordering::Release);
                    state
                        .metrics
                        .policy_reloads
                        .with_label_values(&["success"])
                        .inc();
                    tracing::info!(policies = count, dir = %dir.display(), "policies reloaded");
                }
                Err(errors) => {
                    state
                        .metrics
                        .policy_reloads
                        .with_label_values(&["failure"])
                        .inc();
                    for e in &errors {
                        tracing::error!(error = %e, "policy reload rejected; keeping the previous policies");
                    }
                }
            }
        }
    })
}

/// A cheap summary of the policy directory's contents (names, sizes and bytes of every file,
/// following the symlinks a mounted ConfigMap uses).
fn fingerprint(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if p.is_dir() && !hidden {
                stack.push(p);
            } else if p.is_file() && !hidden {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        out.extend_from_slice(f.to_string_lossy().as_bytes());
        if let Ok(bytes) = std::fs::read(&f) {
            out.extend_from_slice(crate::image::Digest::sha256_of(&bytes).as_str().as_bytes());
        }
    }
    out
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_from_the_timeout_query() {
        let t0 = Instant::now();
        assert_eq!(
            review_deadline(Some("timeout=10s"), t0),
            t0 + Duration::from_secs(9)
        );
        assert_eq!(
            review_deadline(Some("timeout=1s"), t0),
            t0 + Duration::from_millis(800)
        );
        assert_eq!(
            review_deadline(Some("a=b&timeout=5s"), t0),
            t0 + Duration::from_secs(4)
        );
        assert_eq!(review_deadline(None, t0), t0 + Duration::from_secs(9));
        assert_eq!(
            review_deadline(Some("timeout=bogus"), t0),
            t0 + Duration::from_secs(9)
        );
        assert_eq!(
            review_deadline(Some("timeout=1h"), t0),
            t0 + Duration::from_secs(29)
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn huge_and_negative_timeouts_neither_panic_nor_exceed_the_api_server_maximum() {
        let t0 = Instant::now();
        let max = t0 + Duration::from_secs(29);
        for huge in [
            "99999999999999999999h",
            "5000000000000000000s5000000000000000000s5000000000000000000s5000000000000000000s",
            "9223372036854775807ns",
            "9223372036854775807h",
            "18446744073709551615s",
            "99999999999999999999h99999999999999999999h",
        ] {
            assert_eq!(
                review_deadline(Some(&format!("timeout={huge}")), t0),
                max,
                "{huge}"
            );
        }
        // Not a duration the API server writes: the default applies.
        for bad in [
            "1e308s",
            "1.7976931348623157e308h",
            "-5s",
            "-1h",
            "NaNs",
            "infs",
            "1e",
            ".s",
            "5",
        ] {
            assert_eq!(
                review_deadline(Some(&format!("timeout={bad}")), t0),
                t0 + Duration::from_secs(9),
                "{bad}"
            );
        }
        assert_eq!(
            parse_go_duration("9223372036854775807ns").map(|d| d.as_secs()),
            Some(9_223_372_036)
        );
        assert_eq!(parse_go_duration("-5s"), None);
    }
}
