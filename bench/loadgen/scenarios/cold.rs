//! Cold scenarios: (c) every review a new signed image, next to its floor; (e) a burst of
//! reviews of one new image.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::args::ColdKind;
use crate::client::{Target, Work, send_one};
use crate::keyless::KeylessWorld;
use crate::limits::Limits;
use crate::loops::all_at_once;
use crate::notation::NotationWorld;
use crate::procs::SignetProc;
use crate::proxies::Proxy;
use crate::report::{Report, Stats, ratio};
use crate::reviews::{body, pod_with, push_signed};
use crate::support;
use crate::support::oci::PushedImage;
use crate::support::responder::Responder;
use crate::world::World;

/// What one sequential run of cold reviews cost (totals over `images`).
pub struct Cold {
    pub stats: Stats,
    pub images: usize,
    /// signet's `signet_registry_requests_total`.
    pub registry_requests: f64,
    pub verifications: f64,
    /// signet's registry requests by operation and status, per image.
    pub ops: Vec<String>,
    /// Requests the counting proxy forwarded, when the images were reached through it.
    pub seen: Option<u64>,
    /// Of those, each image's (the reviews are sequential, so each is exact).
    pub seen_per_image: Vec<u64>,
    /// The same images' registry requests made by hand, each next to its review.
    pub sequence: Stats,
    /// OCSP requests the responder received.
    pub ocsp: Option<usize>,
    /// signet's own seconds (sums of its duration histograms): answering the reviews, and in
    /// registry requests.
    pub review_secs: f64,
    pub registry_secs: f64,
}

impl Cold {
    /// The most registry requests (seen by the proxy) any image after the first needed: by
    /// then signet knows whether the host has the referrers API.
    pub fn max_after_first(&self) -> Option<u64> {
        self.seen_per_image.iter().skip(1).copied().max()
    }

    pub fn figure(&self) -> String {
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
pub async fn cold_run(
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

/// (c) Cold verification: every review a new signed image, for each way of signing; each kind
/// reviewed directly and through the counting proxy, next to its floor.
pub async fn scenario_cold(w: &mut World, report: &mut Report) -> anyhow::Result<()> {
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
        let keyless = w
            .keyless
            .as_ref()
            .filter(|_| kind == ColdKind::CosignKeyless);
        let own = match (world, keyless) {
            (Some(nw), _) => Some(&nw.own),
            (None, Some(kw)) => Some(&kw.own),
            (None, None) => None,
        };
        let (direct_host, proxy) = match own {
            Some(o) => (o.registry.addr(), &o.counted),
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
                (world, keyless),
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
pub async fn push_cold(
    w: &mut World,
    kind: ColdKind,
    n: u64,
) -> anyhow::Result<(Vec<PushedImage>, Vec<PushedImage>)> {
    if kind == ColdKind::CosignKeyless {
        let Some(kw) = w.keyless.as_ref() else {
            bail!("no keyless registry was set up for {kind}");
        };
        return Ok((
            kw.push("bench/keyless", 3000..3000 + n).await,
            kw.push("bench/keyless-p", 4000..4000 + n / 2).await,
        ));
    }
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
pub fn cold_floor(
    limits: Option<&Limits>,
    kind: ColdKind,
    (world, keyless): (Option<&NotationWorld>, Option<&KeylessWorld>),
    responder_rtt: Option<&Stats>,
    cold: &Cold,
) -> (String, String) {
    let sequence = &cold.sequence;
    let Some(l) = limits else {
        return ("-".into(), "-".into());
    };
    let (requests, verify_us, verify) = match (kind.notation(), world) {
        (None, _) if kind == ColdKind::CosignKeyless => match keyless {
            Some(k) => (
                3.0,
                k.verify_us,
                "Cosign keyless verify (in-process)".to_owned(),
            ),
            None => return ("-".into(), "-".into()),
        },
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
pub struct ByHand {
    pub client: reqwest::Client,
    pub base: String,
    pub notation: bool,
}

impl ByHand {
    pub fn new(base: String, notation: bool) -> anyhow::Result<ByHand> {
        Ok(ByHand {
            client: reqwest::Client::builder().no_proxy().build()?,
            base,
            notation,
        })
    }

    /// One request; the `Docker-Content-Digest` header and the body.
    pub async fn get(&self, url: String, head: bool) -> anyhow::Result<(Option<String>, Bytes)> {
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
    pub async fn one(&self, img: &PushedImage) -> anyhow::Result<Duration> {
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

/// (e) Burst: `n` simultaneous reviews of one new image (through the counting proxy).
pub async fn scenario_burst(w: &World, n: usize, report: &mut Report) -> anyhow::Result<()> {
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
