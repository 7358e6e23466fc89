//! signet's load generator and scenario runner (`bench/run.sh` builds and runs it).
//!
//! It starts everything a scenario needs, drives the real release binary (`signet serve`, a
//! separate process, so its RSS is its own) over HTTPS keep-alive HTTP/1.1 (and, in scenario
//! p, HTTP/2) with real AdmissionReview bodies, and prints one markdown table. `run` builds the
//! shared [`World`] once and calls one function per scenario. The pieces:
//! - a real loopback `docker-registry` with images pushed and Cosign-signed by the test kit
//!   the integration tests use (`crates/testkit`);
//! - for the Notation kinds of the cold scenario (c), a second `docker-registry` (a policy
//!   covers a whole host, so Notation and Cosign images cannot share one), its images signed by
//!   the harness's Notation signer (JWS or COSE, referrers tag schema), and the harness's OCSP
//!   responder (`openssl ocsp` per request) for leaves that name it;
//! - for the keyless kind of (c), a third `docker-registry`, its images signed keyless with a
//!   leaf each from the test kit's Sigstore (Fulcio, CT log, Rekor), whose trusted root the
//!   keyless policies name;
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
//! - the soak (`soak`, `--only soak`): normal reviews while idle connections,
//!   slowloris headers, stalled bodies and HTTP/2 stream floods are held at once.
//!
//! The modules: `args` (the command line), `report` (the table, the statistics), `client`
//! (one HTTPS connection and one review), `loops` (closed, open, all at once, in order),
//! `procs` (signet and the echo server), `tools` (nginx, wrk, h2load), `proxies` (counting
//! proxy, synthetic registry, round-robin front), `reviews` (bodies, pushed images),
//! `notation`, `keyless` and `limits` (what (c) and the limit rows need), `world` (the shared
//! set-up), `scenarios` (one function per scenario) and `soak`.
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

mod args;
mod client;
mod keyless;
mod limits;
mod loops;
mod notation;
mod procs;
mod proxies;
mod report;
mod reviews;
mod scenarios;
mod soak;
mod tools;
mod world;

/// The test kit the integration tests use (crates/testkit), under the tests' module paths.
mod support {
    pub use signet_testkit::{cosign, fixtures, notary, oci, registry, responder, sigstore};
    pub mod signet {
        pub use signet_testkit::policy::cosign_policy;
    }
}

use clap::Parser as _;

use args::{Args, Sub};
use procs::echo_server;
use report::{Report, load};
use scenarios::cold::{scenario_burst, scenario_cold};
use scenarios::hit::{scenario_cache_hit, scenario_http2, scenario_nginx, scenario_ten_images};
use scenarios::replay::{scenario_replay, scenario_two_replicas};
use scenarios::stress::{scenario_first_handshake, scenario_memory, scenario_soak, scenario_storm};
use world::World;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    if args.split_cpus && args.command.is_none() {
        procs::split_cpus()?;
    }
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

/// Sets up the shared [`World`], runs the scenarios `--only` names, in a fixed order, and
/// prints the table: also when a scenario fails, with the rows measured before it and a last
/// row saying what stopped the run.
async fn run(args: Args) -> anyhow::Result<()> {
    let only: Vec<String> = args.only.split(',').map(|s| s.trim().to_owned()).collect();
    let wants = |s: &str| only.iter().any(|o| o == s);
    let mut report = Report { rows: Vec::new() };
    eprintln!(
        "setting up: docker-registry, proxies, signed images (load {})",
        load()
    );
    let mut w = World::start(args, &wants, &mut report).await?;
    let outcome = scenarios(&mut w, &wants, &mut report).await;
    if let Err(e) = &outcome {
        let first = format!("{e:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .replace('|', "\\|");
        report.row("(stopped) the run ended here", &first, "-", "-", "-");
    }
    let World {
        args, echo_proc, ..
    } = w;
    drop(echo_proc);
    report.print(&args);
    outcome
}

/// The scenarios `--only` names, in a fixed order, until one fails.
async fn scenarios(
    w: &mut World,
    wants: &impl Fn(&str) -> bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let quick = w.args.quick;
    if wants("a") {
        scenario_cache_hit(w, report).await?;
    }
    if wants("b") {
        scenario_ten_images(w, report).await?;
    }
    if wants("p") {
        scenario_http2(w, report).await?;
    }
    if wants("c") {
        scenario_cold(w, report).await?;
    }
    if wants("e") {
        scenario_burst(w, if quick { 100 } else { 1000 }, report).await?;
    }
    if wants("n") {
        let secs = if quick { 2.0 } else { w.args.secs };
        scenario_nginx(w, secs, report).await?;
    }
    if wants("s") {
        let n = if quick { 20 } else { w.args.storm };
        let (registry, key, signet) = (&w.registry, &w.key, &w.signet);
        scenario_storm(registry, key, signet, &w.target, &w.hit1, n, report).await?;
    }
    if wants("h") {
        let restarts = if quick { 2 } else { w.args.restarts };
        scenario_first_handshake(|| w.start_signet(), restarts, report).await?;
    }
    if wants("f") {
        scenario_replay(w, report).await?;
    }
    if wants("r") {
        scenario_two_replicas(w, report).await?;
    }
    if wants("g") {
        scenario_memory(w, report).await?;
    }
    if wants("soak") {
        scenario_soak(w, report).await?;
    }
    Ok(())
}
