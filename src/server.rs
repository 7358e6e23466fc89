//! The HTTPS webhook and the plain-HTTP admin port: the only module that knows HTTP.
//!
//! `POST /validate` takes an AdmissionReview and always answers 200 with an AdmissionReview
//! (a policy outcome is never an HTTP error, since with `failurePolicy: Ignore` a 5xx admits the
//! pod); only a body that is not a review gets 400. The admin port serves `/healthz`, `/readyz`
//! (ready once a valid policy set is loaded, and no longer once draining) and `/metrics`.
//! SIGTERM/SIGINT: not ready at once, keep serving for the shutdown delay (endpoints take time
//! to drop the pod), then stop accepting and drain open connections.
//!
//! Must not import `verify` internals or the registry client: it hands reviews to `review` and
//! `decision`.

pub mod limits;
mod streams;
pub mod tls;
mod woken;

use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::Either;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::admission;
use crate::decision::Engine;
use crate::metrics::Metrics;
use crate::policy::NoMatch;
use crate::policy::source::{self, Readiness};
use crate::review::{Reviewer, Route};

pub use limits::ServeLimits;
use limits::{Admission, ConnSlot, Connections};

/// Largest AdmissionReview body accepted by default ([`ServeLimits::max_body_bytes`]).
pub const MAX_BODY_BYTES: usize = limits::DEFAULT_MAX_BODY_BYTES;
/// Header read timeout of the admin port.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections on the admin port.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// How long a connection told to close (evicted, or idle too long) may take to do so before
/// it is dropped, once no request is in flight on it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The longest a review can run: the API server's largest webhook timeout.
const MAX_REVIEW_TIME: Duration = Duration::from_secs(30);
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
    /// The policy directory; `None` with `--kubernetes` alone (every policy a resource).
    pub policies: Option<PathBuf>,
    pub no_match_override: Option<NoMatch>,
    pub policy_poll: Duration,
    pub tls_poll: Duration,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    /// Connection, request and memory limits.
    pub limits: ServeLimits,
    /// Resolves the policies' trust material (files, and Key Vault when configured).
    pub material: crate::policy::material::Resolver,
    /// Check each workload's images with its own pull secrets (and its service account's),
    /// read from the Kubernetes API; the cluster-wide credentials are the fallback.
    pub pull_secrets: bool,
}

/// Shared state of the running server.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// A valid policy set has been loaded (set by the policy watcher).
    policies: Arc<Readiness>,
    draining: AtomicBool,
    limits: ServeLimits,
    /// Requests on `/validate` being served.
    inflight: Arc<Semaphore>,
    /// Request body bytes buffered, one permit per byte.
    body_budget: Arc<Semaphore>,
    /// Decodes on the blocking pool.
    decodes: Arc<Semaphore>,
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        policies_valid: bool,
        limits: ServeLimits,
    ) -> Self {
        AppState {
            engine,
            metrics,
            policies: Arc::new(Readiness::new(policies_valid)),
            draining: AtomicBool::new(false),
            inflight: Arc::new(Semaphore::new(limits.max_inflight_reviews)),
            body_budget: Arc::new(Semaphore::new(limits.body_budget_bytes)),
            decodes: Arc::new(Semaphore::new(limits.max_concurrent_decodes)),
            limits,
        }
    }

    pub fn ready(&self) -> bool {
        self.policies.valid() && !self.draining.load(Ordering::Acquire)
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
    policies: Arc<dyn source::Source>,
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
    // Before the port opens: otherwise the first review after a rollout pays for every lazy
    // first use on the handshake path.
    match tls::warm_up(tls_config.clone(), &resolver.current()) {
        Ok(steps) => {
            let ms = |i: usize| steps.get(i).map_or(0.0, |s| s.1.as_secs_f64() * 1e3);
            tracing::info!(
                key_exchange_ms = ms(0),
                signing_key_ms = ms(1),
                handshake_ms = ms(2),
                "TLS warmed up"
            );
        }
        Err(error) => tracing::warn!(%error, "the TLS warm-up failed; serving regardless"),
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);

    let mut config = config;
    fit_file_limit(&mut config.limits);
    let webhook = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin): {e}", config.admin_listen))?;
    let webhook_addr = webhook.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let state = Arc::new(AppState::new(
        engine,
        metrics.clone(),
        policies_valid,
        config.limits.clone(),
    ));
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
    background.push(source::spawn_watch(
        policies,
        config.policy_poll,
        state.policies.clone(),
        metrics.clone(),
        {
            let engine = state.engine.clone();
            move |set| engine.replace_policies(set)
        },
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

/// Descriptors kept free of webhook connections: the admin port's (at most 64), registry and
/// revocation clients, policy and certificate files.
const FD_HEADROOM: u64 = 128;

/// Raises the open-file limit as far as allowed, logs it, and lowers the connection cap to
/// fit it, so that accepting connections can never starve registry calls of descriptors.
fn fit_file_limit(limits: &mut ServeLimits) {
    let Some(open_files) = limits::raise_file_limit() else {
        tracing::info!(
            max_connections = limits.max_connections,
            "no open-file limit"
        );
        return;
    };
    let room = usize::try_from(open_files.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX);
    if limits.max_connections > room {
        tracing::warn!(
            open_files,
            configured = limits.max_connections,
            max_connections = room.max(1),
            "the open-file limit is too low for --max-connections; lowering it"
        );
        limits.max_connections = room.max(1);
    }
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        "open-file limit in force"
    );
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
    let connections = Connections::new(state.limits.max_connections);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let slot = match connections.admit() {
            Admission::Admitted(slot) => slot,
            Admission::AdmittedByEvicting(slot) => {
                tracing::debug!(%peer, "connection limit reached; closed the longest-idle connection");
                slot
            }
            Admission::Refused => {
                tracing::warn!(
                    %peer,
                    limit = state.limits.max_connections,
                    "connection limit reached with a request in flight on every connection; closing the new connection"
                );
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            acceptor.clone(),
            state.clone(),
            slot,
            shutdown.clone(),
            drain_timeout,
        ));
    }
    drop(listener);
    let drained = async {
        loop {
            let empty = connections.empty.notified();
            if connections.is_empty() {
                return;
            }
            empty.await;
        }
    };
    if tokio::time::timeout(drain_timeout, drained).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
    tracing::info!("webhook server stopped");
}

/// One webhook connection: the TLS handshake, then HTTP/2 or HTTP/1.1 as ALPN chose (a client
/// that offers no ALPN gets HTTP/1.1; the protocol is never sniffed from the first bytes, which
/// would wait on a silent peer), until the peer closes, the connection idles out, is evicted
/// for a newer one, or the server drains.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<AppState>,
    slot: ConnSlot,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let limits = &state.limits;
    let tls = tokio::select! {
        handshake = tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)) => {
            match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        _ = slot.state.evict.notified() => return,
        Ok(()) = shutdown.changed() => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let slot = Arc::new(slot);
    let service = {
        let slot = slot.clone();
        let state = state.clone();
        service_fn(move |req| {
            let in_flight = slot.request();
            let state = state.clone();
            async move {
                let response = route(req, state).await;
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let io = TokioIo::new(tls);
    if h2 {
        let streams = streams::Streams::default();
        let mut builder = hyper::server::conn::http2::Builder::new(streams.clone());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(limits.max_header_bytes)
            // The protocol's smallest, and default, frame size.
            .max_frame_size(16_384)
            .initial_stream_window_size(limits.h2_stream_window_bytes)
            .initial_connection_window_size(limits.h2_connection_window_bytes)
            .keep_alive_interval(limits.h2_keep_alive_interval)
            .keep_alive_timeout(limits.h2_keep_alive_timeout);
        let conn = streams::WithStreams::new(builder.serve_connection(io, service), streams);
        drive(
            conn,
            peer,
            &slot,
            limits.idle_timeout,
            shutdown,
            drain_timeout,
        )
        .await;
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // The wait for the next request's headers, including the first: an idle
            // keep-alive connection closes after the idle timeout.
            .header_read_timeout(limits.idle_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192) as usize)
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        drive(
            conn,
            peer,
            &slot,
            limits.idle_timeout,
            shutdown,
            drain_timeout,
        )
        .await;
    }
}

/// Runs a connection until it ends. It is told to close gracefully when it has had no request
/// in flight for `idle_timeout`, when it is evicted, or when the server drains; a peer that
/// does not then finish closing (HTTP/2 waits for a ping answer) is dropped.
async fn drive<C>(
    conn: C,
    peer: SocketAddr,
    slot: &ConnSlot,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) where
    C: streams::Connection,
{
    tokio::pin!(conn);
    // Set once the connection has been told to close: (drop it at, unless busy; drop it at).
    let mut closing: Option<(Instant, Instant)> = None;
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().shut_down_gracefully();
        let now = Instant::now();
        closing = Some((now + drain_timeout, now + drain_timeout));
    }
    loop {
        let now = Instant::now();
        let wake = match closing {
            Some((grace, hard)) if slot.active() == 0 => grace.min(hard),
            Some((_, hard)) => hard.min(now + CLOSE_GRACE),
            None => slot
                .idle_deadline(idle_timeout)
                .unwrap_or(now + idle_timeout.min(Duration::from_secs(1))),
        };
        let (watch_evict, watch_shutdown) = (closing.is_none(), !draining);
        // Polled only when one of them fires, not at every request the connection serves.
        let control = woken::WhenWoken::new(async {
            tokio::select! {
                _ = slot.state.evict.notified(), if watch_evict => Control::Evicted,
                changed = shutdown.changed(), if watch_shutdown => Control::Shutdown {
                    sender_alive: changed.is_ok(),
                },
                _ = tokio::time::sleep_until(wake.into()) => Control::Timer,
            }
        });
        let control = tokio::select! {
            ended = conn.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            control = control => control,
        };
        let now = Instant::now();
        match control {
            Control::Evicted => {
                tracing::debug!(%peer, "closing an idle connection for a new one");
                conn.as_mut().shut_down_gracefully();
                closing = Some((now + CLOSE_GRACE, now + MAX_REVIEW_TIME));
            }
            Control::Shutdown { sender_alive } => {
                draining = true;
                if sender_alive && closing.is_none() {
                    conn.as_mut().shut_down_gracefully();
                    closing = Some((now + drain_timeout, now + drain_timeout));
                }
            }
            Control::Timer => match closing {
                Some((grace, hard)) => {
                    if now >= hard || (now >= grace && slot.active() == 0) {
                        tracing::debug!(%peer, "connection did not close in time; dropping it");
                        return;
                    }
                }
                None => {
                    if slot.idle_deadline(idle_timeout).is_some_and(|at| now >= at) {
                        tracing::debug!(%peer, "closing an idle connection");
                        conn.as_mut().shut_down_gracefully();
                        closing = Some((now + CLOSE_GRACE, now + MAX_REVIEW_TIME));
                    }
                }
            },
        }
    }
}

/// What ended a connection's wait other than the connection itself.
enum Control {
    /// A new connection needs its slot.
    Evicted,
    /// The server drains (or its shutdown sender is gone).
    Shutdown { sender_alive: bool },
    /// The idle or closing deadline came.
    Timer,
}

/// The answer to a request on the webhook port. Not an `async fn`: the request would be held
/// in its future and again in the review's, and every review moves its whole future.
fn route(
    req: Request<Incoming>,
    state: Arc<AppState>,
) -> Either<impl Future<Output = Response<Full<Bytes>>>, Ready<Response<Full<Bytes>>>> {
    let route = match (req.method(), req.uri().path()) {
        (&Method::POST, "/validate") => Route::Validate,
        (&Method::POST, "/mutate") => Route::Mutate,
        (_, "/validate" | "/mutate") => {
            return Either::Right(ready(text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n")));
        }
        _ => return Either::Right(ready(text(StatusCode::NOT_FOUND, "not found\n"))),
    };
    Either::Left(review(req, state, route))
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

/// `POST /validate` (allow, deny or warn) and `POST /mutate` (pin trusted tags to digests):
/// bounded body read, decode off the async workers, then the one review path. What the
/// review needs of the request's head is read here, before its future: the head is not kept.
fn review(
    req: Request<Incoming>,
    state: Arc<AppState>,
    route: Route,
) -> impl Future<Output = Response<Full<Bytes>>> {
    let start = Instant::now();
    let deadline = review_deadline(req.uri().query(), start);
    let head = ReviewHead {
        declared: body_length(req.headers()),
        version: req.version(),
        start,
        deadline,
    };
    review_body(req.into_body(), head, state, route)
}

/// What [`review_body`] needs of a request's head.
struct ReviewHead {
    /// The declared body length, when there is one that parses.
    declared: Option<u64>,
    version: http::Version,
    /// When the request arrived.
    start: Instant,
    deadline: Instant,
}

/// The review of a request whose head [`review`] has read: the body, then the decision.
async fn review_body(
    body: Incoming,
    head: ReviewHead,
    state: Arc<AppState>,
    route: Route,
) -> Response<Full<Bytes>> {
    let ReviewHead {
        declared,
        version,
        start,
        deadline,
    } = head;
    // The wait for a place counts towards the read time: a burst (a 500-replica rollout) waits
    // its turn, but a request that gets no place by its read deadline gets 503 before its body
    // is read (without the body there is no uid to answer a review with).
    let read_deadline = deadline.min(start + state.limits.request_read_timeout);
    let Some(_in_flight) = acquire_by(&state.inflight, 1, read_deadline).await else {
        return overloaded(&state, "too many reviews in flight");
    };
    let body = match read_body(body, declared, version, &state, read_deadline).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let review = match decode(body, &state, route).await {
        Ok(r) => r,
        Err(e) => {
            count(&state, "invalid");
            tracing::warn!(error = %e, "rejected a body that is not an AdmissionReview");
            return text(StatusCode::BAD_REQUEST, &format!("{e}\n"));
        }
    };
    let reviewer = Reviewer {
        engine: &state.engine,
        metrics: &state.metrics,
        ready: state.policies.valid(),
    };
    let answer = reviewer.answer(route, &review, start, deadline).await;
    if route == Route::Validate {
        state.metrics.review_duration(start.elapsed().as_secs_f64());
    }
    json(StatusCode::OK, answer.response)
}

/// The declared body length, when there is one that parses.
fn body_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `n` permits, waiting for them until `by`; `None` if they did not come in time.
async fn acquire_by(
    semaphore: &Arc<Semaphore>,
    n: u32,
    by: Instant,
) -> Option<OwnedSemaphorePermit> {
    tokio::time::timeout_at(by.into(), semaphore.clone().acquire_many_owned(n))
        .await
        .ok()?
        .ok()
}

/// A request body in memory, holding its share of the body budget until dropped.
struct Buffered {
    bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads a request body by `read_deadline`, within the body size limit and the global budget
/// of buffered bytes. A declared length is reserved from the budget before anything is read
/// (waiting for it until the deadline); a body without one reserves as it arrives, and gets 503
/// if the budget is spent. Errors are the response to send.
async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
    version: http::Version,
    state: &AppState,
    read_deadline: Instant,
) -> Result<Buffered, Response<Full<Bytes>>> {
    let max = state.limits.max_body_bytes;
    let too_large = |state: &AppState| {
        count(state, "invalid");
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {max} bytes\n"),
        )
    };
    // Reviews of ordinary objects are a few KiB: they stay outside the budget, so they never
    // queue behind large bodies waiting for it (the budget's queue is first come, first
    // served). The in-flight cap bounds them: at most `max_inflight_reviews` × `small` bytes.
    let small = state.limits.inline_decode_max_bytes;
    let mut reserved = match declared {
        Some(len) if len > max as u64 => return Err(too_large(state)),
        Some(len) if len <= small as u64 => None,
        // `len <= max`, and validation keeps `max` below u32::MAX.
        Some(len) => match acquire_by(
            &state.body_budget,
            u32::try_from(len).unwrap_or(u32::MAX),
            read_deadline,
        )
        .await
        {
            Some(permit) => Some(permit),
            None => return Err(overloaded(state, "too many request bytes buffered")),
        },
        None => None,
    };
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ReadError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            // A body of unknown length draws on the budget for what it holds beyond `small`.
            let beyond = (buf.len() + data.len()).saturating_sub(buf.len().max(small));
            if declared.is_none() && beyond > 0 {
                let more = state
                    .body_budget
                    .clone()
                    .try_acquire_many_owned(u32::try_from(beyond).unwrap_or(u32::MAX))
                    .map_err(|_| ReadError::OverBudget)?;
                match reserved.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => reserved = Some(more),
                }
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout_at(read_deadline.into(), read).await {
        Ok(Ok(())) => Ok(Buffered {
            bytes: buf.freeze(),
            _budget: reserved,
        }),
        Ok(Err(ReadError::TooLarge)) => Err(too_large(state)),
        Ok(Err(ReadError::OverBudget)) => Err(overloaded(state, "too many request bytes buffered")),
        Ok(Err(ReadError::Broken)) => {
            count(state, "invalid");
            Err(text(
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            ))
        }
        Err(_) => {
            count(state, "invalid");
            tracing::debug!(received = buf.len(), "request body not received in time");
            let mut r = text(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time\n",
            );
            // HTTP/1.1 cannot go on after an unfinished body; an HTTP/2 stream is reset alone.
            if version < http::Version::HTTP_2 {
                r.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Err(r)
        }
    }
}

enum ReadError {
    Broken,
    TooLarge,
    OverBudget,
}

/// Decodes a review. Large bodies are decoded on the blocking pool, a few at a time, so the
/// async workers keep answering other reviews (a pathological 7 MiB body takes hundreds of
/// milliseconds and many times its size to parse). Small ones are decoded in place: the hop
/// itself is cheap (about 9 µs), but in place they never queue for a decode slot behind large
/// bodies, and their parse memory is bounded by the number of workers. The body, and its share
/// of the budget, are released when the decode ends.
async fn decode(
    body: Buffered,
    state: &AppState,
    route: Route,
) -> Result<admission::Review, admission::DecodeError> {
    // The validating route reads only what a decision needs; the pinning route keeps the
    // object to patch it.
    let decode = match route {
        Route::Validate => admission::decode,
        Route::Mutate => admission::decode_with_object,
    };
    if body.bytes.len() <= state.limits.inline_decode_max_bytes {
        return decode(&body.bytes);
    }
    // The semaphore is never closed, so acquiring only fails if it were.
    let _slot = state.decodes.acquire().await.ok();
    match tokio::task::spawn_blocking(move || decode(&body.bytes)).await {
        Ok(decoded) => decoded,
        Err(error) => Err(admission::DecodeError::Json(format!(
            "decoding stopped: {error}"
        ))),
    }
}

fn count(state: &AppState, decision: &str) {
    state.metrics.review(decision);
}

/// 503 with `Retry-After`, for a request refused by a limit before its body was read.
fn overloaded(state: &AppState, why: &str) -> Response<Full<Bytes>> {
    count(state, "overloaded");
    tracing::warn!(reason = why, "request refused: signet is at a limit");
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("signet is overloaded ({why}); retry shortly\n"),
    );
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    r
}

async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Probes and scrapes need few connections; idle ones make room for new ones, as on the
    // webhook port, so idlers can neither exhaust descriptors nor lock out the kubelet.
    let connections = Connections::new(ADMIN_MAX_CONNECTIONS);
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let slot = match connections.admit() {
            Admission::Admitted(slot) | Admission::AdmittedByEvicting(slot) => slot,
            Admission::Refused => continue,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let in_service = slot.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                let in_flight = in_service.request();
                async move {
                    let _in_flight = in_flight;
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
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            drive(
                conn,
                peer,
                &slot,
                HEADER_READ_TIMEOUT,
                shutdown,
                Duration::from_secs(1),
            )
            .await;
        });
    }
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

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
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
