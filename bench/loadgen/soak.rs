//! Scenario `soak`: normal reviews while hostile peers hold everything they can, at once.
//!
//! For `--soak-secs` (150 s by default), against a `signet serve` of its own started with
//! `--max-connections` high enough for the idle crowd (every other limit at its default):
//! - `--soak-idle` TLS connections (10,000) that complete the handshake and send nothing; one
//!   that signet closes (idle timeout, or evicted at the cap) is opened again. They are opened
//!   over the first 20 s, so that their idle timeouts do not all fall at the same second;
//! - slowloris: connections sending request headers one byte a second;
//! - stalled bodies: requests declaring a 7 MiB body that send 2 MiB of it and stop;
//! - HTTP/2 floods: connections opening streams (as many as signet lets each hold, and queueing
//!   more) that send headers and 1 KiB of a 64 KiB body, then hold;
//! - normal traffic: an open loop of `--soak-rate` reviews/s (mostly cache hits of signed and
//!   unsigned images, every 100th a new image), every verdict checked.
//!
//! Every loop stops by itself at the deadline. Sampled every 500 ms: signet's VmRSS and open
//! descriptors. The normal traffic's latency counts from when each review was due.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_rustls::client::TlsStream;

use crate::client::{Target, Work};
use crate::loops::open_loop;
use crate::procs::SignetProc;
use crate::report::{Report, Stats, histogram, load, mib};
use crate::reviews::{body, pod_with, push_signed};
use crate::support::cosign::CosignKey;
use crate::support::registry::TestRegistry;

/// What the soak holds open, and for how long.
pub struct Soak {
    pub secs: f64,
    pub idle: usize,
    pub rate: f64,
    pub slowloris: usize,
    pub stalled: usize,
    pub h2_connections: usize,
}

/// The declared size of a stalled body: signet's default `--max-body-bytes`, so it is not
/// refused outright with a 413.
const STALLED_DECLARED: usize = 7 << 20;
/// How much of it is sent before stalling.
const STALLED_SENT: usize = 2 << 20;
/// Streams each HTTP/2 flood connection tries to hold (signet allows 32 at once by default;
/// the h2 client queues the rest until one is answered).
const H2_STREAMS: usize = 64;
/// The memory limit in manifests/deployment.yaml.
const MEMORY_LIMIT_MIB: u64 = 512;

/// Counters shared by the hostile tasks.
#[derive(Default)]
struct Hostile {
    /// Idle connections open now (gauge), and the most seen at once.
    idle_open: AtomicI64,
    idle_peak: AtomicI64,
    /// Idle connections signet closed (idle timeout or eviction at the cap).
    idle_closed: AtomicU64,
    /// Connections that could not be opened (refused, reset or handshake failed).
    connect_failed: AtomicU64,
    stalled_sent: AtomicU64,
    h2_streams: AtomicU64,
    h2_conn_failed: AtomicU64,
    /// Answers to the stalled bodies and the HTTP/2 streams, by status code (0: none).
    statuses: Mutex<std::collections::BTreeMap<String, u64>>,
    /// How long signet let a slowloris connection and a stalled body live, in ms.
    slowloris_held: Mutex<Option<Histogram<u64>>>,
    stalled_held: Mutex<Option<Histogram<u64>>>,
}

impl Hostile {
    fn status(&self, what: impl std::fmt::Display) {
        *self
            .statuses
            .lock()
            .unwrap()
            .entry(what.to_string())
            .or_default() += 1;
    }

    fn held(slot: &Mutex<Option<Histogram<u64>>>, since: Instant) {
        slot.lock()
            .unwrap()
            .get_or_insert_with(histogram)
            .saturating_record(since.elapsed().as_nanos() as u64);
    }

    fn held_summary(slot: &Mutex<Option<Histogram<u64>>>) -> String {
        match slot.lock().unwrap().as_ref() {
            Some(h) => format!(
                "{} cut, held p50 {:.1} / max {:.1} s",
                h.len(),
                h.value_at_quantile(0.5) as f64 / 1e9,
                h.max() as f64 / 1e9
            ),
            None => "none cut".into(),
        }
    }
}

/// Everything the soak needs from the run: a registry to push to, the key its policy trusts,
/// the policies and registries signet is started with.
pub struct World<'a> {
    pub bin: &'a std::path::Path,
    pub signet_log: Option<&'a str>,
    pub registry: &'a TestRegistry,
    pub key: &'a CosignKey,
    pub policies: &'a str,
    pub insecure: &'a [String],
}

pub async fn soak(world: World<'_>, mut cfg: Soak, report: &mut Report) -> anyhow::Result<()> {
    // The load generator's own descriptors: every hostile connection is one, plus the run's.
    let nofile = rlimit::increase_nofile_limit(u64::MAX)?;
    let others = cfg.slowloris + cfg.stalled + cfg.h2_connections + 1_000;
    let mut scaled = String::new();
    if (cfg.idle + others) as u64 > nofile {
        let fit = (nofile as usize).saturating_sub(others);
        scaled = format!(
            " (scaled down from {}: the load generator's open-file limit is {nofile})",
            cfg.idle
        );
        cfg.idle = fit;
    }
    // Room for every hostile and normal connection, plus the reconnections in flight.
    let max_connections = cfg.idle + 2_000;

    eprintln!("soak: pushing images (load {})", load());
    let reg = world.registry;
    let signed = push_signed(reg, "bench/soak-signed", "v", 0..4, Some(world.key)).await;
    let unsigned = push_signed(reg, "bench/soak-unsigned", "v", 0..4, None).await;
    let total = (cfg.rate * cfg.secs) as usize;
    let cold_n = total.div_ceil(100) as u64;
    let cold_signed = push_signed(
        reg,
        "bench/soak-cold",
        "s",
        0..cold_n.div_ceil(2),
        Some(world.key),
    )
    .await;
    let cold_unsigned =
        push_signed(reg, "bench/soak-cold", "u", 1000..1000 + cold_n / 2, None).await;
    let host = reg.addr();
    let work: Vec<Work> = (0..total)
        .map(|k| {
            let (img, expect) = match (k % 100, k / 100) {
                (0, c) if c % 2 == 0 => (&cold_signed[c / 2], true),
                (0, c) => (&cold_unsigned[c / 2], false),
                (r, _) if r % 2 == 0 => (&signed[r / 2 % 4], true),
                (r, _) => (&unsigned[r / 2 % 4], false),
            };
            Work {
                body: body(&pod_with(&img.reference_by_tag(&host))),
                expect: Some(expect),
            }
        })
        .collect();

    let extra = vec!["--max-connections".to_owned(), max_connections.to_string()];
    let signet = SignetProc::start(
        world.bin,
        world.policies,
        world.insecure,
        world.signet_log,
        None,
        &extra,
    )
    .await?;
    let pid = signet.proc.child.id();
    let signet_nofile = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let target = signet.target()?;
    // The hot images once each, so that the normal traffic is mostly cache hits.
    let mut warm = Stats::empty();
    let mut send = target.connect().await?;
    for w in &work[1..9] {
        crate::client::send_one(&target, &mut send, w, Instant::now(), &mut warm).await;
    }
    anyhow::ensure!(
        warm.ok == 8 && warm.wrong == 0,
        "warm-up: {}",
        warm.summary()
    );
    let idle_rss = signet.proc.rss_kib();
    // signet's own time per decided review (only reviews that were read and decoded count).
    let served = async || {
        (
            signet
                .metric("signet_admission_review_duration_seconds_sum")
                .await,
            signet
                .metric("signet_admission_review_duration_seconds_count")
                .await,
        )
    };
    let (sum0, count0) = served().await;

    let start = Instant::now();
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(cfg.secs);
    let h = Arc::new(Hostile::default());
    let mut tasks = Vec::new();
    for i in 0..cfg.idle {
        // 500 a second: the whole crowd in 20 s.
        let delay = Duration::from_millis(i as u64 * 2);
        tasks.push(tokio::spawn(idle(target.clone(), h.clone(), delay, end)));
    }
    for i in 0..cfg.slowloris {
        let delay = Duration::from_millis(i as u64 * 10);
        tasks.push(tokio::spawn(slowloris(
            target.clone(),
            h.clone(),
            delay,
            end,
        )));
    }
    for i in 0..cfg.stalled {
        let delay = Duration::from_millis(i as u64 * 20);
        tasks.push(tokio::spawn(stalled(target.clone(), h.clone(), delay, end)));
    }
    for _ in 0..cfg.h2_connections {
        tasks.push(tokio::spawn(h2_flood(target.clone(), h.clone(), end)));
    }
    let decided = {
        let (http, url) = (signet.http.clone(), format!("{}/metrics", signet.admin));
        move || decided(http.clone(), url.clone())
    };
    let sampler = tokio::spawn(sample(pid, h.clone(), start, end, decided));
    let normal = open_loop(
        &target,
        &Arc::new(work),
        cfg.rate,
        16,
        Duration::from_secs_f64(cfg.secs),
    )
    .await?;
    for t in tasks {
        t.await?;
    }
    let samples = sampler.await?;
    let decisions = signet.series("signet_admission_reviews_total").await;
    let (sum1, count1) = served().await;
    let server_ms = (sum1 - sum0) * 1e3 / (count1 - count0).max(1.0);
    // "Final": once the hostile peers have gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let final_rss = signet.proc.rss_kib();
    let final_fds = fd_count(pid);
    let decisions = decisions
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect::<Vec<_>>()
        .join(", ");

    let (peak_rss, peak_fds) = samples;
    let statuses = h
        .statuses
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    report.row(
        &format!(
            "(soak) {:.0} s: {} idle TLS connections{scaled}, {} slowloris, {} stalled 7 MiB bodies, {} HTTP/2 connections × {H2_STREAMS} held streams; normal traffic {:.0}/s (signet `--max-connections {max_connections}`, open-file limit {signet_nofile})",
            cfg.secs, cfg.idle, cfg.slowloris, cfg.stalled, cfg.h2_connections, cfg.rate
        ),
        &format!(
            "normal: {} answered in {:.0} s ({:.1}/s of {:.0}/s offered), {} wrong ({} wrongly allowed), {} errors of which {} timeouts; p50 {:.3} / p99 {:.3} / max {:.3} ms from when due; signet's own mean time per review {server_ms:.1} ms. signet RSS before {}, **peak {}**, 2 s after {}; open fds peak {}, 2 s after {}. Idle connections open at once: peak {}; closed by signet {}; connect failures {}. Slowloris: {}. Stalled bodies: {} sent, {}. HTTP/2 streams opened {} (connection failures {}). Answers to hostile requests: {statuses}. signet's reviews by decision: {decisions}",
            normal.ok,
            normal.elapsed.as_secs_f64(),
            normal.rate(),
            cfg.rate,
            normal.wrong,
            normal.wrongly_allowed,
            normal.errors,
            normal.timeouts,
            normal.ms(0.5),
            normal.ms(0.99),
            normal.hist.max() as f64 / 1e6,
            mib(idle_rss),
            mib(peak_rss),
            mib(final_rss),
            peak_fds,
            final_fds,
            h.idle_peak.load(Ordering::Relaxed),
            h.idle_closed.load(Ordering::Relaxed),
            h.connect_failed.load(Ordering::Relaxed),
            Hostile::held_summary(&h.slowloris_held),
            h.stalled_sent.load(Ordering::Relaxed),
            Hostile::held_summary(&h.stalled_held),
            h.h2_streams.load(Ordering::Relaxed),
            h.h2_conn_failed.load(Ordering::Relaxed),
        ),
        &format!("memory limit {MEMORY_LIMIT_MIB} MiB"),
        &format!(
            "peak RSS {:.2}× the limit",
            peak_rss as f64 / 1024.0 / MEMORY_LIMIT_MIB as f64
        ),
        "RSS < 512 MiB, normal p99 < 100 ms, 0 wrong verdicts",
    );
    for s in &normal.wrong_samples {
        eprintln!("soak: wrong verdict: {s}");
    }
    Ok(())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Reviews signet has allowed or denied so far (the normal traffic: hostile requests never get
/// a verdict); `None` when `/metrics` did not answer.
async fn decided(http: reqwest::Client, url: String) -> Option<f64> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let n = text
        .lines()
        .filter(|l| {
            l.starts_with("signet_admission_reviews_total{")
                && (l.contains("\"allowed\"") || l.contains("\"denied\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(n)
}

/// Samples signet's RSS and descriptors every 500 ms until `end`; prints one line every 10 s,
/// with the normal reviews decided in those 10 s. Returns the peaks (KiB, count).
async fn sample<F: std::future::Future<Output = Option<f64>>>(
    pid: u32,
    h: Arc<Hostile>,
    start: Instant,
    end: tokio::time::Instant,
    decided: impl Fn() -> F,
) -> (u64, usize) {
    let mut last = decided().await.unwrap_or(0.0);
    let (mut peak_rss, mut peak_fds) = (0u64, 0usize);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut n = 0u64;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        let fds = fd_count(pid);
        peak_rss = peak_rss.max(rss);
        peak_fds = peak_fds.max(fds);
        if n.is_multiple_of(20) {
            let now = decided().await;
            let new = now.map_or("? (no answer from /metrics)".into(), |n| {
                format!("{:.0}", n - last)
            });
            eprintln!(
                "soak t={:>4.0}s: normal reviews decided {new}; RSS {} fds {fds}; idle open {}, closed {}; h2 streams {}; stalled {}; load {}",
                start.elapsed().as_secs_f64(),
                mib(rss),
                h.idle_open.load(Ordering::Relaxed),
                h.idle_closed.load(Ordering::Relaxed),
                h.h2_streams.load(Ordering::Relaxed),
                h.stalled_sent.load(Ordering::Relaxed),
                load()
            );
            last = now.unwrap_or(last);
        }
        n += 1;
    }
    (peak_rss, peak_fds)
}

/// A TLS connection to signet with this ALPN protocol; `None` (counted) when it fails.
async fn connect(
    target: &Target,
    alpn: &[u8],
    h: &Hostile,
    end: tokio::time::Instant,
) -> Option<TlsStream<TcpStream>> {
    let mut tls = (*target.tls).clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
    let made = timeout_at(end, async {
        let tcp = TcpStream::connect(target.addr).await?;
        tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
    })
    .await;
    match made {
        Ok(Ok(s)) => Some(s),
        Ok(Err(_)) => {
            h.connect_failed.fetch_add(1, Ordering::Relaxed);
            // Do not spin on a refusing server.
            tokio::time::sleep_until(end.min(tokio::time::Instant::now() + Duration::from_secs(1)))
                .await;
            None
        }
        Err(_) => None,
    }
}

/// Reads until signet closes the connection or `end`; true when signet closed it. The first
/// bytes read (an HTTP status line, if any) go to `first`.
async fn hold(
    stream: &mut TlsStream<TcpStream>,
    end: tokio::time::Instant,
    first: &mut Vec<u8>,
) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match timeout_at(end, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => {
                if first.len() < 16 {
                    first.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}

/// The status code of `HTTP/1.1 408 ...`, 0 if none.
fn status_of(head: &[u8]) -> u16 {
    std::str::from_utf8(head.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One idle connection, opened again each time signet closes it, until `end`.
async fn idle(target: Arc<Target>, h: Arc<Hostile>, delay: Duration, end: tokio::time::Instant) {
    tokio::time::sleep(delay).await;
    while tokio::time::Instant::now() < end {
        let Some(mut s) = connect(&target, b"http/1.1", &h, end).await else {
            continue;
        };
        let open = h.idle_open.fetch_add(1, Ordering::Relaxed) + 1;
        h.idle_peak.fetch_max(open, Ordering::Relaxed);
        let closed = hold(&mut s, end, &mut Vec::new()).await;
        h.idle_open.fetch_sub(1, Ordering::Relaxed);
        if closed {
            h.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Request headers, one byte a second, never finished; again when signet cuts it.
async fn slowloris(
    target: Arc<Target>,
    h: Arc<Hostile>,
    delay: Duration,
    end: tokio::time::Instant,
) {
    tokio::time::sleep(delay).await;
    let head = b"POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nX-Padding: ";
    while tokio::time::Instant::now() < end {
        let Some(s) = connect(&target, b"http/1.1", &h, end).await else {
            continue;
        };
        let since = Instant::now();
        let (mut rd, mut wr) = tokio::io::split(s);
        let writer = async {
            for i in 0usize.. {
                let byte = head.get(i).copied().unwrap_or(b'a');
                if wr.write_all(&[byte]).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let reader = async {
            let mut buf = [0u8; 1024];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let cut = timeout_at(end, async {
            tokio::select! {
                () = writer => {},
                () = reader => {},
            }
        })
        .await
        .is_ok();
        if cut {
            Hostile::held(&h.slowloris_held, since);
        }
    }
}

/// A request declaring a 7 MiB body that sends 2 MiB of it and stops; again when answered.
async fn stalled(target: Arc<Target>, h: Arc<Hostile>, delay: Duration, end: tokio::time::Instant) {
    tokio::time::sleep(delay).await;
    let head = format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {STALLED_DECLARED}\r\n\r\n"
    );
    let part = vec![b' '; STALLED_SENT];
    while tokio::time::Instant::now() < end {
        let Some(mut s) = connect(&target, b"http/1.1", &h, end).await else {
            continue;
        };
        let since = Instant::now();
        let mut first = Vec::new();
        // signet may stop reading (no room in the body budget): the write then blocks until
        // it answers or the deadline, so read and write together.
        let (mut rd, mut wr) = tokio::io::split(&mut s);
        let sent = async {
            if wr.write_all(head.as_bytes()).await.is_ok() && wr.write_all(&part).await.is_ok() {
                let _ = wr.flush().await;
                h.stalled_sent.fetch_add(1, Ordering::Relaxed);
            }
            std::future::pending::<()>().await;
        };
        let answered = async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                first.extend_from_slice(&buf[..n.min(16)]);
                if first.len() >= 12 {
                    // The status line: signet has answered; no need to wait for it to close.
                    break;
                }
            }
        };
        let cut = timeout_at(end, async {
            tokio::select! {
                () = sent => {},
                () = answered => {},
            }
        })
        .await
        .is_ok();
        if cut {
            h.status(format!("stalled body {}", status_of(&first)));
            Hostile::held(&h.stalled_held, since);
        }
    }
}

/// One HTTP/2 connection opening streams that send headers and 1 KiB of a 64 KiB body, then
/// hold; `H2_STREAMS` at once (the h2 client queues those beyond signet's stream limit).
/// Opened again when signet closes it.
async fn h2_flood(target: Arc<Target>, h: Arc<Hostile>, end: tokio::time::Instant) {
    while tokio::time::Instant::now() < end {
        let Some(s) = connect(&target, b"h2", &h, end).await else {
            continue;
        };
        let Ok(Ok((send, conn))) = timeout_at(end, h2::client::handshake(s)).await else {
            h.h2_conn_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let driver = tokio::spawn(async move {
            let _ = timeout_at(end, conn).await;
        });
        let streams: Vec<_> = (0..H2_STREAMS)
            .map(|_| tokio::spawn(h2_stream(send.clone(), h.clone(), end)))
            .collect();
        for s in streams {
            let _ = s.await;
        }
        driver.abort();
    }
}

/// Streams, one after the other, on one connection until it fails or `end`.
async fn h2_stream(
    mut send: h2::client::SendRequest<Bytes>,
    h: Arc<Hostile>,
    end: tokio::time::Instant,
) {
    while tokio::time::Instant::now() < end {
        let Ok(Ok(ready)) = timeout_at(end, send.clone().ready()).await else {
            return;
        };
        send = ready;
        let req = http::Request::post("https://localhost/validate?timeout=10s")
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, 64 * 1024)
            .body(())
            .unwrap();
        let Ok((resp, mut stream)) = send.send_request(req, false) else {
            return;
        };
        h.h2_streams.fetch_add(1, Ordering::Relaxed);
        let _ = stream.send_data(Bytes::from(vec![b' '; 1024]), false);
        match timeout_at(end, resp).await {
            Ok(Ok(r)) => h.status(format!("HTTP/2 stream {}", r.status().as_u16())),
            Ok(Err(e)) => h.status(match e.reason() {
                Some(reason) => format!("HTTP/2 stream reset ({reason:?})"),
                None => format!("HTTP/2 stream failed ({e})"),
            }),
            Err(_) => return,
        }
    }
}
