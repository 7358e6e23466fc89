//! Scenarios under stress: (s) cache hits during a storm of new images, (h) the first
//! connection after a start, (g) memory with many cached verdicts, and the soak.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Target, Work, connect_all, send_one};
use crate::loops::{arm, closed_loop, gather};
use crate::procs::SignetProc;
use crate::report::{Report, Stats, load, mib, ratio};
use crate::reviews::{body, pod_with, pod_with_images, push_signed};
use crate::soak;
use crate::support::cosign::CosignKey;
use crate::support::registry::TestRegistry;
use crate::world::World;

/// (s) Cache hits while `n` new images are verified at once: one connection of cache hits
/// (closed loop) measured quiet, then during the storm.
pub async fn scenario_storm(
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
    let armed = arm(target, storm).await?;
    let _ = closed_loop(target, hit, 1, Duration::from_millis(500)).await?;
    let quiet = closed_loop(target, hit, 1, Duration::from_secs(2)).await?;
    let (_, ver0) = signet.counters().await;
    armed.release().await;
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
    let storm_stats = armed.finish(start).await?;
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

pub static STORM_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// (h) The first TLS handshake (and review) after `signet serve` starts, against the ones
/// after it: `restarts` fresh processes, each timed on its first three connections.
pub async fn scenario_first_handshake<F, Fut>(
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

/// (g) Memory with `--verdicts` cached verdicts, from the synthetic registry.
pub async fn scenario_memory(w: &World, report: &mut Report) -> anyhow::Result<()> {
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
    let stats = gather(tasks, start).await?;
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
pub async fn scenario_soak(w: &World, report: &mut Report) -> anyhow::Result<()> {
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
