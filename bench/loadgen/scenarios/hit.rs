//! Cache-hit scenarios: (a) one image, (b) ten images, (p) HTTP/2 against HTTP/1.1, (n)
//! against nginx serving the same body.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::client::{Target, Work, allowed_of};
use crate::loops::{closed_loop, closed_loop_on, open_loop, slots};
use crate::procs::{Proc, with_cpu};
use crate::report::{Report, Stats, ratio};
use crate::reviews::{body, pod_with_images};
use crate::tools::{H2loadShape, Nginx, Wrk, h2load, wrk};
use crate::world::World;

/// (n) The cache hit against its floor: signet and nginx (static body, same certificate, one
/// worker) under the same `wrk -t1 -c16`, alternated within this run (signet, nginx, nginx,
/// signet, half the time each), with the CPU each spent per request; the same with one
/// connection for the latency; then both under `h2load`, over HTTP/1.1 (`--h1 -c16`) and
/// HTTP/2 (`-c16 -m1`, and `-c1 -m16`: one connection, 16 streams, how an API server
/// multiplexes), so that the HTTP/1.1 and HTTP/2 ratios come from one tool. The `wrk -c16`
/// row once more for a second signet logging JSON lines, as the deployment manifest has it
/// (the other rows use the CLI's default, plain lines). Fails when signet (or nginx) answers
/// h2load with anything but 2xx: a wrong request.
pub async fn scenario_nginx(w: &World, secs: f64, report: &mut Report) -> anyhow::Result<()> {
    let (signet, hit) = (&w.signet, &w.hit1[0]);
    let answer = hot_image_allowed(&w.target, hit).await?;
    let (cert, key) = signet.cert_files();
    let nginx = Nginx::start(&cert, &key, &answer)?;
    let signet_url = format!("https://{}/validate?timeout=10s", signet.webhook);
    let nginx_url = format!("https://127.0.0.1:{}/validate?timeout=10s", nginx.port);
    let mut nginx_c16 = None;
    for c in [16usize, 1] {
        let _ = wrk(&signet_url, &hit.body, c, 1.0)?; // warm-ups
        let _ = wrk(&nginx_url, &hit.body, c, 1.0)?;
        // Half the time each, in the order signet, nginx, nginx, signet: a drift in the
        // machine's speed during the run falls on both. nginx's CPU is its worker's.
        let cpu = |which: usize| match which {
            0 => signet.proc.cpu_secs(),
            _ => nginx.proc.cpu_secs_with_children(),
        };
        let mut halves: [Vec<(Wrk, f64)>; 2] = [Vec::new(), Vec::new()];
        for which in [0usize, 1, 1, 0] {
            let url = if which == 0 { &signet_url } else { &nginx_url };
            let cpu0 = cpu(which);
            let run = wrk(url, &hit.body, c, secs / 2.0)?;
            halves[which].push((run, cpu(which) - cpu0));
        }
        let [s, n] = halves.map(Halves);
        for (who, h) in [("signet", &s), ("nginx", &n)] {
            for (run, _) in &h.0 {
                eprintln!("wrk {who} c={c}:\n{}", run.raw);
            }
        }
        report.row(
            &format!("(n) cache hit, 1 image, `wrk -t1 -c{c}`, against nginx `return 200` (same body, same certificate, one worker); half the time each, signet, nginx, nginx, signet"),
            &format!("signet {:.0} reviews/s; p50 {} / p99 {} ms; CPU {:.0} µs/review", s.rate(), s.each(|w| w.p50), s.each(|w| w.p99), s.cpu_per_request()),
            &format!("nginx {:.0}/s; p50 {} / p99 {} ms; CPU {:.0} µs/request (its worker)", n.rate(), n.each(|w| w.p50), n.each(|w| w.p99), n.cpu_per_request()),
            &format!(
                "throughput {} (the adjacent halves: {}, {}); CPU per request {}",
                ratio(s.rate(), n.rate()),
                ratio(s.0[0].0.rate, n.0[0].0.rate),
                ratio(s.0[1].0.rate, n.0[1].0.rate),
                ratio(s.cpu_per_request(), n.cpu_per_request())
            ),
            if c == 16 { "≥ 0.5× nginx" } else { "p99 ≤ 0.3 ms" },
        );
        if c == 16 {
            nginx_c16 = Some(n.rate());
        }
    }
    if let Some(rate) = nginx_c16 {
        wrk_with_json_lines(w, hit, rate, secs, report).await?;
    }
    // h2load against nginx's port that reads the request body (see `Nginx`).
    let nginx_url = format!("https://127.0.0.1:{}/validate?timeout=10s", nginx.body_port);
    let mut h1_ratio = None;
    for (h2, clients, streams) in [(false, 16, 1), (true, 16, 1), (true, 1, 16)] {
        let shape = H2loadShape {
            h2,
            clients,
            streams,
        };
        let cpu0 = signet.proc.cpu_secs();
        let s = h2load(&signet_url, &hit.body, shape, secs)?;
        // Per review, the warm-up second's reviews counted at the measured rate.
        let s_cpu = (signet.proc.cpu_secs() - cpu0) * 1e6 / (s.rate * (secs + 1.0)).max(1.0);
        let n = h2load(&nginx_url, &hit.body, shape, secs)?;
        // Over HTTP/1.1, also the `return 200` that never reads the body (the wrk rows' nginx):
        // what reading it costs nginx.
        let unread = if h2 {
            None
        } else {
            let url = format!("https://127.0.0.1:{}/validate?timeout=10s", nginx.port);
            Some(h2load(&url, &hit.body, shape, secs)?)
        };
        eprintln!(
            "h2load {} signet:\n{}\nh2load {} nginx:\n{}",
            shape.flags(),
            s.raw,
            shape.flags(),
            n.raw
        );
        let in_flight = (clients * streams) as u64;
        for (who, x) in [("signet", &s), ("nginx", &n)] {
            anyhow::ensure!(
                x.not_2xx == 0 && x.failed == 0 && x.no_status <= in_flight,
                "h2load {}: {who} answered {} requests outside 2xx, {} failed, {} logged without a status ({}): a wrong request?\n{}",
                shape.flags(),
                x.not_2xx,
                x.failed,
                x.no_status,
                x.statuses,
                x.raw
            );
        }
        let no_status = |x: &crate::tools::H2load| match x.no_status {
            0 => String::new(),
            k => format!("; {k} logged without a status, none failed"),
        };
        let r = s.rate / n.rate.max(1e-9);
        let met = |ok: bool| if ok { "met" } else { "missed" };
        // Over HTTP/2 the ratio must hold within 10 %: at least 0.9× the HTTP/1.1 one.
        let vs_h1 = match h1_ratio {
            Some(h1) if h2 => format!(
                "; {:.2}× the HTTP/1.1 ratio (≥ 0.9×: {})",
                r / h1,
                met(r / h1 >= 0.9)
            ),
            _ => String::new(),
        };
        if !h2 {
            h1_ratio = Some(r);
        }
        report.row(
            &format!(
                "(n) cache hit, 1 image, `h2load -t1 {}` over {}, against nginx reading the body, then `return 200` (same body, same certificate, one worker)",
                shape.flags(),
                match (h2, clients) {
                    (false, _) => "HTTP/1.1",
                    (true, 1) => "HTTP/2, one connection (how an API server multiplexes)",
                    (true, _) => "HTTP/2",
                }
            ),
            &format!(
                "signet {:.0} reviews/s; p50 {:.3} / p99 {:.3} ms; CPU {s_cpu:.0} µs/review; {}{}",
                s.rate,
                s.p50,
                s.p99,
                s.statuses,
                no_status(&s)
            ),
            &format!(
                "nginx {:.0}/s; p50 {:.3} / p99 {:.3} ms{}{}",
                n.rate,
                n.p50,
                n.p99,
                no_status(&n),
                unread.map_or(String::new(), |u| format!(
                    " (`return 200` not reading the body: {:.0}/s; p50 {:.3} / p99 {:.3} ms)",
                    u.rate, u.p50, u.p99
                ))
            ),
            &format!(
                "**throughput {}** (≥ 0.5×: {}){vs_h1}",
                ratio(s.rate, n.rate),
                met(r >= 0.5)
            ),
            if h2 {
                "≥ 0.5× nginx; the HTTP/1.1 ratio within 10 %"
            } else {
                "≥ 0.5× nginx"
            },
        );
    }
    Ok(())
}

/// The two halves of one side of an alternated `wrk` comparison, each with the CPU seconds
/// the server spent in it.
struct Halves(Vec<(Wrk, f64)>);

impl Halves {
    /// The rate over both halves (of equal length).
    fn rate(&self) -> f64 {
        self.0.iter().map(|(w, _)| w.rate).sum::<f64>() / self.0.len().max(1) as f64
    }

    /// CPU µs per request over both halves.
    fn cpu_per_request(&self) -> f64 {
        let cpu: f64 = self.0.iter().map(|(_, c)| c).sum();
        let requests: f64 = self.0.iter().map(|(w, _)| w.rate * w.secs).sum();
        cpu * 1e6 / requests.max(1.0)
    }

    /// One figure of each half, in ms: `a, b`.
    fn each(&self, f: impl Fn(&Wrk) -> f64) -> String {
        let v: Vec<String> = self.0.iter().map(|(w, _)| format!("{:.3}", f(w))).collect();
        v.join(", ")
    }
}

/// Posts the hot image's review once (a cold review on a fresh signet) and checks that it is
/// allowed; the answer's body.
async fn hot_image_allowed(target: &Target, hit: &Work) -> anyhow::Result<bytes::Bytes> {
    let (status, answer) = target
        .post(&mut target.connect().await?, hit.body.clone())
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK && allowed_of(&answer) == Some(true),
        "the hot image is not allowed"
    );
    Ok(answer)
}

/// (n)'s `wrk -t1 -c16` row for a signet writing JSON log lines (`--log-format json`, its own
/// certificate of the same kind), against the nginx figure measured just before.
async fn wrk_with_json_lines(
    w: &World,
    hit: &Work,
    nginx_rate: f64,
    secs: f64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let json = w
        .start_signet_with(&["--log-format".into(), "json".into()])
        .await?;
    let target = Target::new(json.webhook, &json.ca_pem, "/validate?timeout=10s")?;
    hot_image_allowed(&target, hit).await?;
    let url = format!("https://{}/validate?timeout=10s", json.webhook);
    let _ = wrk(&url, &hit.body, 16, 1.0)?; // warm-up
    let cpu0 = json.proc.cpu_secs();
    let s = wrk(&url, &hit.body, 16, secs)?;
    let s_cpu = (json.proc.cpu_secs() - cpu0) * 1e6 / (s.rate * s.secs).max(1.0);
    eprintln!("wrk signet (JSON lines) c=16:\n{}", s.raw);
    report.row(
        "(n) cache hit, 1 image, `wrk -t1 -c16`, signet logging JSON lines (the deployment manifest's `--log-format=json`), against the nginx figure above",
        &format!("signet {:.0} reviews/s; p50 {:.3} / p99 {:.3} ms; CPU {s_cpu:.0} µs/review", s.rate, s.p50, s.p99),
        &format!("nginx {nginx_rate:.0}/s (the `wrk -c16` row above)"),
        &format!("throughput {}", ratio(s.rate, nginx_rate)),
        "≥ 0.5× nginx",
    );
    Ok(())
}

/// The rate of the cache-hit target (≥ 10,000 reviews/s with p99 ≤ 1 ms).
const TARGET_RATE: f64 = 10_000.0;

/// (a) Cache hit, 1 image: closed loops at c = 1, 16, 64 and open loops at 25, 50 and 80 % of
/// the best closed-loop rate and at 10,000/s, each next to the echo server.
pub async fn scenario_cache_hit(w: &World, report: &mut Report) -> anyhow::Result<()> {
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
            &against_echo(&s, s_cpu, &e, e_cpu),
            "≥ 10,000/s; p99 ≤ 1 ms",
        );
    }
    // Three fractions of the best closed-loop rate, then the target's own rate.
    for frac in [Some(0.25), Some(0.5), Some(0.8), None] {
        let rate = frac.map_or(TARGET_RATE, |f| (best * f).max(50.0).round());
        let s = open_loop(target, hit1, rate, 64, secs).await?;
        let e = open_loop(echo, echo_work, rate, 64, secs).await?;
        report.row(
            &match frac {
                Some(f) => format!(
                    "(a) cache hit, 1 image, open loop {rate:.0}/s ({:.0}% of max)",
                    f * 100.0
                ),
                None => {
                    format!("(a) cache hit, 1 image, open loop {rate:.0}/s (the target's rate)")
                }
            },
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
            "{:.0} (tag→digest cache TTL 30 s: its renewals and re-resolutions only)",
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
pub async fn scenario_ten_images(w: &World, report: &mut Report) -> anyhow::Result<()> {
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
            &against_echo(&s, s_cpu, &e, e_cpu),
            "p99 ≤ 1 ms",
        );
    }
    Ok(())
}

/// A closed loop on `conns × streams` slots, four times for `secs / 2` each in the order
/// `first, second, second, first` (so that a drift in the machine's load falls on both), with
/// the CPU signet spent per review; returns the merged stats of each.
pub async fn paired(
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
pub async fn scenario_http2(w: &World, report: &mut Report) -> anyhow::Result<()> {
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

/// signet's closed loop against the echo server's: throughput, p50 and CPU per review.
fn against_echo(s: &Stats, s_cpu: f64, e: &Stats, e_cpu: f64) -> String {
    format!(
        "throughput {}, p50 {}, CPU/review {}",
        ratio(s.rate(), e.rate()),
        ratio(s.ms(0.5), e.ms(0.5)),
        ratio(s_cpu, e_cpu)
    )
}
