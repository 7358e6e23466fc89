//! Replays: (f) pods of 10 images from a pool with a throttling registry, (r) the same on two
//! replicas behind a round-robin front.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;

use crate::client::{Target, Work};
use crate::loops::drive;
use crate::proxies::start_front;
use crate::report::{Report, load, mib, ratio};
use crate::reviews::{body, pod_with_images, push_signed};
use crate::support;
use crate::support::oci::PushedImage;
use crate::world::World;

/// The replay's images: a pool, 90 % signed by the trusted key, 5 % by another key, 5 %
/// unsigned, each with 5 referrers (SBOMs, scans, provenance).
pub struct ReplayPool {
    pub images: Vec<PushedImage>,
    pub trusted: Vec<bool>,
}

impl ReplayPool {
    pub async fn push(w: &World, pool: u64) -> ReplayPool {
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
    pub fn pods(&self, pods: usize, host: &str) -> (Vec<Work>, usize) {
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
pub async fn ensure_replay_pool(w: &mut World) {
    if w.replay_pool.is_none() {
        let pool = w.args.pool.unwrap_or((w.pods * 2).max(20)) as u64;
        w.replay_pool = Some(ReplayPool::push(w, pool).await);
    }
}

/// (f) A replay shaped like Ratify's scale test: pods × 10 images × 5 referrers, with a
/// fraction of registry requests answered 429; 20 reviews in flight, like an API server
/// handling a rollout.
pub async fn scenario_replay(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
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

/// (r) The replay of (f) against two fresh signet replicas behind the round-robin front:
/// each replica has caches of its own, so each image may be verified once by each.
pub async fn scenario_two_replicas(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
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
