//! signet's load generator and scenario runner (`bench/run.sh` builds and runs it).
//!
//! It starts everything a scenario needs, drives the real release binary (`signet serve`, a
//! separate process, so its RSS is its own) over HTTPS keep-alive HTTP/1.1 (and, in scenario
//! p, HTTP/2) with real AdmissionReview bodies, and prints one markdown table. `run` builds the
//! shared [`World`] once and calls one function per scenario. The pieces:
//! - a real loopback `docker-registry` with images pushed and Cosign-signed by the
//!   integration-test harness (included by path, not copied);
//! - for the Notation kinds of the cold scenario (c), a second `docker-registry` (a policy
//!   covers a whole host, so Notation and Cosign images cannot share one), its images signed by
//!   the harness's Notation signer (JWS or COSE, referrers tag schema), and the harness's OCSP
//!   responder (`openssl ocsp` per request) for leaves that name it;
//! - a counting proxy in front of it (the harness turns docker-registry's access log off, so the
//!   proxy is the registry-side request count) that can answer a fraction of requests `429`;
//! - a synthetic registry that makes signed images up on demand, only to fill the verdict cache
//!   with 100,000 entries for the memory figure (pushing 100,000 images to docker-registry
//!   would take longer than the rest of the suite);
//! - the limits, measured in the same run: an HTTPS echo server on signet's own TLS stack (this
//!   binary, `loadgen echo-server`, as a separate process), one registry round trip, one P-256
//!   and one RSA-PSS-2048 verification, one AdmissionReview decode;
//! - nginx (scenario n), one worker serving signet's own answer with signet's certificate, and
//!   `wrk` driving both: the static-body floor of the cache hit;
//! - for the two-replica replay (r), two more `signet serve` processes behind a round-robin TCP
//!   forwarder (`start_front`);
//! - the soak (`bench/soak.rs`, `--only soak`): normal reviews while idle connections,
//!   slowloris headers, stalled bodies and HTTP/2 stream floods are held at once.
//!
//! Latency is measured per request with hdrhistogram. Closed loop: N connections, each sends
//! its next review when the previous answer arrives. Open loop: reviews are due at a fixed rate
//! and latency counts from when each was due, so a slow server cannot hide its queue
//! (no coordinated omission).
//!
//! An example rather than a `[[bench]]`: `cargo test --all-targets` builds an example as a test
//! harness with no tests, so this `main` (docker-registry, minutes) never runs there.

// Tests and benchmarks may unwrap: a panic here is a failed run, not a crashed webhook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// The test kit the integration tests use (crates/testkit), under the tests' module paths.
mod support {
    pub use signet_testkit::{cosign, fixtures, notary, oci, registry, responder};
    pub mod signet {
        pub use signet_testkit::policy::cosign_policy;
    }
}

use support::cosign::{self, CosignKey, KeyKind};
use support::fixtures::{load_review, replace_image};
use support::notary::{
    ChainSpec, Format, LEAF_SERIAL, RevocationUrls, SigningChain, named_notation_policy,
};
use support::oci::{PushedImage, sha256_digest};
use support::registry::TestRegistry;
use support::responder::{CertStatus, Responder};
use support::signet::cosign_policy;

mod soak;

/// The image in `pod-create.json` that scenarios replace.
const POD_IMAGE: &str = "nginx:1.27";
/// What the API server sends by default, and what the client waits at most.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "signet benchmark scenarios; prints a markdown table")]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The signet binary to drive (a release build).
    #[arg(long, default_value = "target/release/signet")]
    signet: PathBuf,
    /// Seconds per load point.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Small sizes everywhere (a smoke run of the whole suite in well under a minute).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run, comma-separated: limits,n,a,b,p,c,e,s,h,f,r,g,soak (p: HTTP/2 against
    /// HTTP/1.1; r: the replay on two replicas; `soak` is not in the default set: it takes
    /// `--soak-secs` and 10,000 connections).
    #[arg(long, default_value = "limits,n,a,b,p,c,e,s,h,f,r,g")]
    only: String,
    /// Seconds of hostile load in the soak (with `--quick`: 10).
    #[arg(long, default_value_t = 150.0)]
    soak_secs: f64,
    /// Idle TLS connections the soak holds (scaled down to the open-file limit).
    #[arg(long, default_value_t = 10_000)]
    soak_idle: usize,
    /// Normal reviews per second during the soak, every verdict checked.
    #[arg(long, default_value_t = 100.0)]
    soak_rate: f64,
    /// Slowloris connections (headers one byte a second) in the soak.
    #[arg(long, default_value_t = 200)]
    soak_slowloris: usize,
    /// Stalled 7 MiB bodies (2 MiB sent) held at once in the soak.
    #[arg(long, default_value_t = 64)]
    soak_stalled: usize,
    /// HTTP/2 connections flooding streams in the soak.
    #[arg(long, default_value_t = 8)]
    soak_h2: usize,
    /// Verdicts to cache for the memory figure (g).
    #[arg(long, default_value_t = 100_000)]
    verdicts: u64,
    /// Pods in the replay (f); each has 10 images.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Distinct images the replay's pods draw from (default: 2 per pod, at least 20); fixed
    /// apart from `--pods`, so that 10,000 pods need not push 20,000 images.
    #[arg(long)]
    pool: Option<usize>,
    /// New images verified at once in the storm scenario (s).
    #[arg(long, default_value_t = 200)]
    storm: usize,
    /// Restarts in the first-handshake scenario (h).
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// A command to run signet under, e.g. `valgrind --tool=callgrind` (bench/README.md).
    #[arg(long)]
    signet_prefix: Option<String>,
    /// `RUST_LOG` for signet (unset: signet's default, one `info` line per review).
    #[arg(long)]
    signet_log: Option<String>,
    /// Fraction of registry requests the replay proxy answers 429, in per mille.
    #[arg(long, default_value_t = 100)]
    throttle_per_mille: u64,
    /// How the images of the cold scenario (c) are signed, comma-separated; one pair of rows
    /// (direct, through the counting proxy) each.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ColdKind::ALL)]
    cold_kinds: Vec<ColdKind>,
}

/// How the images of scenario (c) are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ColdKind {
    /// Cosign, P-256 key (the `.sig` tag).
    Cosign,
    /// Notation JWS, root → intermediate → ES256 leaf, no revocation URLs.
    NotationJws,
    /// Notation COSE, the same chain.
    NotationCose,
    /// Notation JWS whose leaf names the local OCSP responder; a new leaf, with its own URL, per
    /// image, so that no image can reuse another's answer: one OCSP round trip per review.
    NotationJwsOcsp,
    /// Notation JWS, one leaf naming the OCSP responder for every image: signet's revocation
    /// cache (5 minutes) answers all but the first review.
    NotationJwsOcspShared,
}

impl ColdKind {
    const ALL: [ColdKind; 5] = [
        ColdKind::Cosign,
        ColdKind::NotationJws,
        ColdKind::NotationCose,
        ColdKind::NotationJwsOcsp,
        ColdKind::NotationJwsOcspShared,
    ];

    /// The envelope format, for the Notation kinds.
    fn notation(self) -> Option<Format> {
        match self {
            ColdKind::Cosign => None,
            ColdKind::NotationCose => Some(Format::Cose),
            ColdKind::NotationJws | ColdKind::NotationJwsOcsp | ColdKind::NotationJwsOcspShared => {
                Some(Format::Jws)
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            ColdKind::Cosign => "Cosign key",
            ColdKind::NotationJws => "Notation JWS",
            ColdKind::NotationCose => "Notation COSE",
            ColdKind::NotationJwsOcsp => "Notation JWS, leaf per image naming an OCSP responder",
            ColdKind::NotationJwsOcspShared => {
                "Notation JWS, one leaf naming an OCSP responder for all images"
            }
        }
    }

    /// A short name for tags and repositories.
    fn slug(self) -> &'static str {
        match self {
            ColdKind::Cosign => "cosign",
            ColdKind::NotationJws => "jws",
            ColdKind::NotationCose => "cose",
            ColdKind::NotationJwsOcsp => "jws-ocsp",
            ColdKind::NotationJwsOcspShared => "jws-ocsp-shared",
        }
    }
}

impl std::fmt::Display for ColdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => Ok(()),
        }
    }
}

#[derive(Subcommand)]
enum Sub {
    /// An HTTPS echo server on signet's TLS stack (internal: the transport limit).
    EchoServer {
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long)]
        ca_out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command {
        Some(Sub::EchoServer {
            ref port_file,
            ref ca_out,
        }) => rt.block_on(echo_server(port_file, ca_out)),
        None => rt.block_on(run(args)),
    }
}

// ---------------------------------------------------------------------------------------------
// Figures and the report

/// The 1-minute load average, recorded next to every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

struct Report {
    rows: Vec<String>,
}

impl Report {
    /// The table on stdout, after a line saying what signet was and how it logged.
    fn print(&self, args: &Args) {
        println!(
            "signet: `{}` (a separate process), RUST_LOG {}; loadgen and signet share the machine's cores.\n",
            args.signet.display(),
            args.signet_log.as_deref().map_or(
                "unset (signet's default: one info line per review, to a file)".to_owned(),
                |l| format!("= {l}")
            )
        );
        println!("| scenario | figure | limit | ratio to limit | target | load (1 min) |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!("{r}");
        }
    }

    fn row(&mut self, scenario: &str, figure: &str, limit: &str, ratio: &str, target: &str) {
        let line = format!(
            "| {scenario} | {figure} | {limit} | {ratio} | {target} | {} |",
            load()
        );
        eprintln!("{line}");
        self.rows.push(line);
    }
}

/// Latencies in nanoseconds and counts of one load run.
struct Stats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    /// Of the errors, reviews with no answer within `REVIEW_TIMEOUT`.
    timeouts: u64,
    /// Answers whose `allowed` was not the expected one.
    wrong: u64,
    /// Of those, answers that allowed what should have been denied (the dangerous kind).
    wrongly_allowed: u64,
    /// The messages of the first few wrong answers, to say why.
    wrong_samples: Vec<String>,
    elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("histogram bounds")
}

impl Stats {
    fn empty() -> Stats {
        Stats {
            hist: histogram(),
            ok: 0,
            errors: 0,
            timeouts: 0,
            wrong: 0,
            wrongly_allowed: 0,
            wrong_samples: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.hist.add(&other.hist).expect("same bounds");
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.wrong += other.wrong;
        self.wrongly_allowed += other.wrongly_allowed;
        for m in &other.wrong_samples {
            if self.wrong_samples.len() < 3 && !self.wrong_samples.contains(m) {
                self.wrong_samples.push(m.clone());
            }
        }
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Quantile in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }

    fn latency(&self) -> String {
        format!(
            "p50 {:.3} / p90 {:.3} / p99 {:.3} / p99.9 {:.3} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999)
        )
    }

    fn summary(&self) -> String {
        let mut s = format!("{:.0} reviews/s; {}", self.rate(), self.latency());
        if self.errors > 0 || self.wrong > 0 {
            s.push_str(&format!(
                "; {} errors, {} wrong ({} wrongly allowed)",
                self.errors, self.wrong, self.wrongly_allowed
            ));
            for m in &self.wrong_samples {
                s.push_str(&format!("; e.g. “{m}”"));
            }
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTPS client: one hyper HTTP/1.1 (or HTTP/2) connection per worker, TLS by tokio-rustls.

struct Target {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: String,
    /// Offer only `h2` (ALPN) and speak HTTP/2; otherwise only `http/1.1`.
    h2: bool,
}

/// One client connection, or one HTTP/2 stream slot of a shared connection (a clone of its
/// `SendRequest`: each worker keeps one review in flight on it).
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Target {
    fn new(addr: SocketAddr, ca_pem: &str, path: &str) -> anyhow::Result<Target> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Offer only http/1.1, as an API server would be answered by a webhook choosing it.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Target {
            addr,
            tls: Arc::new(tls),
            path: path.to_owned(),
            h2: false,
        })
    }

    /// The same server, offering only `h2` (what an API server's Go client negotiates when the
    /// webhook offers it).
    fn http2(&self) -> Target {
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Target {
            addr: self.addr,
            tls: Arc::new(tls),
            path: self.path.clone(),
            h2: true,
        }
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        if self.h2 {
            anyhow::ensure!(
                tls.get_ref().1.alpn_protocol() == Some(b"h2"),
                "the server did not choose h2"
            );
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H1(send))
        }
    }

    async fn post(&self, send: &mut Conn, body: Bytes) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = Request::post(&self.path)
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = tokio::time::timeout(REVIEW_TIMEOUT, async {
            let resp = match send {
                Conn::H1(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
                Conn::H2(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
            };
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .context("no answer within the webhook timeout")??;
        Ok(resp)
    }
}

/// `Some(allowed)` from a response review (a byte search: the client must stay cheap).
fn allowed_of(body: &[u8]) -> Option<bool> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if has(b"\"allowed\":true") {
        Some(true)
    } else if has(b"\"allowed\":false") {
        Some(false)
    } else {
        None
    }
}

/// The deny message of a response review, shortened for the table.
fn message_of(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let m = v["response"]["status"]["message"]
        .as_str()
        .unwrap_or("(no message)");
    let m: String = m.chars().filter(|c| *c != '|' && *c != '\n').collect();
    if m.chars().count() > 240 {
        format!("{}…", m.chars().take(240).collect::<String>())
    } else {
        m
    }
}

/// One review body and the `allowed` it must get (`None`: any answer is fine, e.g. the echo).
#[derive(Clone)]
struct Work {
    body: Bytes,
    expect: Option<bool>,
}

async fn connect_all(target: &Target, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    // Batches, so the listen backlog never overflows.
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let made = futures_util::future::join_all(chunk.iter().map(|_| target.connect())).await;
        for c in made {
            conns.push(c?);
        }
    }
    Ok(conns)
}

async fn send_one(
    target: &Target,
    send: &mut Conn,
    work: &Work,
    since: Instant,
    stats: &mut Stats,
) {
    let answer = target.post(send, work.body.clone()).await;
    match answer {
        Ok((StatusCode::OK, ref body)) => {
            stats
                .hist
                .saturating_record(since.elapsed().as_nanos() as u64);
            stats.ok += 1;
            let got = allowed_of(body);
            if let Some(expect) = work.expect
                && got != Some(expect)
            {
                stats.wrong += 1;
                if got == Some(true) {
                    stats.wrongly_allowed += 1;
                }
                if stats.wrong_samples.len() < 3 {
                    stats.wrong_samples.push(message_of(body));
                }
            }
        }
        Ok(_) | Err(_) => {
            stats.errors += 1;
            if matches!(&answer, Err(e) if e.is::<tokio::time::error::Elapsed>()) {
                stats.timeouts += 1;
            }
            if let Ok(fresh) = target.connect().await {
                *send = fresh;
            }
        }
    }
}

/// Closed loop: `concurrency` connections, each with one review in flight, for `duration`.
async fn closed_loop(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let conns = connect_all(target, concurrency).await?;
    closed_loop_on(target, work, conns, duration).await
}

/// Closed loop over connections already made (or HTTP/2 stream slots): one worker each, one
/// review in flight per worker, for `duration`.
async fn closed_loop_on(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    conns: Vec<Conn>,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let concurrency = conns.len();
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut send)| {
            let target = target.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                let mut k = i;
                while Instant::now() < end {
                    let w = &work[k % work.len()];
                    k += concurrency;
                    send_one(&target, &mut send, w, Instant::now(), &mut stats).await;
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Open loop: reviews due at `rate` per second for `duration`, served by `connections`
/// connections; latency counts from when each review was due.
async fn open_loop(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let conns = connect_all(target, connections).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut send| {
            let target = target.clone();
            let work = work.clone();
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((k, due)) = next else { break };
                    send_one(&target, &mut send, &work[k % work.len()], due, &mut stats).await;
                }
                stats
            })
        })
        .collect();
    let total_n = (rate * duration.as_secs_f64()) as usize;
    let mut sent = 0usize;
    while sent < total_n {
        let due_now = ((start.elapsed().as_secs_f64() * rate) as usize).min(total_n);
        while sent < due_now {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            tx.send((sent, due)).ok();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    drop(tx);
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// Processes: signet (the release binary) and the echo server (this binary).

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Proc {
    child: Child,
}

impl Drop for Proc {
    /// SIGTERM first (signet drains and exits; under valgrind, callgrind writes its profile on
    /// exit), SIGKILL after 60 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// CPU time (user + system) the process has used so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        let ticks = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|s| {
                // Fields after the parenthesised command name; utime and stime are 14 and 15.
                let rest = s.rsplit_once(')')?.1.to_owned();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
            })
            .unwrap_or(0.0);
        ticks / clock_ticks()
    }

    /// VmRSS of the process, in KiB.
    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// VmHWM (the peak RSS) of the process, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

/// `getconf CLK_TCK` (the unit of /proc/PID/stat times), 100 when unknown.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Runs `f` and returns its result with the CPU microseconds `proc` spent per successful
/// review meanwhile.
async fn with_cpu<F: std::future::Future<Output = anyhow::Result<Stats>>>(
    proc: &Proc,
    f: F,
) -> anyhow::Result<(Stats, f64)> {
    let before = proc.cpu_secs();
    let stats = f.await?;
    let used = proc.cpu_secs() - before;
    let per = used * 1e6 / (stats.ok.max(1) as f64);
    Ok((stats, per))
}

struct SignetProc {
    proc: Proc,
    webhook: SocketAddr,
    admin: String,
    ca_pem: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl SignetProc {
    /// `signet serve` with these policies, reaching `insecure` registries over plain HTTP.
    async fn start(
        bin: &Path,
        policies: &str,
        insecure: &[String],
        rust_log: Option<&str>,
        prefix: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<SignetProc> {
        let dir = tempfile::Builder::new().prefix("signet-bench-").tempdir()?;
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir)?;
        std::fs::write(policy_dir.join("policies.yaml"), policies)?;
        // A certificate of our own, in files, so that nginx (scenario n) serves the same one.
        let (pair, ca_pem) = signet::server::tls::self_signed(&[]).map_err(anyhow::Error::msg)?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pair.cert)?;
        std::fs::write(&key, &pair.key)?;
        let (port, admin_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("signet.log"))?;
        let mut words: Vec<&str> = prefix
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        let mut cmd = match words.first() {
            Some(first) => {
                let mut c = Command::new(first);
                c.args(words.drain(1..)).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--policies")
            .arg(&policy_dir)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for host in insecure {
            cmd.arg("--insecure-registry").arg(host);
        }
        cmd.args(extra);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} (build it: bench/run.sh)", bin.display()))?;
        let proc = Proc { child };
        let admin = format!("http://127.0.0.1:{admin_port}");
        let http = reqwest::Client::builder().no_proxy().build()?;
        // Under valgrind, start-up takes tens of seconds.
        let deadline =
            Instant::now() + Duration::from_secs(if prefix.is_some() { 180 } else { 20 });
        loop {
            let ready = http
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "signet did not become ready; log:\n{}",
                    std::fs::read_to_string(dir.path().join("signet.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(SignetProc {
            proc,
            webhook: format!("127.0.0.1:{port}").parse()?,
            admin,
            ca_pem,
            http,
            _dir: dir,
        })
    }

    /// The serving certificate and key files.
    fn cert_files(&self) -> (PathBuf, PathBuf) {
        (
            self._dir.path().join("cert.pem"),
            self._dir.path().join("key.pem"),
        )
    }

    /// signet's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("signet.log")).unwrap_or_default()
    }

    fn target(&self) -> anyhow::Result<Arc<Target>> {
        Ok(Arc::new(Target::new(
            self.webhook,
            &self.ca_pem,
            "/validate?timeout=10s",
        )?))
    }

    /// The sum of every series of a metric family (`name{...} value` lines).
    async fn metric(&self, name: &str) -> f64 {
        let text = match self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Every series of a metric family by its labels, e.g. `{operation="blob",status="200"}`.
    async fn series(&self, name: &str) -> HashMap<String, f64> {
        let text = match self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| {
                let (labels, v) = l.rsplit_once(' ')?;
                Some((labels.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    /// Seconds signet spent answering reviews and in registry requests so far (the sums of
    /// its duration histograms).
    async fn durations(&self) -> (f64, f64) {
        (
            self.metric("signet_admission_review_duration_seconds_sum")
                .await,
            self.metric("signet_registry_request_duration_seconds_sum")
                .await,
        )
    }

    async fn counters(&self) -> (f64, f64) {
        (
            self.metric("signet_registry_requests_total").await,
            self.metric("signet_verifications_total").await,
        )
    }
}

/// `loadgen echo-server`: signet's TLS configuration and hyper-util server, answering every
/// request with its own body. The transport's limit for signet's figures.
async fn echo_server(port_file: &Path, ca_out: &Path) -> anyhow::Result<()> {
    use signet::server::tls;
    let (pair, ca) = tls::self_signed(&[]).map_err(anyhow::Error::msg)?;
    let resolver = Arc::new(tls::ReloadingResolver::new(
        tls::certified_key(&pair).map_err(anyhow::Error::msg)?,
    ));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        tls::server_config(resolver).map_err(anyhow::Error::msg)?,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(ca_out, ca)?;
    std::fs::write(port_file, listener.local_addr()?.port().to_string())?;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(|req: Request<Incoming>| async move {
                let body = req.into_body().collect().await?.to_bytes();
                let mut resp = Response::new(Full::new(body));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, hyper::Error>(resp)
            });
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

async fn start_echo() -> anyhow::Result<(Proc, Arc<Target>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (port_file, ca_out) = (dir.path().join("port"), dir.path().join("ca.pem"));
    let child = Command::new(std::env::current_exe()?)
        .arg("echo-server")
        .arg("--port-file")
        .arg(&port_file)
        .arg("--ca-out")
        .arg(&ca_out)
        .stdin(Stdio::null())
        .spawn()?;
    let proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    let port: u16 = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse()
        {
            break p;
        }
        if Instant::now() > deadline {
            bail!("the echo server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ca = std::fs::read_to_string(&ca_out)?;
    let target = Arc::new(Target::new(
        format!("127.0.0.1:{port}").parse()?,
        &ca,
        "/validate?timeout=10s",
    )?);
    Ok((proc, target, dir))
}

// ---------------------------------------------------------------------------------------------
// Registry-side helpers: a counting (and throttling) proxy, and a synthetic signed registry.

#[derive(Default)]
struct ProxyCounts {
    total: AtomicU64,
    throttled: AtomicU64,
}

struct Proxy {
    host: String,
    counts: Arc<ProxyCounts>,
}

impl Proxy {
    fn total(&self) -> u64 {
        self.counts.total.load(Ordering::Relaxed)
    }
    fn throttled(&self) -> u64 {
        self.counts.throttled.load(Ordering::Relaxed)
    }
}

/// A plain-HTTP reverse proxy to `upstream` that counts requests and answers `per_mille` of
/// them `429 Too Many Requests` with `Retry-After: 1` (a fixed pseudo-random sequence).
async fn start_proxy(upstream: String, per_mille: u64) -> anyhow::Result<Proxy> {
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

async fn forward(
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
async fn start_synthetic_registry(key: CosignKey) -> anyhow::Result<String> {
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

fn synthetic(
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

// ---------------------------------------------------------------------------------------------
// Review bodies

fn pod_with(image: &str) -> Value {
    let mut review = load_review("pod-create");
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    review
}

/// `pod-create.json` with one container per image (names `c0`, `c1`, ...).
fn pod_with_images(images: &[String]) -> Value {
    let mut review = load_review("pod-create");
    let spec = &mut review["request"]["object"]["spec"];
    let first = spec["containers"][0].clone();
    spec["containers"] = Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let mut c = first.clone();
                c["name"] = json!(format!("c{i}"));
                c["image"] = json!(image);
                c
            })
            .collect(),
    );
    review
}

fn body(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("review JSON"))
}

/// Pushes `n` images `repo:{prefix}{i}` and signs each with `key` (when given), 8 at a time.
async fn push_signed(
    registry: &TestRegistry,
    repo: &str,
    prefix: &str,
    seeds: std::ops::Range<u64>,
    key: Option<&CosignKey>,
) -> Vec<PushedImage> {
    let pusher = registry.pusher();
    let mut out = Vec::new();
    let seeds: Vec<u64> = seeds.collect();
    for chunk in seeds.chunks(8) {
        let pushed = futures_util::future::join_all(chunk.iter().map(|&s| {
            let pusher = &pusher;
            async move {
                let img = pusher.push_image(repo, &format!("{prefix}{s}"), s).await;
                if let Some(key) = key {
                    cosign::sign_image(registry, repo, &img, key).await;
                }
                img
            }
        }))
        .await;
        out.extend(pushed);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scenario (c): cold reviews, and the Notation images it signs

/// What one sequential run of cold reviews cost (totals over `images`).
struct Cold {
    stats: Stats,
    images: usize,
    /// signet's `signet_registry_requests_total`.
    registry_requests: f64,
    verifications: f64,
    /// signet's registry requests by operation and status, per image.
    ops: Vec<String>,
    /// Requests the counting proxy forwarded, when the images were reached through it.
    seen: Option<u64>,
    /// Of those, each image's (the reviews are sequential, so each is exact).
    seen_per_image: Vec<u64>,
    /// The same images' registry requests made by hand, each next to its review.
    sequence: Stats,
    /// OCSP requests the responder received.
    ocsp: Option<usize>,
    /// signet's own seconds (sums of its duration histograms): answering the reviews, and in
    /// registry requests.
    review_secs: f64,
    registry_secs: f64,
}

impl Cold {
    /// The most registry requests (seen by the proxy) any image after the first needed: by
    /// then signet knows whether the host has the referrers API.
    fn max_after_first(&self) -> Option<u64> {
        self.seen_per_image.iter().skip(1).copied().max()
    }

    fn figure(&self) -> String {
        let per = |x: f64| x / self.images.max(1) as f64;
        let mut figure = format!(
            "{}; {:.2} registry requests/image (signet), {:.2} verifications/image (per image: {})",
            self.stats.summary(),
            per(self.registry_requests),
            per(self.verifications),
            self.ops.join(", ")
        );
        if let Some(seen) = self.seen {
            figure.push_str(&format!(
                ", {:.2} requests/image seen by the registry (the most for one image: {} for the first, {} for any later one)",
                per(seen as f64),
                self.seen_per_image.first().copied().unwrap_or(0),
                self.max_after_first().unwrap_or(0)
            ));
        }
        figure.push_str(&format!(
            "; signet's own mean per image: {:.3} ms answering the review, of which {:.3} ms in registry requests",
            per(self.review_secs) * 1e3,
            per(self.registry_secs) * 1e3
        ));
        if let Some(asked) = self.ocsp {
            figure.push_str(&format!(
                ", {:.2} OCSP requests/image at the responder",
                per(asked as f64)
            ));
        }
        figure
    }
}

/// Reviews a pod of each of `refs` once, one after another on one connection, each expected
/// allowed, and counts what that cost signet, the registry (through `proxy`) and `responder`.
async fn cold_run(
    signet: &SignetProc,
    target: &Arc<Target>,
    refs: &[String],
    proxy: Option<&Proxy>,
    responder: Option<&Responder>,
    by_hand: (&ByHand, &[PushedImage]),
) -> anyhow::Result<Cold> {
    let work: Vec<Work> = refs
        .iter()
        .map(|r| Work {
            body: body(&pod_with(r)),
            expect: Some(true),
        })
        .collect();
    let (reg0, ver0) = signet.counters().await;
    let secs0 = signet.durations().await;
    let ops0 = signet.series("signet_registry_requests_total").await;
    let asked0 = responder.map(|r| r.ocsp_requests().len());
    let mut stats = Stats::empty();
    let mut send = target.connect().await?;
    let start = Instant::now();
    let mut seen_per_image = Vec::new();
    let (hand, images) = by_hand;
    let mut sequence = Stats::empty();
    if let Some(first) = images.first() {
        hand.one(first).await?; // its connection
    }
    for (i, (w, img)) in work.iter().zip(images).enumerate() {
        // The same image's requests by hand, before the review for even images and after it
        // for odd ones, so that both meet the same moment's load.
        if i % 2 == 0 {
            let took = hand.one(img).await?;
            sequence.hist.saturating_record(took.as_nanos() as u64);
        }
        let before = proxy.map(Proxy::total);
        send_one(target, &mut send, w, Instant::now(), &mut stats).await;
        if let (Some(p), Some(b)) = (proxy, before) {
            seen_per_image.push(p.total() - b);
        }
        if i % 2 == 1 {
            let took = hand.one(img).await?;
            sequence.hist.saturating_record(took.as_nanos() as u64);
        }
    }
    sequence.ok = sequence.hist.len();
    stats.elapsed = start.elapsed();
    let (reg1, ver1) = signet.counters().await;
    let secs1 = signet.durations().await;
    let mut ops: Vec<String> = signet
        .series("signet_registry_requests_total")
        .await
        .into_iter()
        .filter_map(|(labels, v)| {
            let d = v - ops0.get(&labels).copied().unwrap_or(0.0);
            (d > 0.0).then(|| format!("{labels} {:.2}", d / work.len() as f64))
        })
        .collect();
    ops.sort();
    Ok(Cold {
        stats,
        images: work.len(),
        registry_requests: reg1 - reg0,
        verifications: ver1 - ver0,
        ops,
        // signet's requests only: the ones made by hand fall between the reviews.
        seen: proxy.map(|_| seen_per_image.iter().sum()),
        seen_per_image,
        sequence,
        review_secs: secs1.0 - secs0.0,
        registry_secs: secs1.1 - secs0.1,
        ocsp: responder
            .zip(asked0)
            .map(|(r, a0)| r.ocsp_requests().len() - a0),
    })
}

/// A Notation authority's verification settings in scenario (c).
const NOTATION_STRICT: &str = "{level: strict}";

/// Scenario (c)'s Notation setting: a docker-registry of its own with a counting proxy in front,
/// one signing chain (root → intermediate → ES256 leaf, by `tests/it/support/notary.rs`) whose
/// root the two Notation policies trust (level strict, `trustedIdentities: ['*']`), and a local
/// OCSP responder answering "good" for the chain's leaves. At start, the in-process time of
/// one verification of a JWS and of a COSE signature: the limits of the Notation rows.
struct NotationWorld {
    registry: TestRegistry,
    counted: Proxy,
    chain: SigningChain,
    responder: Responder,
    /// Mean µs of `signet::verify::notation::verify`, JWS and COSE.
    verify_us: [f64; 2],
}

impl NotationWorld {
    async fn start(verify_runs: u32) -> anyhow::Result<NotationWorld> {
        let registry = TestRegistry::start();
        let counted = start_proxy(registry.base_url(), 0).await?;
        let chain = SigningChain::new(&ChainSpec::default());
        let responder = Responder::start();
        responder.answer_ocsp(&chain.intermediate, &[CertStatus::Good(LEAF_SERIAL)]);
        let mut world = NotationWorld {
            registry,
            counted,
            chain,
            responder,
            verify_us: [0.0; 2],
        };
        let policy = world.policy("limit", "registry.example.com");
        for (i, format) in [Format::Jws, Format::Cose].into_iter().enumerate() {
            world.verify_us[i] = notation_verify_us(&policy, &world.chain, format, verify_runs)?;
        }
        Ok(world)
    }

    /// The policy names and hosts: the registry itself and the counting proxy.
    fn hosts(&self) -> [(&'static str, String); 2] {
        [
            ("notation-direct", self.registry.addr()),
            ("notation-counted", self.counted.host.clone()),
        ]
    }

    /// A policy `name` covering `host/**` with the Notation authority trusting the chain.
    fn policy(&self, name: &str, host: &str) -> String {
        named_notation_policy(
            name,
            &format!("{host}/**"),
            NOTATION_STRICT,
            &self.chain.root.cert_pem,
            None,
        )
    }

    fn verify_us(&self, format: Format) -> f64 {
        match format {
            Format::Jws => self.verify_us[0],
            Format::Cose => self.verify_us[1],
        }
    }

    /// Pushes `repo:n{seed}` for each seed and a Notation signature of each, as a referrer
    /// (referrers tag schema), signed as `kind` says.
    async fn push(
        &mut self,
        kind: ColdKind,
        repo: &str,
        seeds: std::ops::Range<u64>,
    ) -> Vec<PushedImage> {
        let Some(format) = kind.notation() else {
            return Vec::new();
        };
        let pusher = self.registry.pusher();
        // Images 8 at a time; their signatures one at a time: every signature manifest's
        // config is the same `{}` blob, and docker-registry fails concurrent uploads of one
        // blob to one repository now and then (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN).
        let seeds: Vec<u64> = seeds.collect();
        let mut out = Vec::new();
        for chunk in seeds.chunks(8) {
            let pushed = futures_util::future::join_all(chunk.iter().map(|&s| {
                let pusher = &pusher;
                async move { pusher.push_image(repo, &format!("n{s}"), s).await }
            }))
            .await;
            out.extend(pushed);
        }
        let leaf = match kind {
            ColdKind::NotationJwsOcspShared => {
                RevocationUrls::ocsp(self.responder.url("/ocsp/shared"))
            }
            _ => RevocationUrls::default(),
        };
        self.chain.reissue_leaf(&leaf);
        for (img, s) in out.iter().zip(&seeds) {
            if kind == ColdKind::NotationJwsOcsp {
                // A leaf per image, each naming its own URL: signet caches revocation answers
                // by URL and request, and the request (CertID: issuer, serial) is the same.
                let url = self.responder.url(&format!("/ocsp/{s}"));
                self.chain.reissue_leaf(&RevocationUrls::ocsp(url));
            }
            self.chain.sign_and_push(&pusher, img, format, None).await;
        }
        out
    }

    /// The responder's own round trip, the floor of an OCSP check: the first OCSP request it
    /// received, replayed `n` times, each on a new connection (its server answers one request
    /// per connection). `None` before any OCSP request.
    async fn responder_rtt(&self, n: usize) -> Option<Stats> {
        let request = self.responder.ocsp_requests().first()?.body.clone();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .ok()?;
        let url = self.responder.url("/ocsp/rtt");
        let mut stats = Stats::empty();
        let start = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let answer = client
                .post(&url)
                .header("content-type", "application/ocsp-request")
                .body(request.clone())
                .send()
                .await;
            let ok = match answer {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if ok {
                stats.ok += 1;
                stats.hist.saturating_record(t0.elapsed().as_nanos() as u64);
            } else {
                stats.errors += 1;
            }
        }
        stats.elapsed = start.elapsed();
        Some(stats)
    }
}

/// An image manifest that exists nowhere, as the subject of an in-process verification.
fn unpushed_image() -> PushedImage {
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": support::oci::OCI_MANIFEST,
        "config": {"mediaType": support::oci::OCI_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [],
    }))
    .expect("manifest JSON");
    PushedImage {
        repo: "bench/limit".into(),
        tag: None,
        digest: sha256_digest(&manifest),
        media_type: support::oci::OCI_MANIFEST.into(),
        size: manifest.len() as u64,
        manifest,
        platform: None,
        children: Vec::new(),
    }
}

/// Mean µs of `signet::verify::notation::verify` of one signature by `chain` in `format`, under
/// the Notation authority of `policy` (no I/O: the floor of a Notation verification).
fn notation_verify_us(
    policy: &str,
    chain: &SigningChain,
    format: Format,
    n: u32,
) -> anyhow::Result<f64> {
    use signet::policy::Verifier;
    use signet::verify::notation::NotationSignature;
    use signet::verify::{Context, Outcome, Subject};
    let set = signet::policy::load_str(Path::new("bench.yaml"), policy)
        .map_err(|e| anyhow::anyhow!("the Notation policy does not load: {e:?}"))?;
    let Some(Verifier::Notation(authority)) = set
        .policies
        .first()
        .and_then(|p| p.authorities.first())
        .map(|a| &a.verifier)
    else {
        bail!("the Notation policy has no Notation authority");
    };
    let image = unpushed_image();
    let subject = Subject {
        digest: image
            .digest
            .parse()
            .map_err(|e| anyhow::anyhow!("digest: {e:?}"))?,
        media_type: image.media_type.clone(),
        size: image.size,
    };
    let signatures = [NotationSignature {
        manifest_digest: sha256_digest(b"signature manifest")
            .parse()
            .map_err(|e| anyhow::anyhow!("digest: {e:?}"))?,
        media_type: format.media_type().to_owned(),
        envelope: chain.sign(format, &image, None).into(),
    }];
    let ctx = Context {
        now: std::time::SystemTime::now(),
    };
    let verify = || signet::verify::notation::verify(authority, &subject, &signatures, &ctx);
    let outcome = verify();
    anyhow::ensure!(
        matches!(outcome, Outcome::Trusted(_)),
        "the {format:?} signature does not verify in-process: {outcome:?}"
    );
    Ok(time_us(n, || {
        std::hint::black_box(verify());
    }))
}

// ---------------------------------------------------------------------------------------------
// The limits

/// Mean time of `f` over `n` runs, in microseconds.
fn time_us(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

struct Limits {
    p256_us: f64,
    decode_us: f64,
    registry_rtt: Stats,
}

/// Mean µs of one verification: P-256, P-384 (the root of the test Notation chain signs with
/// it), RSA-PSS-2048; and of one decode of `pod-create.json`.
fn crypto_and_decode_limits(n: u32) -> anyhow::Result<(f64, f64, f64, f64)> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair};
    let rng = SystemRandom::new();
    let msg = cosign::simple_signing_payload(
        "registry.example.com/team/app",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    let ec = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| anyhow::anyhow!("P-256 keygen"))?;
    let ec_sig = ec
        .sign(&rng, &msg)
        .map_err(|_| anyhow::anyhow!("P-256 sign"))?;
    let ec_pub = sig::UnparsedPublicKey::new(
        &sig::ECDSA_P256_SHA256_ASN1,
        ec.public_key().as_ref().to_vec(),
    );
    let p256 = time_us(n, || {
        ec_pub
            .verify(&msg, ec_sig.as_ref())
            .expect("P-256 verifies");
    });
    let ec384 = sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_ASN1_SIGNING)
        .map_err(|_| anyhow::anyhow!("P-384 keygen"))?;
    let ec384_sig = ec384
        .sign(&rng, &msg)
        .map_err(|_| anyhow::anyhow!("P-384 sign"))?;
    let ec384_pub = sig::UnparsedPublicKey::new(
        &sig::ECDSA_P384_SHA384_ASN1,
        ec384.public_key().as_ref().to_vec(),
    );
    let p384 = time_us(n, || {
        ec384_pub
            .verify(&msg, ec384_sig.as_ref())
            .expect("P-384 verifies");
    });
    let rsa = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("RSA keygen"))?;
    let mut rsa_sig = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&sig::RSA_PSS_SHA256, &rng, &msg, &mut rsa_sig)
        .map_err(|_| anyhow::anyhow!("RSA sign"))?;
    let rsa_pub = sig::UnparsedPublicKey::new(
        &sig::RSA_PSS_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    let pss = time_us(n, || {
        rsa_pub.verify(&msg, &rsa_sig).expect("RSA-PSS verifies");
    });
    let review = support::fixtures::review_bytes("pod-create");
    let decode = time_us(n, || {
        std::hint::black_box(signet::admission::decode(&review).expect("fixture decodes"));
    });
    let full = time_us(n, || {
        std::hint::black_box(
            signet::admission::decode_with_object(&review).expect("fixture decodes"),
        );
    });
    eprintln!(
        "| limit: the full decoder of the pinning route (`decode_with_object`, pod-create.json) | {full:.1} µs | - | - | - | {} |",
        load()
    );
    Ok((p256, p384, pss, decode))
}

/// Sequential `HEAD` of a manifest over one keep-alive connection (what signet's resolve does).
async fn registry_rtt(registry: &TestRegistry, image: &PushedImage, n: usize) -> Stats {
    let client = registry.client();
    let url = format!(
        "{}/v2/{}/manifests/{}",
        registry.base_url(),
        image.repo,
        image.digest
    );
    let mut stats = Stats::empty();
    let start = Instant::now();
    for i in 0..n + 20 {
        let t0 = Instant::now();
        let ok = client
            .head(&url)
            .header("accept", support::oci::MANIFEST_ACCEPT)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if i < 20 {
            continue; // warm-up
        }
        if ok {
            stats.ok += 1;
            stats.hist.saturating_record(t0.elapsed().as_nanos() as u64);
        } else {
            stats.errors += 1;
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

// ---------------------------------------------------------------------------------------------
// The run

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Scenarios with a function of their own

/// `wrk`'s figures: requests per second and latency percentiles in ms.
struct Wrk {
    rate: f64,
    p50: f64,
    p99: f64,
    raw: String,
}

/// `wrk -t1 -c{connections} -d{secs}s --latency` POSTing `body` to `url`.
fn wrk(url: &str, body: &[u8], connections: usize, secs: f64) -> anyhow::Result<Wrk> {
    let dir = tempfile::tempdir()?;
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body)?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body_file.display()
        ),
    )?;
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", secs.max(1.0) as u64),
        ])
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .context("run wrk (bench/install.sh installs it)")?;
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |line: &str| -> Option<f64> {
        let v = line.split_whitespace().nth(1)?;
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = n.parse().ok()?;
        Some(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            _ => return None,
        })
    };
    let find = |prefix: &str| raw.lines().find(|l| l.trim_start().starts_with(prefix));
    let rate = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let p50 = find("50%").and_then(ms).unwrap_or(f64::NAN);
    let p99 = find("99%").and_then(ms).unwrap_or(f64::NAN);
    anyhow::ensure!(
        rate > 0.0,
        "wrk gave no rate:\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Wrk {
        rate,
        p50,
        p99,
        raw,
    })
}

/// nginx from Debian, one worker, TLS with signet's own certificate and key, answering every
/// request `200` with `body`: the floor of a static-body TLS server.
struct Nginx {
    proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(cert: &Path, key: &Path, body: &[u8]) -> anyhow::Result<Nginx> {
        let dir = tempfile::Builder::new().prefix("nginx-bench-").tempdir()?;
        let port = free_port();
        let d = dir.path().display();
        let body = String::from_utf8(body.to_vec())?;
        anyhow::ensure!(
            !body.contains('\''),
            "the body holds a quote nginx would need escaped"
        );
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000000;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location / {{ default_type application/json; return 200 '{body}'; }}\n  }}\n}}\n",
            cert.display(),
            key.display()
        );
        let conf_file = dir.path().join("nginx.conf");
        std::fs::write(&conf_file, conf)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_file)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start nginx (bench/install.sh installs it)")?;
        let proc = Proc { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx {
            proc,
            port,
            _dir: dir,
        })
    }
}

/// (n) The cache hit against its floor: signet and nginx (static body, same certificate, one
/// worker) under the same `wrk -t1 -c16`, one after the other in this run, and each with one
/// connection for the latency.
async fn scenario_nginx(
    signet: &SignetProc,
    target: &Arc<Target>,
    hit: &Work,
    secs: f64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (status, answer) = target
        .post(&mut target.connect().await?, hit.body.clone())
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK && allowed_of(&answer) == Some(true),
        "the hot image is not allowed"
    );
    let (cert, key) = signet.cert_files();
    let nginx = Nginx::start(&cert, &key, &answer)?;
    let signet_url = format!("https://{}/validate?timeout=10s", signet.webhook);
    let nginx_url = format!("https://127.0.0.1:{}/validate?timeout=10s", nginx.port);
    for c in [16usize, 1] {
        let _ = wrk(&signet_url, &hit.body, c, 1.0)?; // warm-up
        let cpu0 = signet.proc.cpu_secs();
        let s = wrk(&signet_url, &hit.body, c, secs)?;
        let s_cpu = (signet.proc.cpu_secs() - cpu0) * 1e6 / (s.rate * secs).max(1.0);
        let _ = wrk(&nginx_url, &hit.body, c, 1.0)?;
        let cpu0 = nginx.proc.cpu_secs();
        let n = wrk(&nginx_url, &hit.body, c, secs)?;
        let n_cpu = (nginx.proc.cpu_secs() - cpu0) * 1e6 / (n.rate * secs).max(1.0);
        eprintln!("wrk signet c={c}:\n{}\nwrk nginx c={c}:\n{}", s.raw, n.raw);
        report.row(
            &format!("(n) cache hit, 1 image, `wrk -t1 -c{c}`, against nginx `return 200` (same body, same certificate, one worker)"),
            &format!("signet {:.0} reviews/s; p50 {:.3} / p99 {:.3} ms; CPU {s_cpu:.0} µs/review (master process)", s.rate, s.p50, s.p99),
            &format!("nginx {:.0}/s; p50 {:.3} / p99 {:.3} ms; CPU {n_cpu:.0} µs/request (master process only: the worker is a child)", n.rate, n.p50, n.p99),
            &format!("throughput {}", ratio(s.rate, n.rate)),
            if c == 16 { "≥ 0.5× nginx" } else { "p99 ≤ 0.3 ms" },
        );
    }
    Ok(())
}

/// (s) Cache hits while `n` new images are verified at once: one connection of cache hits
/// (closed loop) measured quiet, then during the storm.
async fn scenario_storm(
    registry: &TestRegistry,
    key: &CosignKey,
    signet: &SignetProc,
    target: &Arc<Target>,
    hit: &Arc<Vec<Work>>,
    n: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let images = push_signed(
        registry,
        "bench/storm",
        "s",
        30_000..30_000 + n as u64,
        Some(key),
    )
    .await;
    let storm: Vec<Work> = images
        .iter()
        .map(|i| Work {
            body: body(&pod_with(&i.reference_by_tag(&registry.addr()))),
            expect: Some(true),
        })
        .collect();
    let conns = connect_all(target, n).await?;
    let _ = closed_loop(target, hit, 1, Duration::from_millis(500)).await?;
    let quiet = closed_loop(target, hit, 1, Duration::from_secs(2)).await?;
    let (_, ver0) = signet.counters().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(storm)
        .map(|(mut send, w)| {
            let (target, barrier) = (target.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                barrier.wait().await;
                send_one(&target, &mut send, &w, Instant::now(), &mut stats).await;
                stats
            })
        })
        .collect();
    barrier.wait().await;
    let start = Instant::now();
    let hits = {
        let target = target.clone();
        let hit = hit.clone();
        tokio::spawn(async move {
            // Hits for as long as the storm lasts (at least its first 200 ms).
            let mut all = Stats::empty();
            let mut send = target.connect().await?;
            while all.ok < 100_000 {
                send_one(&target, &mut send, &hit[0], Instant::now(), &mut all).await;
                if STORM_DONE.load(Ordering::Relaxed)
                    && start.elapsed() > Duration::from_millis(200)
                {
                    break;
                }
            }
            all.elapsed = start.elapsed();
            anyhow::Ok(all)
        })
    };
    let mut storm_stats = Stats::empty();
    for t in tasks {
        storm_stats.merge(&t.await?);
    }
    storm_stats.elapsed = start.elapsed();
    STORM_DONE.store(true, Ordering::Relaxed);
    let during = hits.await??;
    STORM_DONE.store(false, Ordering::Relaxed);
    let (_, ver1) = signet.counters().await;
    report.row(
        &format!("(s) cache hits, one connection, while {n} new images are verified at once"),
        &format!(
            "during: {} hits; p50 {:.3} / p99 {:.3} / max {:.3} ms; the storm: {:.0} verifications, all {n} answered in {:.0} ms ({} wrong, {} errors)",
            during.ok,
            during.ms(0.5),
            during.ms(0.99),
            during.ms(1.0),
            ver1 - ver0,
            storm_stats.elapsed.as_secs_f64() * 1e3,
            storm_stats.wrong,
            storm_stats.errors
        ),
        &format!("quiet, just before: p50 {:.3} / p99 {:.3} ms", quiet.ms(0.5), quiet.ms(0.99)),
        &format!("p99 {}", ratio(during.ms(0.99), quiet.ms(0.99))),
        "p99 within 2× quiet",
    );
    Ok(())
}

static STORM_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// (h) The first TLS handshake (and review) after `signet serve` starts, against the ones
/// after it: `restarts` fresh processes, each timed on its first three connections.
async fn scenario_first_handshake<F, Fut>(
    start: F,
    restarts: usize,
    report: &mut Report,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<SignetProc>>,
{
    let mut first = Vec::new();
    let mut later = Vec::new();
    let mut warmed = Vec::new();
    for _ in 0..restarts {
        let signet = start().await?;
        let target = signet.target()?;
        for i in 0..3 {
            let t0 = Instant::now();
            let send = target.connect().await?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            drop(send);
            if i == 0 {
                first.push(ms)
            } else {
                later.push(ms)
            }
        }
        if let Some(line) = signet.log().lines().find(|l| l.contains("TLS warmed up")) {
            warmed.push(
                line.split("TLS warmed up")
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
            );
        }
    }
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max = |v: &[f64]| v.iter().copied().fold(0.0f64, f64::max);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    report.row(
        &format!("(h) first TLS connection (TCP + TLS + HTTP/1.1 handshake) after `signet serve` starts, {restarts} restarts"),
        &format!("first: {} ms (median {:.2}); start-up warm-up as logged: {}", fmt(&first), median(&first), warmed.join(" | ")),
        &format!("2nd and 3rd connections: {} ms (median {:.2})", fmt(&later), median(&later)),
        &format!("first/later medians {}; worst first {:.2} ms", ratio(median(&first), median(&later)), max(&first)),
        "the first as fast as the rest",
    );
    Ok(())
}

/// Everything the scenarios share: the registry and its proxies, the signed images of the
/// cache hits, the signet under test, the echo server and the limits measured in this run.
struct World {
    args: Args,
    secs: Duration,
    pods: usize,
    verdicts: u64,
    key: CosignKey,
    other_key: CosignKey,
    registry: TestRegistry,
    counted: Proxy,
    throttled: Proxy,
    synthetic: String,
    notation: Option<NotationWorld>,
    policies: String,
    insecure: Vec<String>,
    hot_refs: Vec<String>,
    signet: SignetProc,
    idle_rss: u64,
    target: Arc<Target>,
    echo_proc: Proc,
    echo: Arc<Target>,
    _echo_dir: tempfile::TempDir,
    /// The one-image cache hit, for signet and (any answer) for the echo server.
    hit1: Arc<Vec<Work>>,
    echo_work: Arc<Vec<Work>>,
    limits: Option<Limits>,
    /// The replay's images, pushed once for (f) and (r).
    replay_pool: Option<ReplayPool>,
}

impl World {
    /// Starts the registry, its proxies, the synthetic registry, the Notation world when (c)
    /// needs it, signet and the echo server; pushes the hot images; measures the limits.
    async fn start(
        args: Args,
        wants: &dyn Fn(&str) -> bool,
        report: &mut Report,
    ) -> anyhow::Result<World> {
        let secs = Duration::from_secs_f64(if args.quick { 1.0 } else { args.secs });
        let (pods, verdicts) = if args.quick {
            (args.pods.min(10), args.verdicts.min(5_000))
        } else {
            (args.pods, args.verdicts)
        };
        let key = CosignKey::p256();
        let other_key = CosignKey::generate(KeyKind::P256);
        let registry = TestRegistry::start();
        let counted = start_proxy(registry.base_url(), 0).await?;
        let throttled = start_proxy(registry.base_url(), args.throttle_per_mille).await?;
        let synthetic = start_synthetic_registry(key.clone()).await?;
        let notation = if wants("c") && args.cold_kinds.iter().any(|k| k.notation().is_some()) {
            Some(NotationWorld::start(if args.quick { 200 } else { 2000 }).await?)
        } else {
            None
        };
        let (policies, insecure) = policies_for(
            &key,
            &[&registry.addr(), &counted.host, &throttled.host, &synthetic],
            notation.as_ref(),
            report,
        );
        // The cache-hit images: one, and ten for the 10-container pod.
        let hot = push_signed(&registry, "bench/hot", "v", 0..10, Some(&key)).await;
        let hot_refs: Vec<String> = hot
            .iter()
            .map(|i| i.reference_by_tag(&registry.addr()))
            .collect();
        let signet = SignetProc::start(
            &args.signet,
            &policies,
            &insecure,
            args.signet_log.as_deref(),
            args.signet_prefix.as_deref(),
            &[],
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = signet.proc.rss_kib();
        report.row(
            "(g) memory, idle",
            &format!(
                "RSS {} (`signet serve`, policies loaded, no review yet)",
                mib(idle_rss)
            ),
            "-",
            "-",
            "≤ 64 MiB",
        );
        let target = signet.target()?;
        let (echo_proc, echo, echo_dir) = start_echo().await?;
        let hit1 = Arc::new(vec![Work {
            body: body(&pod_with(&hot_refs[0])),
            expect: Some(true),
        }]);
        let echo_work = Arc::new(vec![Work {
            body: hit1[0].body.clone(),
            expect: None,
        }]);
        let limits = if wants("limits") || wants("a") || wants("c") {
            Some(measure_limits(&registry, &hot[0], args.quick, report).await?)
        } else {
            None
        };
        Ok(World {
            args,
            secs,
            pods,
            verdicts,
            key,
            other_key,
            registry,
            counted,
            throttled,
            synthetic,
            notation,
            policies,
            insecure,
            hot_refs,
            signet,
            idle_rss,
            target,
            echo_proc,
            echo,
            _echo_dir: echo_dir,
            hit1,
            echo_work,
            limits,
            replay_pool: None,
        })
    }

    /// A fresh `signet serve` with the same policies (the first-handshake and two-replica
    /// scenarios).
    async fn start_signet(&self) -> anyhow::Result<SignetProc> {
        SignetProc::start(
            &self.args.signet,
            &self.policies,
            &self.insecure,
            self.args.signet_log.as_deref(),
            None,
            &[],
        )
        .await
    }
}

/// One Cosign P-256 policy per Cosign host (named `direct`, `counted`, `throttled`,
/// `synthetic`), and the Notation world's two when it is up (reporting the in-process verify
/// limits); returns the policies (YAML documents) and the hosts signet reaches over plain HTTP.
fn policies_for(
    key: &CosignKey,
    cosign_hosts: &[&String; 4],
    notation: Option<&NotationWorld>,
    report: &mut Report,
) -> (String, Vec<String>) {
    let pem = key.public_key_pem();
    let names = ["direct", "counted", "throttled", "synthetic"];
    let mut policies = names
        .iter()
        .zip(cosign_hosts)
        .map(|(name, host)| cosign_policy(name, &format!("{host}/**"), "enforce", "deny", &pem))
        .collect::<Vec<_>>();
    let mut insecure: Vec<String> = cosign_hosts.iter().map(|h| (*h).clone()).collect();
    // The Notation kinds of (c) get a registry (and counting proxy) of their own: a policy covers
    // a whole host, and every policy matching an image must pass, so sharing the Cosign hosts
    // would ask the Cosign images for Notation signatures too.
    if let Some(w) = notation {
        for format in [Format::Jws, Format::Cose] {
            report.row(
                &format!(
                    "limit: Notation {} verify in-process (`signet::verify::notation::verify`; ES256 leaf, root → intermediate → leaf; no revocation URLs)",
                    format.name().to_uppercase()
                ),
                &format!("{:.1} µs", w.verify_us(format)),
                "-",
                "-",
                "-",
            );
        }
        for (name, host) in w.hosts() {
            policies.push(w.policy(name, &host));
            insecure.push(host);
        }
    }
    (policies.join("---\n"), insecure)
}

/// The limits: P-256, P-384 and RSA-PSS verifications, the decode, one registry round trip.
async fn measure_limits(
    registry: &TestRegistry,
    image: &PushedImage,
    quick: bool,
    report: &mut Report,
) -> anyhow::Result<Limits> {
    let n = if quick { 200 } else { 2000 };
    let (p256_us, p384_us, rsa_pss_us, decode_us) = crypto_and_decode_limits(n)?;
    for (what, us) in [
        ("limit: ECDSA P-256 verify (aws-lc-rs)", p256_us),
        (
            "limit: ECDSA P-384 verify (aws-lc-rs; the test Notation root's algorithm)",
            p384_us,
        ),
        ("limit: RSA-PSS-2048 verify (aws-lc-rs)", rsa_pss_us),
        ("limit: AdmissionReview decode (pod-create.json)", decode_us),
    ] {
        report.row(what, &format!("{us:.1} µs"), "-", "-", "-");
    }
    let registry_rtt = registry_rtt(registry, image, if quick { 100 } else { 1000 }).await;
    report.row(
        "limit: loopback docker-registry round trip (HEAD manifest, keep-alive)",
        &registry_rtt.latency(),
        "-",
        "-",
        "-",
    );
    Ok(Limits {
        p256_us,
        decode_us,
        registry_rtt,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let only: Vec<String> = args.only.split(',').map(|s| s.trim().to_owned()).collect();
    let wants = |s: &str| only.iter().any(|o| o == s);
    let mut report = Report { rows: Vec::new() };
    eprintln!(
        "setting up: docker-registry, proxies, signed images (load {})",
        load()
    );
    let mut w = World::start(args, &wants, &mut report).await?;
    let quick = w.args.quick;
    if wants("a") {
        scenario_cache_hit(&w, &mut report).await?;
    }
    if wants("b") {
        scenario_ten_images(&w, &mut report).await?;
    }
    if wants("p") {
        scenario_http2(&w, &mut report).await?;
    }
    if wants("c") {
        scenario_cold(&mut w, &mut report).await?;
    }
    if wants("e") {
        scenario_burst(&w, if quick { 100 } else { 1000 }, &mut report).await?;
    }
    if wants("n") {
        let secs = if quick { 2.0 } else { w.args.secs };
        scenario_nginx(&w.signet, &w.target, &w.hit1[0], secs, &mut report).await?;
    }
    if wants("s") {
        let n = if quick { 20 } else { w.args.storm };
        let (registry, key, signet) = (&w.registry, &w.key, &w.signet);
        scenario_storm(registry, key, signet, &w.target, &w.hit1, n, &mut report).await?;
    }
    if wants("h") {
        let restarts = if quick { 2 } else { w.args.restarts };
        scenario_first_handshake(|| w.start_signet(), restarts, &mut report).await?;
    }
    if wants("f") {
        scenario_replay(&mut w, &mut report).await?;
    }
    if wants("r") {
        scenario_two_replicas(&mut w, &mut report).await?;
    }
    if wants("g") {
        scenario_memory(&w, &mut report).await?;
    }
    if wants("soak") {
        scenario_soak(&w, &mut report).await?;
    }
    report.row(
        "(d') Cosign keyless",
        "not measured here: single cold reviews in the integration tests (bench/README.md)",
        "-",
        "-",
        "-",
    );
    let World {
        args, echo_proc, ..
    } = w;
    drop(echo_proc);
    report.print(&args);
    Ok(())
}

/// (a) Cache hit, 1 image: closed loops at c = 1, 16, 64 and open loops at 25, 50 and 80 % of
/// the best closed-loop rate, each next to the echo server.
async fn scenario_cache_hit(w: &World, report: &mut Report) -> anyhow::Result<()> {
    let (signet, target, hit1, secs) = (&w.signet, &w.target, &w.hit1, w.secs);
    let (echo, echo_work) = (&w.echo, &w.echo_work);
    let warm = signet
        .target()?
        .post(&mut target.connect().await?, hit1[0].body.clone())
        .await?;
    anyhow::ensure!(
        allowed_of(&warm.1) == Some(true),
        "the hot image is not allowed: {:?}",
        warm.1
    );
    let (reg0, _) = signet.counters().await;
    let mut best = 0.0f64;
    for c in [1usize, 16, 64] {
        let _ = closed_loop(target, hit1, c, secs / 5).await?; // warm-up
        let (s, s_cpu) = with_cpu(&signet.proc, closed_loop(target, hit1, c, secs)).await?;
        let (e, e_cpu) = with_cpu(&w.echo_proc, closed_loop(echo, echo_work, c, secs)).await?;
        best = best.max(s.rate());
        report.row(
            &format!("(a) cache hit, 1 image, closed loop c={c}"),
            &format!("{}; signet CPU {s_cpu:.0} µs/review", s.summary()),
            &format!("echo: {}; echo CPU {e_cpu:.0} µs/review", e.summary()),
            &format!(
                "throughput {}, p50 {}, CPU/review {}",
                ratio(s.rate(), e.rate()),
                ratio(s.ms(0.5), e.ms(0.5)),
                ratio(s_cpu, e_cpu)
            ),
            "≥ 10,000/s; p99 ≤ 1 ms",
        );
    }
    for frac in [0.25, 0.5, 0.8] {
        let rate = (best * frac).max(50.0).round();
        let s = open_loop(target, hit1, rate, 64, secs).await?;
        let e = open_loop(echo, echo_work, rate, 64, secs).await?;
        report.row(
            &format!(
                "(a) cache hit, 1 image, open loop {rate:.0}/s ({:.0}% of max)",
                frac * 100.0
            ),
            &s.summary(),
            &format!("echo: {}", e.summary()),
            &format!("p99 {}", ratio(s.ms(0.99), e.ms(0.99))),
            "p99 ≤ 1 ms",
        );
    }
    let (reg1, _) = signet.counters().await;
    report.row(
        "(a) registry requests during all cache-hit runs",
        &format!(
            "{:.0} (tag→digest cache TTL 30 s: re-resolves only)",
            reg1 - reg0
        ),
        "-",
        "-",
        "-",
    );
    if let Some(l) = &w.limits {
        report.row(
            "(a) decode share of a cache hit",
            &format!("{:.1} µs decode", l.decode_us),
            "-",
            "-",
            "-",
        );
    }
    Ok(())
}

/// (b) Cache hit, a pod of 10 images: closed loops at c = 1 and 64, next to the echo server.
async fn scenario_ten_images(w: &World, report: &mut Report) -> anyhow::Result<()> {
    let (signet, target, secs) = (&w.signet, &w.target, w.secs);
    let ten = Arc::new(vec![Work {
        body: body(&pod_with_images(&w.hot_refs)),
        expect: Some(true),
    }]);
    let ten_echo = Arc::new(vec![Work {
        body: ten[0].body.clone(),
        expect: None,
    }]);
    let _ = closed_loop(target, &ten, 4, secs / 5).await?;
    for c in [1usize, 64] {
        let (s, s_cpu) = with_cpu(&signet.proc, closed_loop(target, &ten, c, secs)).await?;
        let (e, e_cpu) = with_cpu(&w.echo_proc, closed_loop(&w.echo, &ten_echo, c, secs)).await?;
        report.row(
            &format!("(b) cache hit, 10 images, closed loop c={c}"),
            &format!(
                "{}; {:.0} images/s; signet CPU {s_cpu:.0} µs/review",
                s.summary(),
                s.rate() * 10.0
            ),
            &format!("echo: {}; echo CPU {e_cpu:.0} µs/review", e.summary()),
            &format!(
                "throughput {}, p50 {}, CPU/review {}",
                ratio(s.rate(), e.rate()),
                ratio(s.ms(0.5), e.ms(0.5)),
                ratio(s_cpu, e_cpu)
            ),
            "p99 ≤ 1 ms",
        );
    }
    Ok(())
}

/// (c) Cold verification: every review a new signed image, for each way of signing; each kind
/// reviewed directly and through the counting proxy, next to its floor.
async fn scenario_cold(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
    let quick = w.args.quick;
    let n = if quick { 20 } else { 100 };
    let mut responder_rtt: Option<Stats> = None;
    // Every kind's images first, then the reviews: pushing (hundreds of uploads) right
    // before a kind's reviews would load the registry and the cores for that kind only.
    let mut pushed = Vec::new();
    for kind in w.args.cold_kinds.clone() {
        let images = push_cold(w, kind, n).await?;
        pushed.push((kind, images));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let w = &*w;
    for (kind, (direct, via_proxy)) in pushed {
        let world = w.notation.as_ref().filter(|_| kind.notation().is_some());
        let (direct_host, proxy) = match world {
            Some(nw) => (nw.registry.addr(), &nw.counted),
            None => (w.registry.addr(), &w.counted),
        };
        for (label, images, host, proxy) in [
            ("direct", &direct, direct_host, None),
            (
                "through the counting proxy",
                &via_proxy,
                proxy.host.clone(),
                Some(proxy),
            ),
        ] {
            let refs: Vec<String> = images.iter().map(|i| i.reference_by_tag(&host)).collect();
            let hand = ByHand::new(format!("http://{host}"), kind.notation().is_some())?;
            let responder = world.map(|w| &w.responder);
            let by_hand = (&hand, images.as_slice());
            let cold = cold_run(&w.signet, &w.target, &refs, proxy, responder, by_hand).await?;
            let ocsp = matches!(
                kind,
                ColdKind::NotationJwsOcsp | ColdKind::NotationJwsOcspShared
            );
            if ocsp && responder_rtt.is_none() {
                responder_rtt = match world {
                    Some(nw) => nw.responder_rtt(if quick { 20 } else { 100 }).await,
                    None => None,
                };
            }
            let (limit, r) = cold_floor(
                w.limits.as_ref(),
                kind,
                world,
                responder_rtt.as_ref(),
                &cold,
            );
            report.row(
                &format!(
                    "(c) cold verification, {}, {} new images, sequential, {label}",
                    kind.label(),
                    refs.len()
                ),
                &cold.figure(),
                &limit,
                &r,
                "≤ 4 registry requests/image; p50 ≤ 1.5× the floor",
            );
        }
    }
    Ok(())
}

/// Pushes (c)'s images of one kind: `n` reviewed directly and `n / 2` through the proxy.
/// Seeds (image contents) are distinct per kind: verdicts are cached by digest and policy.
async fn push_cold(
    w: &mut World,
    kind: ColdKind,
    n: u64,
) -> anyhow::Result<(Vec<PushedImage>, Vec<PushedImage>)> {
    Ok(match (kind.notation(), w.notation.as_mut()) {
        (None, _) => (
            push_signed(&w.registry, "bench/cold", "c", 1000..1000 + n, Some(&w.key)).await,
            push_signed(
                &w.registry,
                "bench/coldp",
                "c",
                2000..2000 + n / 2,
                Some(&w.key),
            )
            .await,
        ),
        (Some(_), Some(nw)) => {
            let base =
                100_000 + 1_000 * ColdKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u64;
            let repo = format!("bench/{}", kind.slug());
            (
                nw.push(kind, &repo, base..base + n).await,
                nw.push(kind, &format!("{repo}-p"), base + 500..base + 500 + n / 2)
                    .await,
            )
        }
        (Some(_), None) => bail!("no Notation registry was set up for {kind}"),
    })
}

/// The floor of one cold review of `kind` and signet's ratios to it (the limit and ratio
/// columns of (c)): the registry requests of one cold image made by hand (`sequence`, same
/// images, same host) + the verification + the decode, all measured in this run.
fn cold_floor(
    limits: Option<&Limits>,
    kind: ColdKind,
    world: Option<&NotationWorld>,
    responder_rtt: Option<&Stats>,
    cold: &Cold,
) -> (String, String) {
    let sequence = &cold.sequence;
    let Some(l) = limits else {
        return ("-".into(), "-".into());
    };
    let (requests, verify_us, verify) = match (kind.notation(), world) {
        (None, _) => (3.0, l.p256_us, "P-256 verify".to_owned()),
        (Some(format), Some(w)) => (
            4.0,
            w.verify_us(format),
            format!(
                "Notation {} verify (in-process)",
                format.name().to_uppercase()
            ),
        ),
        (Some(_), None) => return ("-".into(), "-".into()),
    };
    let mut floor_ms = sequence.ms(0.5) + verify_us / 1e3 + l.decode_us / 1e3;
    let mut what = format!(
        "{requests:.0} registry requests by hand (the same images and host, each image's next to its review; one keep-alive connection; p50 {:.3} / p99 {:.3} / mean {:.3} ms) + {verify} {verify_us:.0} µs + decode {:.0} µs",
        sequence.ms(0.5),
        sequence.ms(0.99),
        sequence.hist.mean() / 1e6,
        l.decode_us
    );
    if let (ColdKind::NotationJwsOcsp, Some(rtt)) = (kind, responder_rtt) {
        floor_ms += rtt.ms(0.5);
        what.push_str(&format!(
            " + 1 OCSP round trip (the responder's own p50 {:.3} / p99 {:.3} ms: a new connection and one `openssl ocsp` run per request)",
            rtt.ms(0.5),
            rtt.ms(0.99)
        ));
    }
    let estimate = l.registry_rtt.ms(0.5) * requests + verify_us / 1e3 + l.decode_us / 1e3;
    let r = cold.stats.ms(0.5) / floor_ms.max(1e-9);
    let mut ratios = format!(
        "**p50 {r:.2}× the floor** ({}; target ≤ 1.5×); p99 {}",
        if r <= 1.5 {
            "met".to_owned()
        } else {
            format!("missed by {:.0} %", (r / 1.5 - 1.0) * 100.0)
        },
        ratio(cold.stats.ms(0.99), floor_ms)
    );
    if let Some(max) = cold.max_after_first() {
        ratios.push_str(&format!(
            "; **most requests for one image after the first: {max}** (target ≤ 4: {})",
            if max <= 4 { "met" } else { "missed" }
        ));
    }
    (
        format!(
            "{what} = **{floor_ms:.3} ms** (estimate from {requests:.0} × the HEAD round trip's p50: {estimate:.3} ms)"
        ),
        ratios,
    )
}

/// The registry requests of one cold review, made by hand on one keep-alive connection to
/// `base` (a registry or the counting proxy) and timed: Cosign: HEAD the tag, GET the `.sig`
/// manifest, GET the payload blob; Notation: HEAD the tag, GET the referrers tag schema's
/// index, GET the signature manifest, GET the envelope blob.
struct ByHand {
    client: reqwest::Client,
    base: String,
    notation: bool,
}

impl ByHand {
    fn new(base: String, notation: bool) -> anyhow::Result<ByHand> {
        Ok(ByHand {
            client: reqwest::Client::builder().no_proxy().build()?,
            base,
            notation,
        })
    }

    /// One request; the `Docker-Content-Digest` header and the body.
    async fn get(&self, url: String, head: bool) -> anyhow::Result<(Option<String>, Bytes)> {
        let req = if head {
            self.client.head(&url)
        } else {
            self.client.get(&url)
        };
        let resp = req
            .header("accept", support::oci::MANIFEST_ACCEPT)
            .send()
            .await?
            .error_for_status()?;
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((digest, resp.bytes().await?))
    }

    /// The requests a cold review of `img` needs, one after another; how long they took.
    async fn one(&self, img: &PushedImage) -> anyhow::Result<Duration> {
        let repo = format!("{}/v2/{}", self.base, img.repo);
        let t0 = Instant::now();
        let tag = img.tag.as_deref().context("an image without a tag")?;
        let (digest, _) = self.get(format!("{repo}/manifests/{tag}"), true).await?;
        let digest = digest.context("no Docker-Content-Digest")?;
        let hex = digest.trim_start_matches("sha256:");
        let manifest: Value = if self.notation {
            let (_, index) = self
                .get(format!("{repo}/manifests/sha256-{hex}"), false)
                .await?;
            let index: Value = serde_json::from_slice(&index)?;
            let sig = index["manifests"]
                .as_array()
                .and_then(|m| {
                    m.iter()
                        .find(|d| d["artifactType"] == support::notary::SIGNATURE_ARTIFACT_TYPE)
                })
                .and_then(|d| d["digest"].as_str())
                .context("no Notation signature in the referrers index")?
                .to_owned();
            serde_json::from_slice(&self.get(format!("{repo}/manifests/{sig}"), false).await?.1)?
        } else {
            let sig = format!("{repo}/manifests/sha256-{hex}.sig");
            serde_json::from_slice(&self.get(sig, false).await?.1)?
        };
        let blob = manifest["layers"][0]["digest"]
            .as_str()
            .context("a signature manifest without a layer")?;
        let _ = self.get(format!("{repo}/blobs/{blob}"), false).await?;
        Ok(t0.elapsed())
    }
}

/// Sends every review of `reviews` at once, each on a connection of its own (made first),
/// released together; returns their stats.
async fn all_at_once(target: &Arc<Target>, reviews: Vec<Work>) -> anyhow::Result<Stats> {
    let n = reviews.len();
    let conns = connect_all(target, n).await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(reviews)
        .map(|(mut send, w)| {
            let (target, barrier) = (target.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                barrier.wait().await;
                send_one(&target, &mut send, &w, Instant::now(), &mut stats).await;
                stats
            })
        })
        .collect();
    let mut stats = Stats::empty();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// (e) Burst: `n` simultaneous reviews of one new image (through the counting proxy).
async fn scenario_burst(w: &World, n: usize, report: &mut Report) -> anyhow::Result<()> {
    let (signet, counted) = (&w.signet, &w.counted);
    let img = push_signed(&w.registry, "bench/burst", "b", 5000..5001, Some(&w.key)).await;
    let review = Work {
        body: body(&pod_with(&img[0].reference_by_tag(&counted.host))),
        expect: Some(true),
    };
    let (reg0, ver0) = signet.counters().await;
    let seen0 = counted.total();
    let stats = all_at_once(&w.target, vec![review; n]).await?;
    let (reg1, ver1) = signet.counters().await;
    report.row(
        &format!("(e) burst: {n} simultaneous reviews of one new image"),
        &format!(
            "{} verification(s), {:.0} registry requests (signet), {} seen by the registry; all answered in {:.0} ms; {}",
            ver1 - ver0,
            reg1 - reg0,
            counted.total() - seen0,
            stats.elapsed.as_secs_f64() * 1e3,
            stats.summary()
        ),
        "-",
        "-",
        "exactly 1 verification",
    );
    Ok(())
}

/// The replay's images: a pool, 90 % signed by the trusted key, 5 % by another key, 5 %
/// unsigned, each with 5 referrers (SBOMs, scans, provenance).
struct ReplayPool {
    images: Vec<PushedImage>,
    trusted: Vec<bool>,
}

impl ReplayPool {
    async fn push(w: &World, pool: u64) -> ReplayPool {
        eprintln!(
            "(f) pushing {pool} images with 5 referrers each (load {})",
            load()
        );
        let mut images = Vec::new();
        let mut trusted = Vec::new();
        for i in 0..pool {
            let signer = match i % 20 {
                0 => None,
                1 => Some(&w.other_key),
                _ => Some(&w.key),
            };
            let img = push_signed(
                &w.registry,
                "bench/replay",
                "r",
                10_000 + i..10_001 + i,
                signer,
            )
            .await
            .remove(0);
            images.push(img);
            trusted.push(i % 20 >= 2);
        }
        let pusher = w.registry.pusher();
        for img in &images {
            for (k, artifact) in [
                "application/spdx+json",
                "application/vnd.cyclonedx+json",
                "application/sarif+json",
                "application/vnd.in-toto+json",
                "application/vnd.example.provenance+json",
            ]
            .into_iter()
            .enumerate()
            {
                pusher
                    .push_referrer(
                        "bench/replay",
                        img,
                        artifact,
                        support::oci::OCI_EMPTY,
                        vec![(
                            artifact,
                            format!("{} {k}", img.digest).into_bytes(),
                            Default::default(),
                        )],
                        Default::default(),
                    )
                    .await;
            }
        }
        ReplayPool { images, trusted }
    }

    /// `pods` reviews, each of a pod of 10 distinct images of the pool (a fixed sequence),
    /// reached through `host`; a pod is expected allowed when all its images are trusted. Also
    /// returns how many of the pool's images the pods name.
    fn pods(&self, pods: usize, host: &str) -> (Vec<Work>, usize) {
        let pool = self.images.len() as u64;
        let mut work = Vec::new();
        let mut used = std::collections::HashSet::new();
        let mut x: u64 = 42;
        for _ in 0..pods {
            let mut picked: Vec<usize> = Vec::new();
            while picked.len() < 10 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = ((x >> 33) % pool) as usize;
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            used.extend(picked.iter().copied());
            let refs: Vec<String> = picked
                .iter()
                .map(|&i| self.images[i].reference_by_tag(host))
                .collect();
            work.push(Work {
                body: body(&pod_with_images(&refs)),
                expect: Some(picked.iter().all(|&i| self.trusted[i])),
            });
        }
        (work, used.len())
    }
}

/// Pushes the replay's pool on first use (`--pool`, by default 2 images per pod, at least 20).
async fn ensure_replay_pool(w: &mut World) {
    if w.replay_pool.is_none() {
        let pool = w.args.pool.unwrap_or((w.pods * 2).max(20)) as u64;
        w.replay_pool = Some(ReplayPool::push(w, pool).await);
    }
}

/// Sends `work` in order over `conc` connections, one review in flight on each.
async fn drive(target: &Arc<Target>, work: Vec<Work>, conc: usize) -> anyhow::Result<Stats> {
    let work = Arc::new(work);
    let conns = connect_all(target, conc).await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut send| {
            let (target, work, next) = (target.clone(), work.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(w) = work.get(k) else { break };
                    send_one(&target, &mut send, w, Instant::now(), &mut stats).await;
                }
                stats
            })
        })
        .collect();
    let mut stats = Stats::empty();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// (f) A replay shaped like Ratify's scale test: pods × 10 images × 5 referrers, with a
/// fraction of registry requests answered 429; 20 reviews in flight, like an API server
/// handling a rollout.
async fn scenario_replay(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
    let pods = w.pods;
    ensure_replay_pool(w).await;
    let replay = w.replay_pool.as_ref().context("the replay pool")?;
    let pool = replay.images.len();
    let (work, _) = replay.pods(pods, &w.throttled.host);
    let (signet, throttled) = (&w.signet, &w.throttled);
    let expected_allowed = work.iter().filter(|w| w.expect == Some(true)).count();
    let (reg0, ver0) = signet.counters().await;
    let cpu0 = signet.proc.cpu_secs();
    let (seen0, thr0) = (throttled.total(), throttled.throttled());
    let stats = drive(&w.target, work, 20.min(pods)).await?;
    let (reg1, ver1) = signet.counters().await;
    let cpu = signet.proc.cpu_secs() - cpu0;
    report.row(
        "(f) replay: run time, cost per unique image, signet's peak RSS and CPU",
        &format!(
            "{:.1} s for {pods} pods; {:.2} registry requests and {:.2} verifications per unique image ({pool} images); peak RSS (VmHWM) {}; signet CPU {cpu:.1} s",
            stats.elapsed.as_secs_f64(),
            (reg1 - reg0) / pool as f64,
            (ver1 - ver0) / pool as f64,
            mib(signet.proc.peak_rss_kib())
        ),
        "-",
        "-",
        "0 timeouts, 0 wrong verdicts",
    );
    report.row(
        &format!(
            "(f) replay: {pods} pods × 10 images (pool of {pool}: 90% trusted, 5% other key, 5% unsigned) × 5 referrers, {:.0}% of registry requests 429 (Retry-After: 1)",
            w.args.throttle_per_mille as f64 / 10.0
        ),
        &format!(
            "{} timeouts, {} wrong verdicts ({} wrongly allowed; {expected_allowed} pods expected allowed); {}; {:.0} verifications, {:.0} registry requests (signet), {} seen by the proxy of which {} answered 429",
            stats.errors,
            stats.wrong,
            stats.wrongly_allowed,
            stats.summary(),
            ver1 - ver0,
            reg1 - reg0,
            throttled.total() - seen0,
            throttled.throttled() - thr0
        ),
        "-",
        "-",
        "0 timeouts, 0 wrong verdicts",
    );
    Ok(())
}

/// (g) Memory with `--verdicts` cached verdicts, from the synthetic registry.
async fn scenario_memory(w: &World, report: &mut Report) -> anyhow::Result<()> {
    let (signet, target, verdicts) = (&w.signet, &w.target, w.verdicts);
    let reviews = verdicts.div_ceil(10);
    eprintln!(
        "(g) filling the verdict cache: {reviews} reviews of 10 new images (load {})",
        load()
    );
    let (_, ver0) = signet.counters().await;
    let next = Arc::new(AtomicU64::new(0));
    let conns = connect_all(target, 16).await?;
    let start = Instant::now();
    let synthetic = Arc::new(w.synthetic.clone());
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut send| {
            let (target, next, synthetic) = (target.clone(), next.clone(), synthetic.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= reviews {
                        break;
                    }
                    let refs: Vec<String> = (0..10)
                        .map(|j| format!("{synthetic}/fill/app:m{}", k * 10 + j))
                        .collect();
                    let w = Work {
                        body: body(&pod_with_images(&refs)),
                        expect: Some(true),
                    };
                    send_one(&target, &mut send, &w, Instant::now(), &mut stats).await;
                }
                stats
            })
        })
        .collect();
    let mut stats = Stats::empty();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.elapsed = start.elapsed();
    let (_, ver1) = signet.counters().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = signet.proc.rss_kib();
    let idle_rss = w.idle_rss;
    report.row(
        &format!("(g) memory with {verdicts} cached verdicts"),
        &format!(
            "RSS {} (+{} over idle; {:.0} verifications, {:.0} bytes/verdict incl. its digest-cache entry); filled in {:.1} s at {:.0} images/s, {} errors, {} wrong",
            mib(rss),
            mib(rss.saturating_sub(idle_rss)),
            ver1 - ver0,
            (rss.saturating_sub(idle_rss) as f64 * 1024.0) / (ver1 - ver0).max(1.0),
            stats.elapsed.as_secs_f64(),
            stats.ok as f64 * 10.0 / stats.elapsed.as_secs_f64(),
            stats.errors,
            stats.wrong
        ),
        "-",
        "-",
        "≤ 256 MiB",
    );
    Ok(())
}

/// The soak: normal reviews while hostile peers hold connections, headers, bodies, streams.
async fn scenario_soak(w: &World, report: &mut Report) -> anyhow::Result<()> {
    let args = &w.args;
    let world = soak::World {
        bin: &args.signet,
        signet_log: args.signet_log.as_deref(),
        registry: &w.registry,
        key: &w.key,
        policies: &w.policies,
        insecure: &w.insecure,
    };
    let cfg = soak::Soak {
        secs: if args.quick { 10.0 } else { args.soak_secs },
        idle: if args.quick {
            args.soak_idle.min(500)
        } else {
            args.soak_idle
        },
        rate: args.soak_rate,
        slowloris: args.soak_slowloris,
        stalled: args.soak_stalled,
        h2_connections: args.soak_h2,
    };
    soak::soak(world, cfg, report).await
}

/// `conns` connections to `target`, each shared by `streams` workers when it speaks HTTP/2
/// (one review in flight per worker: `conns × streams` at once).
async fn slots(target: &Arc<Target>, conns: usize, streams: usize) -> anyhow::Result<Vec<Conn>> {
    let mut out = Vec::with_capacity(conns * streams);
    for conn in connect_all(target, conns).await? {
        match conn {
            Conn::H2(send) => out.extend((0..streams).map(|_| Conn::H2(send.clone()))),
            h1 => out.push(h1),
        }
    }
    Ok(out)
}

/// A closed loop on `conns × streams` slots, four times for `secs / 2` each in the order
/// `first, second, second, first` (so that a drift in the machine's load falls on both), with
/// the CPU signet spent per review; returns the merged stats of each.
async fn paired(
    proc: &Proc,
    work: &Arc<Vec<Work>>,
    first: (&Arc<Target>, usize, usize),
    second: (&Arc<Target>, usize, usize),
    secs: Duration,
) -> anyhow::Result<[(Stats, f64); 2]> {
    let mut out = [(Stats::empty(), 0.0), (Stats::empty(), 0.0)];
    for which in [0usize, 1, 1, 0] {
        let (target, conns, streams) = if which == 0 { first } else { second };
        let made = slots(target, conns, streams).await?;
        let cpu0 = proc.cpu_secs();
        let s = closed_loop_on(target, work, made, secs / 2).await?;
        out[which].1 += proc.cpu_secs() - cpu0;
        out[which].0.merge(&s);
        out[which].0.elapsed += s.elapsed;
    }
    for (s, cpu) in &mut out {
        *cpu = *cpu * 1e6 / (s.ok.max(1) as f64);
    }
    Ok(out)
}

/// (p) The cache hit over HTTP/2 (ALPN `h2`, what an API server's client negotiates when the
/// webhook offers it) against HTTP/1.1 in the same run: like for like (N connections, one
/// review in flight on each), then the API-server-like shape (one or two connections, many
/// concurrent streams) against N HTTP/1.1 connections.
async fn scenario_http2(w: &World, report: &mut Report) -> anyhow::Result<()> {
    let (signet, h1, hit1, secs) = (&w.signet, &w.target, &w.hit1, w.secs);
    let h2 = Arc::new(h1.http2());
    let (echo1, echo2) = (&w.echo, Arc::new(w.echo.http2()));
    let (status, answer) = h2
        .post(&mut h2.connect().await?, hit1[0].body.clone())
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK && allowed_of(&answer) == Some(true),
        "the hot image is not allowed over HTTP/2"
    );
    for (conns, streams) in [
        (1usize, 1usize),
        (16, 1),
        (64, 1),
        (1, 16),
        (1, 32),
        (2, 32),
    ] {
        let n = conns * streams;
        let _ = closed_loop_on(&h2, hit1, slots(&h2, conns, streams).await?, secs / 10).await?;
        let _ = closed_loop(h1, hit1, n, secs / 10).await?; // warm-up
        let [(one, one_cpu), (two, two_cpu)] =
            paired(&signet.proc, hit1, (h1, n, 1), (&h2, conns, streams), secs).await?;
        // The echo server (signet's TLS and hyper-util stack answering the body) the same way:
        // what HTTP/2 costs the transport alone.
        let [(e1, e1_cpu), (e2, e2_cpu)] = paired(
            &w.echo_proc,
            &w.echo_work,
            (echo1, n, 1),
            (&echo2, conns, streams),
            secs,
        )
        .await?;
        let (tr, pr) = (
            two.rate() / one.rate().max(1e-9),
            two.ms(0.99) / one.ms(0.99).max(1e-9),
        );
        let met = tr >= 0.9 && pr <= 1.1;
        report.row(
            &format!(
                "(p) cache hit over HTTP/2: {conns} connection(s) × {streams} stream(s) in flight{}",
                if streams == 1 { " (like for like)" } else { " (API-server-like)" }
            ),
            &format!("{}; signet CPU {two_cpu:.0} µs/review", two.summary()),
            &format!(
                "HTTP/1.1, {n} connection(s) × 1: {}; signet CPU {one_cpu:.0} µs/review. Echo server, same shapes: HTTP/2 {:.0}/s, p50 {:.3} / p99 {:.3} ms, CPU {e2_cpu:.0} µs; HTTP/1.1 {:.0}/s, p50 {:.3} / p99 {:.3} ms, CPU {e1_cpu:.0} µs (echo h2/h1: throughput {}, p99 {}, CPU {})",
                one.summary(),
                e2.rate(),
                e2.ms(0.5),
                e2.ms(0.99),
                e1.rate(),
                e1.ms(0.5),
                e1.ms(0.99),
                ratio(e2.rate(), e1.rate()),
                ratio(e2.ms(0.99), e1.ms(0.99)),
                ratio(e2_cpu, e1_cpu)
            ),
            &format!(
                "**throughput {tr:.2}×, p99 {pr:.2}×** of HTTP/1.1, p50 {}, CPU/review {} ({})",
                ratio(two.ms(0.5), one.ms(0.5)),
                ratio(two_cpu, one_cpu),
                if met { "met" } else { "missed" }
            ),
            "within 10 % of HTTP/1.1 (throughput ≥ 0.9×, p99 ≤ 1.1×)",
        );
    }
    Ok(())
}

/// Connections the round-robin front handed to each replica.
struct Front {
    addr: SocketAddr,
    handed: Arc<[AtomicU64; 2]>,
}

/// A TCP forwarder on 127.0.0.1 handing each new connection to the next of `replicas` in turn
/// (as a Service's virtual IP spreads connections); TLS passes through untouched.
async fn start_front(replicas: [SocketAddr; 2]) -> anyhow::Result<Front> {
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

/// (r) The replay of (f) against two fresh signet replicas behind the round-robin front:
/// each replica has caches of its own, so each image may be verified once by each.
async fn scenario_two_replicas(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
    let pods = w.pods;
    ensure_replay_pool(w).await;
    let replay = w.replay_pool.as_ref().context("the replay pool")?;
    let (work, unique) = replay.pods(pods, &w.throttled.host);
    let throttled = &w.throttled;
    let replicas = [w.start_signet().await?, w.start_signet().await?];
    let front = start_front([replicas[0].webhook, replicas[1].webhook]).await?;
    // Each replica has a self-signed certificate of its own: trust both.
    let target = Arc::new(Target::new(
        front.addr,
        &format!("{}\n{}", replicas[0].ca_pem, replicas[1].ca_pem),
        "/validate?timeout=10s",
    )?);
    let expected_allowed = work.iter().filter(|w| w.expect == Some(true)).count();
    let mut before = Vec::new();
    for r in &replicas {
        let reviews = r.metric("signet_admission_reviews_total").await;
        before.push(((r.counters().await, reviews), r.proc.cpu_secs()));
    }
    let (seen0, thr0) = (throttled.total(), throttled.throttled());
    let stats = drive(&target, work, 20.min(pods)).await?;
    let (seen, thr) = (throttled.total() - seen0, throttled.throttled() - thr0);
    let mut each = Vec::new();
    let (mut requests, mut verifications) = (0.0, 0.0);
    for (i, (r, (((reg0, ver0), reviews0), cpu0))) in replicas.iter().zip(before).enumerate() {
        let (reg1, ver1) = r.counters().await;
        let reviews = r.metric("signet_admission_reviews_total").await - reviews0;
        requests += reg1 - reg0;
        verifications += ver1 - ver0;
        each.push(format!(
            "replica {}: {} connections, {reviews:.0} reviews, {:.0} verifications, {:.0} registry requests, peak RSS (VmHWM) {}, CPU {:.1} s",
            i + 1,
            front.handed[i].load(Ordering::Relaxed),
            ver1 - ver0,
            reg1 - reg0,
            mib(r.proc.peak_rss_kib()),
            r.proc.cpu_secs() - cpu0
        ));
    }
    let per = |x: f64| x / unique.max(1) as f64;
    let ok = stats.errors == 0 && stats.wrong == 0 && verifications <= 2.0 * unique as f64;
    report.row(
        &format!(
            "(r) replay of (f) on two replicas behind a round-robin TCP front: {pods} pods × 10 images ({unique} unique) × 5 referrers, {:.0}% of registry requests 429, 20 reviews in flight",
            w.args.throttle_per_mille as f64 / 10.0
        ),
        &format!(
            "**{:.1} s**; **{} timeouts, {} wrong verdicts** ({} errors, {} wrongly allowed; {expected_allowed} pods expected allowed); {}; **{:.0} verifications = {:.2} per unique image**; {:.0} registry requests (signet) = **{:.2} per unique image**, {seen} seen by the proxy ({:.2} per unique image) of which {thr} answered 429; {}",
            stats.elapsed.as_secs_f64(),
            stats.timeouts,
            stats.wrong,
            stats.errors,
            stats.wrongly_allowed,
            stats.summary(),
            verifications,
            per(verifications),
            requests,
            per(requests),
            per(seen as f64),
            each.join("; ")
        ),
        "one replica: (f)",
        &format!(
            "verifications {} of 2 × unique images ({})",
            ratio(verifications, 2.0 * unique as f64),
            if ok { "met" } else { "missed" }
        ),
        "0 timeouts, 0 wrong; ≤ 2 verifications per unique image (each replica verifies each image at most once)",
    );
    Ok(())
}
