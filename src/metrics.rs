//! Prometheus metrics, owned by one [`Metrics`] value in the application state.
//!
//! No global registry: tests build their own. Every label value is a closed enum's `as_str()`
//! (a decision, a verifier, a [`Reason`], an operation, an HTTP status class): never an image
//! name, digest, namespace or error string, so cardinality is bounded. A leaf module.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::reason::Reason;

/// The `reason` label values of `signet_admission_skipped_total`: the admission module's
/// `SkipReason` labels (a test there keeps the two lists equal).
pub const SKIP_REASONS: [&str; 5] = [
    "no_new_image",
    "deleting",
    "operation",
    "kind",
    "subresource",
];

/// The `result` label values of `signet_pull_secret_lookups_total`: `found` and the registry's
/// `SecretProblem` labels (a test there keeps the two lists equal).
pub const PULL_SECRET_RESULTS: [&str; 6] = [
    "found",
    "not_found",
    "forbidden",
    "wrong_type",
    "malformed",
    "error",
];

/// All of signet's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub admission_reviews: IntCounterVec,
    pub admission_duration: HistogramVec,
    /// Reviews allowed without verifying any image, by [`SKIP_REASONS`] reason.
    pub admission_skipped: IntCounterVec,
    /// Reviews the pinning route (`/mutate`) answered: `pinned` or `unchanged`.
    pub pinning_reviews: IntCounterVec,
    pub verifications: IntCounterVec,
    pub cache_requests: IntCounterVec,
    /// Tag resolutions renewed in the background before their digest-cache entry expired, by
    /// `result`: `ok` or `failed` (the entry then expires as it would have).
    pub digest_refreshes: IntCounterVec,
    pub verdict_renewals: IntCounterVec,
    pub registry_requests: IntCounterVec,
    pub registry_duration: HistogramVec,
    pub revocation_requests: IntCounterVec,
    pub revocation_duration: HistogramVec,
    pub policy_reloads: IntCounterVec,
    pub tls_reloads: IntCounterVec,
    /// Requests to Entra ID and Key Vault (and ACR token exchanges), by `endpoint` and a
    /// closed `result`.
    pub azure_requests: IntCounterVec,
    /// Key Vault refreshes of one piece of trust material, by `result`: `unchanged`,
    /// `changed`, `withdrawn`, `failed` (last good kept), `expired` (stale: trusted no more).
    pub keyvault_refreshes: IntCounterVec,
    /// Pull secrets and service accounts read from the Kubernetes API (`--pull-secrets`; cache
    /// misses), by object (`secret`, `serviceaccount`) and result.
    pub pull_secret_lookups: IntCounterVec,
    pub policies_loaded: IntGauge,
    /// Secret and ConfigMap references of the active policies whose object or key does not
    /// exist: the authorities that name them trust nothing (logged, and in the resource's
    /// status for a custom resource).
    pub policy_material_missing: IntGauge,
    /// Per policy: when the first trust-store certificate it relies on expires (Unix seconds).
    /// The label is the policy's name: the operator's, bounded by the policy set.
    pub trust_expiry: GaugeVec,
    /// Per watched Kubernetes resource (a closed set: `clusterimagepolicies`, `imagepolicies`,
    /// `secrets`, `configmaps`): seconds since its watch was last known to be current; 0 while
    /// it is.
    pub policy_source_stale: GaugeVec,
    /// Status writes to policy resources, by result (`written`, `failed`).
    pub policy_status_writes: IntCounterVec,
    /// The series every cache hit counts, looked up once: finding a labelled series hashes
    /// its label values at each count.
    hot: Hot,
}

/// The series of [`Metrics`] that every review counts.
#[derive(Clone)]
struct Hot {
    /// `allowed`, `denied`, `warned` of `admission_reviews`.
    decisions: [IntCounter; 3],
    /// `admission_duration`'s one series.
    duration: Histogram,
    /// `cache_requests` of the digest and verdict caches: hit, miss.
    digest: [IntCounter; 2],
    verdict: [IntCounter; 2],
}

impl Hot {
    fn of(reviews: &IntCounterVec, duration: &HistogramVec, caches: &IntCounterVec) -> Hot {
        let lookups =
            |cache| ["hit", "miss"].map(|result| caches.with_label_values(&[cache, result]));
        Hot {
            decisions: ["allowed", "denied", "warned"].map(|d| reviews.with_label_values(&[d])),
            duration: duration.with_label_values(&[] as &[&str]),
            digest: lookups("digest"),
            verdict: lookups("verdict"),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("signet"), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered once: {e}"));
    c
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace("signet")
            .buckets(buckets),
        labels,
    )
    .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered once: {e}"));
    h
}

impl Metrics {
    /// Records the active policy set: how many policies, and each one's trust-store expiry.
    pub fn policies(&self, set: &crate::policy::PolicySet) {
        self.policies_loaded.set(set.policies.len() as i64);
        self.policy_material_missing.set(set.missing.len() as i64);
        self.trust_expiry.reset();
        for p in &set.policies {
            if let Some(t) = p.trust_expires() {
                let secs = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.trust_expiry
                    .with_label_values(&[p.name.as_str()])
                    .set(secs);
            }
        }
    }

    pub fn new() -> Self {
        let registry = Registry::new();
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let policies_loaded = IntGauge::with_opts(
            Opts::new("policies_loaded", "Image policies in the active policy set")
                .namespace("signet"),
        )
        .unwrap_or_else(|e| unreachable!("gauge is well-formed: {e}"));
        registry
            .register(Box::new(policies_loaded.clone()))
            .unwrap_or_else(|e| unreachable!("gauge registered once: {e}"));
        let admission_reviews = counter(
            &registry,
            "admission_reviews_total",
            "AdmissionReviews answered, by decision",
            &["decision"],
        );
        let admission_duration = histogram(
            &registry,
            "admission_review_duration_seconds",
            "Time to answer one AdmissionReview",
            &[],
            latency.clone(),
        );
        let cache_requests = counter(
            &registry,
            "cache_requests_total",
            "Cache lookups, by cache and hit or miss",
            &["cache", "result"],
        );
        let m = Metrics {
            hot: Hot::of(&admission_reviews, &admission_duration, &cache_requests),
            admission_reviews,
            admission_duration,
            admission_skipped: counter(
                &registry,
                "admission_skipped_total",
                "AdmissionReviews allowed without verifying any image, by reason",
                &["reason"],
            ),
            pinning_reviews: counter(
                &registry,
                "pinning_reviews_total",
                "Reviews of the pinning route, by result: pinned (a patch was sent) or unchanged",
                &["result"],
            ),
            verifications: counter(
                &registry,
                "verifications_total",
                "Image verifications (cache misses), by verifier, result and reason",
                &["verifier", "result", "reason"],
            ),
            cache_requests,
            digest_refreshes: counter(
                &registry,
                "digest_refreshes_total",
                "Tag resolutions renewed before their digest-cache entry expired, by result",
                &["result"],
            ),
            verdict_renewals: counter(
                &registry,
                "verdict_renewals_total",
                "Verdicts verified again before their cache entry expired, by result",
                &["result"],
            ),
            registry_requests: counter(
                &registry,
                "registry_requests_total",
                "Registry HTTP requests, by operation and status",
                &["operation", "status"],
            ),
            registry_duration: histogram(
                &registry,
                "registry_request_duration_seconds",
                "Registry request latency, by operation",
                &["operation"],
                latency.clone(),
            ),
            revocation_requests: counter(
                &registry,
                "revocation_requests_total",
                "OCSP and CRL requests for Notation chains (cache misses), by kind and result",
                &["kind", "result"],
            ),
            revocation_duration: histogram(
                &registry,
                "revocation_request_duration_seconds",
                "OCSP and CRL request latency, by kind",
                &["kind"],
                latency,
            ),
            policy_reloads: counter(
                &registry,
                "policy_reloads_total",
                "Policy (re)loads, by result",
                &["result"],
            ),
            tls_reloads: counter(
                &registry,
                "tls_reloads_total",
                "Serving certificate (re)loads, by result",
                &["result"],
            ),
            azure_requests: counter(
                &registry,
                "azure_requests_total",
                "Requests to Entra ID, Key Vault and ACR token exchanges, by endpoint and result",
                &["endpoint", "result"],
            ),
            keyvault_refreshes: counter(
                &registry,
                "keyvault_refreshes_total",
                "Key Vault trust material refreshes, by result",
                &["result"],
            ),
            pull_secret_lookups: counter(
                &registry,
                "pull_secret_lookups_total",
                "Pull secrets and service accounts read from the Kubernetes API, by object and result",
                &["object", "result"],
            ),
            policies_loaded,
            policy_material_missing: {
                let g = IntGauge::with_opts(
                    Opts::new(
                        "policy_material_missing",
                        "Secret and ConfigMap references of the active policies whose object or key does not exist (their authorities trust nothing)",
                    )
                    .namespace("signet"),
                )
                .unwrap_or_else(|e| unreachable!("gauge is well-formed: {e}"));
                registry
                    .register(Box::new(g.clone()))
                    .unwrap_or_else(|e| unreachable!("gauge registered once: {e}"));
                g
            },
            trust_expiry: {
                let g = GaugeVec::new(
                    Opts::new(
                        "policy_trust_expiry_timestamp_seconds",
                        "When the first trust-store certificate a policy relies on expires, as a Unix time",
                    )
                    .namespace("signet"),
                    &["policy"],
                )
                .unwrap_or_else(|e| unreachable!("gauge is well-formed: {e}"));
                registry
                    .register(Box::new(g.clone()))
                    .unwrap_or_else(|e| unreachable!("gauge registered once: {e}"));
                g
            },
            policy_source_stale: {
                let g = GaugeVec::new(
                    Opts::new(
                        "policy_source_stale_seconds",
                        "Seconds since the watch of a Kubernetes resource policies come from was last known to be current (0: current)",
                    )
                    .namespace("signet"),
                    &["source"],
                )
                .unwrap_or_else(|e| unreachable!("gauge is well-formed: {e}"));
                registry
                    .register(Box::new(g.clone()))
                    .unwrap_or_else(|e| unreachable!("gauge registered once: {e}"));
                g
            },
            policy_status_writes: counter(
                &registry,
                "policy_status_writes_total",
                "Status writes to policy custom resources, by result",
                &["result"],
            ),
            registry,
        };
        // Pre-register the common label sets so dashboards see zeros, not gaps.
        for d in ["allowed", "denied", "warned", "invalid", "overloaded"] {
            m.admission_reviews.with_label_values(&[d]);
        }
        for r in SKIP_REASONS {
            m.admission_skipped.with_label_values(&[r]);
        }
        for r in ["pinned", "unchanged"] {
            m.pinning_reviews.with_label_values(&[r]);
        }
        for kind in ["ocsp", "crl"] {
            for r in [
                "ok",
                "timeout",
                "unreachable",
                "http_error",
                "too_large",
                "refused",
            ] {
                m.revocation_requests.with_label_values(&[kind, r]);
            }
        }
        for r in ["success", "failure"] {
            m.policy_reloads.with_label_values(&[r]);
            m.tls_reloads.with_label_values(&[r]);
        }
        for object in ["secret", "serviceaccount"] {
            for r in PULL_SECRET_RESULTS {
                m.pull_secret_lookups.with_label_values(&[object, r]);
            }
        }
        m
    }

    /// Counts one verification outcome.
    /// Counts one verification. `decided`: it reached a verdict, so its result is `trusted` or
    /// `untrusted` whatever the reason usually means (a junk signature's `too_large` is an
    /// untrusted signature, not a registry error); otherwise the result is `error`.
    pub fn verification(&self, verifier: &str, decided: bool, reason: Reason) {
        let result = if reason == Reason::Trusted {
            "trusted"
        } else if decided {
            "untrusted"
        } else {
            "error"
        };
        self.verifications
            .with_label_values(&[verifier, result, reason.as_str()])
            .inc();
    }

    /// Counts one cache lookup.
    pub fn cache(&self, cache: &str, hit: bool) {
        let series = match cache {
            "digest" => &self.hot.digest,
            "verdict" => &self.hot.verdict,
            _ => {
                let result = if hit { "hit" } else { "miss" };
                self.cache_requests
                    .with_label_values(&[cache, result])
                    .inc();
                return;
            }
        };
        series[usize::from(!hit)].inc();
    }

    /// Counts one answered review under `decision` (`allowed`, `denied`, `warned`, `invalid`,
    /// `overloaded`).
    pub fn review(&self, decision: &str) {
        match decision {
            "allowed" => self.hot.decisions[0].inc(),
            "denied" => self.hot.decisions[1].inc(),
            "warned" => self.hot.decisions[2].inc(),
            other => self.admission_reviews.with_label_values(&[other]).inc(),
        }
    }

    /// Records the time one validating review took to answer.
    pub fn review_duration(&self, seconds: f64) {
        self.hot.duration.observe(seconds);
    }

    /// Adds a metric kept elsewhere (read when scraped), e.g. the log writer's drop count.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The text exposition format, for `/metrics`.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding to a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decided_verification_is_never_an_error_whatever_its_reason() {
        let m = Metrics::new();
        // A junk signature layer too large to be a signature: untrusted, not a registry error.
        m.verification("cosign", true, Reason::TooLarge);
        m.verification("cosign", false, Reason::RegistryUnreachable);
        let text = m.encode();
        assert!(
            text.contains("signet_verifications_total{reason=\"too_large\",result=\"untrusted\",verifier=\"cosign\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("signet_verifications_total{reason=\"registry_unreachable\",result=\"error\",verifier=\"cosign\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn exposes_the_documented_names() {
        let m = Metrics::new();
        m.verification("cosign", true, Reason::NoSignature);
        m.cache("verdict", true);
        m.digest_refreshes.with_label_values(&["ok"]).inc();
        m.verdict_renewals.with_label_values(&["failed"]).inc();
        m.registry_requests
            .with_label_values(&["manifest", "200"])
            .inc();
        m.registry_duration
            .with_label_values(&["manifest"])
            .observe(0.01);
        m.admission_duration
            .with_label_values(&[] as &[&str])
            .observe(0.001);
        let text = m.encode();
        for name in [
            "signet_admission_reviews_total",
            "signet_admission_review_duration_seconds",
            "signet_verifications_total{reason=\"no_signature\",result=\"untrusted\",verifier=\"cosign\"} 1",
            "signet_cache_requests_total{cache=\"verdict\",result=\"hit\"} 1",
            "signet_digest_refreshes_total{result=\"ok\"} 1",
            "signet_verdict_renewals_total{result=\"failed\"} 1",
            "signet_registry_requests_total",
            "signet_registry_request_duration_seconds",
            "signet_policy_reloads_total",
            "signet_tls_reloads_total",
            "signet_admission_skipped_total{reason=\"no_new_image\"} 0",
            "signet_admission_skipped_total{reason=\"deleting\"} 0",
            "signet_admission_skipped_total{reason=\"operation\"} 0",
            "signet_admission_skipped_total{reason=\"kind\"} 0",
            "signet_admission_skipped_total{reason=\"subresource\"} 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
