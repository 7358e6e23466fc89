//! Registry credentials from the workload: the pod's (or pod template's) `imagePullSecrets` and
//! those of its service account, read from the Kubernetes API in the workload's namespace
//! (`signet serve --pull-secrets`).
//!
//! [`PullSecrets`] looks the objects up with `get` only (`Api<Secret>::get`,
//! `Api<ServiceAccount>::get`), through a short-TTL moka cache bounded by entries, so that a
//! rollout of hundreds of pods costs one API call per object and TTL. What it finds becomes one
//! review's [`WorkloadCredentials`]; [`choose`] is the precedence (the pod's secrets in order,
//! then the service account's, then the cluster-wide `--docker-config`), and the registry client
//! applies it to every request of that review ([`super::with_credentials`]). Credentials stay
//! bound to the host their docker config key names, normalised exactly like `--docker-config`
//! keys (`auth::normalise_config_host`); the token-realm rule of the `auth` module holds
//! for them as for the cluster-wide ones.
//!
//! A missing, forbidden or unusable secret is not fatal: it is logged, counted
//! (`signet_pull_secret_lookups_total{object, result}`, closed labels), and the review falls
//! back to the cluster-wide credentials; if the registry then refuses, the deny message names
//! the secret ([`WorkloadCredentials::note`]). Only an answer of the API server (found, 404,
//! 403, a wrong type) is cached, never a timeout or a transport error.
//!
//! The namespace always comes from the admission request, never from the pod spec, so a
//! workload can only name secrets of its own namespace, which whoever may create pods there
//! can already mount. This file and the Kubernetes policy source are the only places outside
//! `admission` that know Kubernetes types; the rest of `registry` does not.
//!
//! Like `registry`: must not import `policy`, `verify` or `decision`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use moka::future::Cache;

use super::auth::{self, CredentialSource, Credentials};
use crate::metrics::Metrics;
use crate::telemetry::Untrusted;

/// The Secret type of a docker `config.json` (`.dockerconfigjson`).
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The legacy Secret type of a `~/.dockercfg` (`.dockercfg`: the `auths` map without the
/// `auths` wrapper).
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// How long an answer of the API server is reused. Short: a rotated or newly created pull
/// secret is honoured within this time, and an admission storm still costs one call per object.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Secrets and service accounts remembered at most (each cache).
pub const CACHE_ENTRIES: u64 = 10_000;
/// Distinct pull secrets read for one workload (the pod's and its service account's together);
/// a pod spec naming thousands must not make one review cost thousands of API calls.
pub const MAX_SECRETS_PER_WORKLOAD: usize = 16;
/// The longest the lookups of one review may take; never more than half of what is left of
/// the review's deadline, so the registry keeps the other half.
pub const MAX_LOOKUP_TIME: Duration = Duration::from_secs(2);

/// Whose credentials a review runs with: plain data taken from the admission request, no
/// Kubernetes types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The request's namespace (never the pod spec's).
    pub namespace: String,
    /// `imagePullSecrets[].name` of the pod spec, in order.
    pub pull_secrets: Vec<String>,
    /// `serviceAccountName` of the pod spec (`default` when unset).
    pub service_account: String,
}

/// Looks up a workload's credentials. [`PullSecrets`] is the Kubernetes implementation; the
/// decision engine holds one when `--pull-secrets` is on.
#[async_trait::async_trait]
pub trait WorkloadCredentialSource: Send + Sync + std::fmt::Debug {
    /// The workload's credentials and the problems met, before `deadline` (whatever is not
    /// read by then is a problem, not a wait).
    async fn lookup(&self, workload: &Workload, deadline: Instant) -> WorkloadCredentials;
}

/// Why a pull secret gave no credentials. [`label`](SecretProblem::label) is the metric's
/// closed `result` label; the `Display` text completes "pull secret "x" …" in messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error("was not found")]
    NotFound,
    #[error("cannot be read: signet is not allowed to get it (403)")]
    Forbidden,
    #[error("is of type {0:?}, not {DOCKER_CONFIG_JSON} or {DOCKER_CFG}")]
    WrongType(String),
    #[error("has no {0} key")]
    MissingKey(&'static str),
    #[error("holds no readable docker config: {0}")]
    Malformed(String),
    /// The API server did not answer usefully (timeout, transport error, 5xx, 429): not cached.
    #[error("could not be read from the Kubernetes API: {0}")]
    Unavailable(String),
}

impl SecretProblem {
    /// The `result` label of `signet_pull_secret_lookups_total`.
    pub fn label(&self) -> &'static str {
        match self {
            SecretProblem::NotFound => "not_found",
            SecretProblem::Forbidden => "forbidden",
            SecretProblem::WrongType(_) | SecretProblem::MissingKey(_) => "wrong_type",
            SecretProblem::Malformed(_) => "malformed",
            SecretProblem::Unavailable(_) => "error",
        }
    }
}

/// Registry credentials by host, as one Secret gives them.
pub type SecretCredentials = HashMap<String, Credentials>;

/// Reads the registry credentials of a pull secret: `kubernetes.io/dockerconfigjson`
/// (`.dockerconfigjson`, a docker `config.json`) or `kubernetes.io/dockercfg` (`.dockercfg`,
/// the `auths` map alone). Keys become hosts exactly as `--docker-config` keys do.
pub fn secret_credentials(secret: &Secret) -> Result<SecretCredentials, SecretProblem> {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    let key = match kind {
        DOCKER_CONFIG_JSON => ".dockerconfigjson",
        DOCKER_CFG => ".dockercfg",
        other => return Err(SecretProblem::WrongType(bounded(other))),
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or(SecretProblem::MissingKey(key))?;
    let text = std::str::from_utf8(&bytes.0)
        .map_err(|_| SecretProblem::Malformed(format!("{key} is not UTF-8")))?;
    let text = if kind == DOCKER_CFG {
        // The legacy format is the `auths` map itself: wrap it as a value, never by pasting
        // text, so the secret cannot smuggle other top-level keys in.
        let auths: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| SecretProblem::Malformed(format!("{key} is not JSON: {e}")))?;
        serde_json::json!({ "auths": auths }).to_string()
    } else {
        text.to_string()
    };
    let (creds, _helpers) =
        auth::docker_config(&text).map_err(|e| SecretProblem::Malformed(e.to_string()))?;
    Ok(creds)
}

/// Where a pull secret was named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The pod spec's `imagePullSecrets`.
    Pod,
    /// The service account's `imagePullSecrets` (its name).
    ServiceAccount(String),
}

/// One pull secret of a workload and what reading it gave.
#[derive(Clone, Debug)]
pub struct SecretOutcome {
    pub name: String,
    pub origin: Origin,
    pub result: Result<Arc<SecretCredentials>, SecretProblem>,
}

impl SecretOutcome {
    /// `pull secret "x"` or `pull secret "x" of service account "y"`, for messages.
    fn describe(&self) -> String {
        match &self.origin {
            Origin::Pod => format!("pull secret {:?}", self.name),
            Origin::ServiceAccount(sa) => {
                format!("pull secret {:?} of service account {sa:?}", self.name)
            }
        }
    }
}

/// The credentials one review runs with, by registry host, and what could not be read.
#[derive(Clone, Default)]
pub struct WorkloadCredentials {
    /// Host → (credentials, description of the secret they came from).
    by_host: HashMap<String, (Credentials, String)>,
    /// Plain-word problems, e.g. `pull secret "regcred" was not found`.
    problems: Vec<String>,
}

impl std::fmt::Debug for WorkloadCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hosts: Vec<&String> = self.by_host.keys().collect();
        hosts.sort();
        f.debug_struct("WorkloadCredentials")
            .field("hosts", &hosts)
            .field("problems", &self.problems)
            .finish()
    }
}

impl WorkloadCredentials {
    /// Selects from the workload's secrets, given in precedence order (the pod's in order,
    /// then the service account's): for each host, the first secret that names it wins.
    pub fn select(outcomes: &[SecretOutcome]) -> Self {
        let mut w = WorkloadCredentials::default();
        for o in outcomes {
            match &o.result {
                Ok(creds) => {
                    for (host, c) in creds.iter() {
                        w.by_host
                            .entry(host.clone())
                            .or_insert_with(|| (c.clone(), o.describe()));
                    }
                }
                Err(p) => w.problems.push(format!("{} {p}", o.describe())),
            }
        }
        w
    }

    /// Adds a problem that is about no single secret (a service account that cannot be read,
    /// a lookup out of time).
    pub fn add_problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// The stable, non-secret identity of the credentials this workload gives `host`, if any:
    /// part of the tag-resolution cache key.
    pub fn identity(&self, host: &str) -> Option<String> {
        self.by_host.get(host).map(|(c, _)| c.identity())
    }

    /// Which secret the credentials for `host` came from, for messages.
    pub fn source_of(&self, host: &str) -> Option<&str> {
        self.by_host.get(host).map(|(_, s)| s.as_str())
    }

    /// What could not be read, in words, for a message about a refused registry request;
    /// `None` when every secret was read.
    pub fn note(&self) -> Option<String> {
        (!self.problems.is_empty()).then(|| self.problems.join("; "))
    }
}

impl CredentialSource for WorkloadCredentials {
    fn credentials(&self, host: &str) -> Option<Credentials> {
        self.by_host.get(host).map(|(c, _)| c.clone())
    }
}

/// The credentials a request to `host` carries: the workload's (pod's pull secrets, then its
/// service account's, already ordered in [`WorkloadCredentials::select`]), else the
/// cluster-wide ones (`--docker-config`), else none. Exact host match only.
pub fn choose(
    workload: Option<&WorkloadCredentials>,
    cluster: &dyn CredentialSource,
    host: &str,
) -> Option<Credentials> {
    workload
        .and_then(|w| w.credentials(host))
        .or_else(|| cluster.credentials(host))
}

/// The pull secrets to read for a workload, in precedence order and without repeats: the pod's,
/// then the service account's, at most [`MAX_SECRETS_PER_WORKLOAD`]. Returns whether some were
/// left out.
pub fn secrets_to_read(
    pod: &[String],
    service_account: &str,
    account_secrets: &[String],
) -> (Vec<(String, Origin)>, bool) {
    let mut out: Vec<(String, Origin)> = Vec::new();
    let mut dropped = false;
    let named = pod.iter().map(|n| (n, Origin::Pod)).chain(
        account_secrets
            .iter()
            .map(|n| (n, Origin::ServiceAccount(service_account.to_string()))),
    );
    for (name, origin) in named {
        if name.is_empty() || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        if out.len() == MAX_SECRETS_PER_WORKLOAD {
            dropped = true;
            break;
        }
        out.push((name.clone(), origin));
    }
    (out, dropped)
}

/// A cached answer: the value, or a problem the API server answered with (404, 403, a wrong
/// type). Transport failures are never stored.
type Cached<T> = Result<Arc<T>, SecretProblem>;

/// Pull secrets and service accounts read from the Kubernetes API, cached briefly.
pub struct PullSecrets {
    client: kube::Client,
    /// (namespace, name) → the secret's credentials.
    secrets: Cache<(String, String), Cached<SecretCredentials>>,
    /// (namespace, name) → the service account's `imagePullSecrets` names.
    accounts: Cache<(String, String), Cached<Vec<String>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PullSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecrets").finish_non_exhaustive()
    }
}

impl PullSecrets {
    /// A source over `client` with the default cache ([`CACHE_TTL`], [`CACHE_ENTRIES`]).
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        Self::with_ttl(client, metrics, CACHE_TTL)
    }

    /// Like [`PullSecrets::new`] with another cache lifetime (tests).
    pub fn with_ttl(client: kube::Client, metrics: Arc<Metrics>, ttl: Duration) -> Self {
        PullSecrets {
            client,
            secrets: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(ttl)
                .build(),
            accounts: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(ttl)
                .build(),
            metrics,
        }
    }

    fn count(&self, object: &str, result: &str) {
        self.metrics
            .pull_secret_lookups
            .with_label_values(&[object, result])
            .inc();
    }

    /// The credentials of one secret, from the cache or the API server.
    async fn secret(&self, namespace: &str, name: &str) -> Cached<SecretCredentials> {
        let key = (namespace.to_string(), name.to_string());
        let mut missed = false;
        let fetch = async {
            missed = true;
            let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), namespace);
            let found = match api.get(name).await {
                Ok(secret) => secret_credentials(&secret).map(Arc::new),
                Err(e) => Err(api_problem(e)),
            };
            let label = found.as_ref().err().map_or("found", SecretProblem::label);
            self.count("secret", label);
            if let Err(problem) = &found {
                tracing::warn!(
                    namespace = %Untrusted(namespace),
                    secret = %Untrusted(name),
                    %problem,
                    "pull secret gives no registry credentials"
                );
            }
            match found {
                Err(p @ SecretProblem::Unavailable(_)) => Err(p),
                cacheable => Ok(cacheable),
            }
        };
        let r = self.secrets.try_get_with(key, fetch).await;
        self.metrics.cache("pull_secret", !missed);
        r.unwrap_or_else(|e| Err((*e).clone()))
    }

    /// The `imagePullSecrets` names of one service account, from the cache or the API server.
    async fn account(&self, namespace: &str, name: &str) -> Cached<Vec<String>> {
        let key = (namespace.to_string(), name.to_string());
        let mut missed = false;
        let fetch = async {
            missed = true;
            let api: kube::Api<ServiceAccount> =
                kube::Api::namespaced(self.client.clone(), namespace);
            let found = match api.get(name).await {
                Ok(sa) => Ok(Arc::new(
                    sa.image_pull_secrets
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| r.name)
                        .collect::<Vec<_>>(),
                )),
                Err(e) => Err(api_problem(e)),
            };
            let label = found.as_ref().err().map_or("found", SecretProblem::label);
            self.count("serviceaccount", label);
            if let Err(problem) = &found {
                tracing::warn!(
                    namespace = %Untrusted(namespace),
                    service_account = %Untrusted(name),
                    %problem,
                    "service account's pull secrets cannot be read"
                );
            }
            match found {
                Err(p @ SecretProblem::Unavailable(_)) => Err(p),
                cacheable => Ok(cacheable),
            }
        };
        let r = self.accounts.try_get_with(key, fetch).await;
        self.metrics.cache("pull_secret", !missed);
        r.unwrap_or_else(|e| Err((*e).clone()))
    }

    /// Reads everything the workload names: the pod's secrets and the service account at
    /// once, then the service account's secrets the pod did not name.
    async fn read(&self, w: &Workload) -> WorkloadCredentials {
        let ns = w.namespace.as_str();
        let (pod_only, _) = secrets_to_read(&w.pull_secrets, &w.service_account, &[]);
        let pod_reads =
            futures_util::future::join_all(pod_only.iter().map(|(name, _)| self.secret(ns, name)));
        let (pod_results, account) =
            futures_util::future::join(pod_reads, self.account(ns, &w.service_account)).await;
        let account_secrets = match &account {
            Ok(names) => names.as_slice(),
            Err(_) => &[],
        };
        let (all, dropped) = secrets_to_read(&w.pull_secrets, &w.service_account, account_secrets);
        let mut outcomes: Vec<SecretOutcome> = pod_only
            .into_iter()
            .zip(pod_results)
            .map(|((name, origin), result)| SecretOutcome {
                name,
                origin,
                result,
            })
            .collect();
        let more: Vec<(String, Origin)> = all.into_iter().skip(outcomes.len()).collect();
        let more_results =
            futures_util::future::join_all(more.iter().map(|(name, _)| self.secret(ns, name)))
                .await;
        outcomes.extend(
            more.into_iter()
                .zip(more_results)
                .map(|((name, origin), result)| SecretOutcome {
                    name,
                    origin,
                    result,
                }),
        );
        let mut creds = WorkloadCredentials::select(&outcomes);
        if let Err(p) = account {
            creds.add_problem(format!("service account {:?} {p}", w.service_account));
        }
        if dropped {
            creds.add_problem(format!(
                "only the first {MAX_SECRETS_PER_WORKLOAD} pull secrets were read"
            ));
        }
        creds
    }
}

#[async_trait::async_trait]
impl WorkloadCredentialSource for PullSecrets {
    async fn lookup(&self, workload: &Workload, deadline: Instant) -> WorkloadCredentials {
        let left = deadline.saturating_duration_since(Instant::now());
        let budget = (left / 2).min(MAX_LOOKUP_TIME);
        match tokio::time::timeout(budget, self.read(workload)).await {
            Ok(creds) => creds,
            Err(_) => {
                self.count("secret", "error");
                let mut creds = WorkloadCredentials::default();
                creds.add_problem(format!(
                    "the pull secrets could not be read: the Kubernetes API did not answer \
                     within {} ms",
                    budget.as_millis()
                ));
                creds
            }
        }
    }
}

/// What an API error means for a pull secret.
fn api_problem(e: kube::Error) -> SecretProblem {
    match e {
        kube::Error::Api(s) if s.code == 404 => SecretProblem::NotFound,
        kube::Error::Api(s) if s.code == 403 => SecretProblem::Forbidden,
        kube::Error::Api(s) => SecretProblem::Unavailable(format!("{} ({})", s.reason, s.code)),
        other => SecretProblem::Unavailable(bounded(&other.to_string())),
    }
}

/// Untrusted text for a message: at most 200 characters.
fn bounded(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Secret of a recorded API response (`tests/fixtures/kube-api/`).
    fn recorded_secret() -> Secret {
        let exchange: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/kube-api/secret-get-dockerconfigjson.json"
        ))
        .unwrap();
        serde_json::from_str(exchange["response"]["body"].as_str().unwrap()).unwrap()
    }

    fn creds(user: &str) -> Credentials {
        Credentials {
            username: user.into(),
            password: "pw".into(),
        }
    }

    fn with_data(kind: &str, key: &str, value: &str) -> Secret {
        let mut s = recorded_secret();
        s.type_ = Some(kind.into());
        s.data = Some(
            [(
                key.to_string(),
                k8s_openapi::ByteString(value.as_bytes().to_vec()),
            )]
            .into(),
        );
        s
    }

    #[test]
    fn a_recorded_dockerconfigjson_secret_gives_its_hosts_credentials() {
        let c = secret_credentials(&recorded_secret()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c["registry.example.com"].username, "robot$signet");
        assert_eq!(
            c["registry.example.com"].password,
            "dummy-password-not-real"
        );
    }

    #[test]
    fn the_legacy_dockercfg_format_is_the_auths_map_alone() {
        let s = with_data(
            DOCKER_CFG,
            ".dockercfg",
            r#"{"https://Registry.Example.com:443/v1/":{"auth":"dTpw","email":"x@example.com"}}"#,
        );
        let c = secret_credentials(&s).unwrap();
        assert_eq!(c["registry.example.com"].username, "u");
        assert_eq!(c["registry.example.com"].password, "p");
        // The wrapper is added as a value: a legacy secret cannot add top-level keys.
        let s = with_data(DOCKER_CFG, ".dockercfg", r#"{}, "credsStore": "x"#);
        assert!(matches!(
            secret_credentials(&s),
            Err(SecretProblem::Malformed(_))
        ));
        // The new format in a legacy secret has no host named "auths" to offer.
        let s = with_data(
            DOCKER_CFG,
            ".dockercfg",
            r#"{"auths":{"r.example.com":{"auth":"dTpw"}}}"#,
        );
        let c = secret_credentials(&s).unwrap();
        assert!(!c.contains_key("r.example.com"), "{c:?}");
    }

    #[test]
    fn wrong_types_and_keys_are_named() {
        let opaque = with_data("Opaque", ".dockerconfigjson", "{}");
        assert_eq!(
            secret_credentials(&opaque),
            Err(SecretProblem::WrongType("Opaque".into()))
        );
        let wrong_key = with_data(DOCKER_CONFIG_JSON, ".dockercfg", "{}");
        assert_eq!(
            secret_credentials(&wrong_key),
            Err(SecretProblem::MissingKey(".dockerconfigjson"))
        );
        let junk = with_data(DOCKER_CONFIG_JSON, ".dockerconfigjson", "not json");
        let e = secret_credentials(&junk).unwrap_err();
        assert!(
            e.to_string().starts_with("holds no readable docker config"),
            "{e}"
        );
        let not_utf8 = {
            let mut s = recorded_secret();
            s.data = Some(
                [(
                    ".dockerconfigjson".to_string(),
                    k8s_openapi::ByteString(vec![0xff, 0xfe]),
                )]
                .into(),
            );
            s
        };
        assert_eq!(
            secret_credentials(&not_utf8).unwrap_err().label(),
            "malformed"
        );
    }

    fn outcome(name: &str, origin: Origin, hosts: &[(&str, &str)]) -> SecretOutcome {
        SecretOutcome {
            name: name.into(),
            origin,
            result: Ok(Arc::new(
                hosts
                    .iter()
                    .map(|(h, u)| (h.to_string(), creds(u)))
                    .collect(),
            )),
        }
    }

    /// Precedence: the pod's pull secrets in order, then the service account's, then the
    /// cluster-wide docker config; each credential only for the host its key names.
    #[test]
    fn credentials_follow_the_precedence_and_stay_with_their_host() {
        let sa = || Origin::ServiceAccount("builder".into());
        let w = WorkloadCredentials::select(&[
            outcome("first", Origin::Pod, &[("a.example.com", "pod-1")]),
            outcome(
                "second",
                Origin::Pod,
                &[("a.example.com", "pod-2"), ("b.example.com", "pod-2")],
            ),
            outcome(
                "from-sa",
                sa(),
                &[("b.example.com", "sa"), ("c.example.com:5000", "sa")],
            ),
            SecretOutcome {
                name: "gone".into(),
                origin: sa(),
                result: Err(SecretProblem::NotFound),
            },
        ]);
        let cluster: HashMap<String, Credentials> = [
            ("c.example.com:5000".to_string(), creds("cluster")),
            ("d.example.com".to_string(), creds("cluster")),
        ]
        .into();
        let user = |host: &str| choose(Some(&w), &cluster, host).map(|c| c.username);
        assert_eq!(user("a.example.com").as_deref(), Some("pod-1"));
        assert_eq!(user("b.example.com").as_deref(), Some("pod-2"));
        assert_eq!(user("c.example.com:5000").as_deref(), Some("sa"));
        assert_eq!(user("d.example.com").as_deref(), Some("cluster"));
        // Exact hosts: another port, a suffix or a parent domain gets nothing.
        for other in [
            "c.example.com",
            "c.example.com:5001",
            "example.com",
            "evil.a.example.com",
            "a.example.com.evil.com",
        ] {
            assert_eq!(user(other), None, "{other}");
        }
        assert_eq!(
            choose(None, &cluster, "d.example.com")
                .map(|c| c.username)
                .as_deref(),
            Some("cluster")
        );
        assert_eq!(w.source_of("b.example.com"), Some("pull secret \"second\""));
        assert_eq!(
            w.source_of("c.example.com:5000"),
            Some("pull secret \"from-sa\" of service account \"builder\"")
        );
        assert_eq!(
            w.note().as_deref(),
            Some("pull secret \"gone\" of service account \"builder\" was not found")
        );
        // Identities differ by credentials, not by host.
        assert_ne!(w.identity("a.example.com"), w.identity("b.example.com"));
        assert_eq!(w.identity("d.example.com"), None);
        assert!(!format!("{w:?}").contains("pw"));
    }

    #[test]
    fn every_problem_label_is_pre_registered() {
        for p in [
            SecretProblem::NotFound,
            SecretProblem::Forbidden,
            SecretProblem::WrongType(String::new()),
            SecretProblem::MissingKey(""),
            SecretProblem::Malformed(String::new()),
            SecretProblem::Unavailable(String::new()),
        ] {
            assert!(
                crate::metrics::PULL_SECRET_RESULTS.contains(&p.label()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn secrets_are_read_once_each_in_order_and_bounded() {
        let pod: Vec<String> = ["a", "b", "a", ""].iter().map(|s| s.to_string()).collect();
        let sa: Vec<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        let (read, dropped) = secrets_to_read(&pod, "default", &sa);
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(read[1].1, Origin::Pod, "the pod's naming wins");
        assert_eq!(read[2].1, Origin::ServiceAccount("default".into()));
        assert!(!dropped);
        let many: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let (read, dropped) = secrets_to_read(&many, "default", &sa);
        assert_eq!(read.len(), MAX_SECRETS_PER_WORKLOAD);
        assert!(dropped);
    }
}
