//! What the scenarios share: the registry and its proxies, the signed images of the cache
//! hits, the signet under test, the echo server and the limits, set up once.

use std::sync::Arc;
use std::time::Duration;

use crate::args::Args;
use crate::args::ColdKind;
use crate::client::{Target, Work};
use crate::keyless::KeylessWorld;
use crate::limits::{Limits, measure_limits};
use crate::notation::NotationWorld;
use crate::procs::{Proc, SignetProc, start_echo};
use crate::proxies::{Proxy, start_proxy, start_synthetic_registry};
use crate::report::{Report, mib};
use crate::reviews::{body, pod_with, push_signed};
use crate::scenarios::replay::ReplayPool;
use crate::support::cosign::{CosignKey, KeyKind};
use crate::support::notary::Format;
use crate::support::registry::TestRegistry;
use crate::support::signet::cosign_policy;

/// Everything the scenarios share: the registry and its proxies, the signed images of the
/// cache hits, the signet under test, the echo server and the limits measured in this run.
pub struct World {
    pub args: Args,
    pub secs: Duration,
    pub pods: usize,
    pub verdicts: u64,
    pub key: CosignKey,
    pub other_key: CosignKey,
    pub registry: TestRegistry,
    pub counted: Proxy,
    pub throttled: Proxy,
    pub synthetic: String,
    pub notation: Option<NotationWorld>,
    pub keyless: Option<KeylessWorld>,
    pub policies: String,
    pub insecure: Vec<String>,
    pub hot_refs: Vec<String>,
    pub signet: SignetProc,
    pub idle_rss: u64,
    pub target: Arc<Target>,
    pub echo_proc: Proc,
    pub echo: Arc<Target>,
    pub _echo_dir: tempfile::TempDir,
    /// The one-image cache hit, for signet and (any answer) for the echo server.
    pub hit1: Arc<Vec<Work>>,
    pub echo_work: Arc<Vec<Work>>,
    pub limits: Option<Limits>,
    /// The replay's images, pushed once for (f) and (r).
    pub replay_pool: Option<ReplayPool>,
}

impl World {
    /// Starts the registry, its proxies, the synthetic registry, the Notation world when (c)
    /// needs it, signet and the echo server; pushes the hot images; measures the limits.
    pub async fn start(
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
        let keyless = if wants("c") && args.cold_kinds.contains(&ColdKind::CosignKeyless) {
            Some(KeylessWorld::start(if args.quick { 200 } else { 2000 }).await?)
        } else {
            None
        };
        let (policies, insecure) = policies_for(
            &key,
            &[&registry.addr(), &counted.host, &throttled.host, &synthetic],
            notation.as_ref(),
            keyless.as_ref(),
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
            keyless,
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
    pub async fn start_signet(&self) -> anyhow::Result<SignetProc> {
        self.start_signet_with(&[]).await
    }

    /// The same with more arguments to `signet serve`.
    pub async fn start_signet_with(&self, extra: &[String]) -> anyhow::Result<SignetProc> {
        SignetProc::start(
            &self.args.signet,
            &self.policies,
            &self.insecure,
            self.args.signet_log.as_deref(),
            None,
            extra,
        )
        .await
    }
}

/// One Cosign P-256 policy per Cosign host (named `direct`, `counted`, `throttled`,
/// `synthetic`), and the Notation and keyless worlds' two each when they are up (reporting the
/// in-process verify limits); returns the policies (YAML documents) and the hosts signet
/// reaches over plain HTTP.
pub fn policies_for(
    key: &CosignKey,
    cosign_hosts: &[&String; 4],
    notation: Option<&NotationWorld>,
    keyless: Option<&KeylessWorld>,
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
        add_hosts(
            &mut policies,
            &mut insecure,
            w.own.hosts("notation"),
            |n, h| w.policy(n, h),
        );
    }
    if let Some(w) = keyless {
        report.row(
            "limit: Cosign keyless verify in-process (`signet::verify::cosign::verify`; Fulcio leaf → root, SCT, Rekor signed entry timestamp, the signature, the identity)",
            &format!("{:.1} µs", w.verify_us),
            "-",
            "-",
            "-",
        );
        add_hosts(
            &mut policies,
            &mut insecure,
            w.own.hosts("keyless"),
            |n, h| w.policy(n, h),
        );
    }
    (policies.join("---\n"), insecure)
}

/// One policy per named host (made by `policy` from name and host), each host reached over
/// plain HTTP.
fn add_hosts(
    policies: &mut Vec<String>,
    insecure: &mut Vec<String>,
    hosts: [(String, String); 2],
    policy: impl Fn(&str, &str) -> String,
) {
    for (name, host) in hosts {
        policies.push(policy(&name, &host));
        insecure.push(host);
    }
}
